"""Batch preparation kernels (numba; imported lazily by :mod:`dea.backtest.market`).

One pass over the clock computes the square-root impact coefficient ``k * sigma / sqrt(ADV)``
with the definition of :class:`dea.execution.fills.SqrtImpactEstimator`: ``sigma^2`` the mean
of the finite squared log returns of the last ``vol_window`` rows (Parkinson high/low of the
current bar while none is known), ``ADV`` the mean of the finite ``volume * price`` of the last
``adv_window`` rows. Running sums over ring buffers: O(T * N), no [T, N] temporaries.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_PARKINSON = 1.0 / (4.0 * math.log(2.0))


@nb.njit(cache=True, error_model="numpy")
def impact_coef_kernel(price, logp, volume, high, low, has_hl, k, vw, aw, out):  # pragma: no cover - numba
    T, N = price.shape
    r2 = np.zeros((vw, N))
    r2_ok = np.zeros((vw, N), dtype=np.bool_)
    nv = np.zeros((aw, N))
    nv_ok = np.zeros((aw, N), dtype=np.bool_)
    s_r = np.zeros(N)
    c_r = np.zeros(N, dtype=np.int64)
    s_v = np.zeros(N)
    c_v = np.zeros(N, dtype=np.int64)
    for t in range(T):
        jr = t % vw
        ja = t % aw
        for i in range(N):
            # leave the oldest, enter the newest (window rows (t - w, t])
            if r2_ok[jr, i]:
                s_r[i] -= r2[jr, i]
                c_r[i] -= 1
            p = price[t, i]
            ok = False
            if t > 0:
                x = logp[t, i] - logp[t - 1, i]  # NaN where either price is missing
                if x == x:
                    r2[jr, i] = x * x
                    ok = True
            r2_ok[jr, i] = ok
            if ok:
                s_r[i] += r2[jr, i]
                c_r[i] += 1
            if nv_ok[ja, i]:
                s_v[i] -= nv[ja, i]
                c_v[i] -= 1
            v = volume[t, i] * p
            okv = v == v
            nv_ok[ja, i] = okv
            if okv:
                nv[ja, i] = v
                s_v[i] += v
                c_v[i] += 1
            if k[i] == 0.0:
                out[t, i] = 0.0
                continue
            var = s_r[i] / c_r[i] if c_r[i] > 0 else math.nan
            if var != var and has_hl:
                h = high[t, i]
                lo = low[t, i]
                if h > 0.0 and lo > 0.0 and h >= lo:
                    x = math.log(h / lo)
                    var = x * x * _PARKINSON
            adv = s_v[i] / c_v[i] if c_v[i] > 0 else math.nan
            if var == var and adv > 0.0:
                out[t, i] = k[i] * math.sqrt(var) / math.sqrt(adv)
            else:
                out[t, i] = math.nan
