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
def impact_coef_kernel(price, volume, high, low, has_hl, k, vw, aw, out):  # pragma: no cover - numba
    """``out`` holds ``log(price)`` on entry (numpy's vectorised log, written in place) and the
    coefficients on return: row t's logs are all read (first loop over its instruments) before
    the second loop overwrites the row; row t-1's are kept in ``prev``.

    The window sums run without branches: a value that is not known enters (and later leaves)
    as +0 with a count of 0, which changes no sum (none is ever -0), so the results are those of
    the skip-the-unknown definition bit for bit."""
    T, N = price.shape
    r2 = np.zeros((vw, N))  # ring of squared log returns (+0 where unknown) ...
    r2c = np.zeros((vw, N))  # ... and whether each is known (1.0 / 0.0)
    nv = np.zeros((aw, N))  # ring of traded notionals, likewise
    nvc = np.zeros((aw, N))
    s_r = np.zeros(N)
    c_r = np.zeros(N)
    s_v = np.zeros(N)
    c_v = np.zeros(N)
    prev = np.full(N, math.nan)
    jr = 0
    ja = 0
    for t in range(T):
        for i in range(N):
            # leave the oldest, enter the newest (window rows (t - w, t])
            p = price[t, i]
            lp = out[t, i] if p > 0.0 else math.nan
            x = lp - prev[i]  # NaN where either price is missing (and at t = 0)
            prev[i] = lp
            ok = x == x
            x2 = x * x if ok else 0.0
            c = 1.0 if ok else 0.0
            s_r[i] = (s_r[i] - r2[jr, i]) + x2
            c_r[i] = (c_r[i] - r2c[jr, i]) + c
            r2[jr, i] = x2
            r2c[jr, i] = c
            v = volume[t, i] * p
            okv = v == v
            v = v if okv else 0.0
            c = 1.0 if okv else 0.0
            s_v[i] = (s_v[i] - nv[ja, i]) + v
            c_v[i] = (c_v[i] - nvc[ja, i]) + c
            nv[ja, i] = v
            nvc[ja, i] = c
        row = out[t]
        for i in range(N):  # the divisions and square roots in a loop of their own: it vectorises
            var = s_r[i] / c_r[i] if c_r[i] > 0.0 else math.nan
            adv = s_v[i] / c_v[i] if c_v[i] > 0.0 else math.nan
            coef = k[i] * math.sqrt(var) / math.sqrt(adv)
            coef = coef if (var == var and adv > 0.0) else math.nan
            row[i] = 0.0 if k[i] == 0.0 else coef
        if has_hl:  # Parkinson high/low of the current bar while no return is known (rare)
            for i in range(N):
                if k[i] != 0.0 and not (c_r[i] > 0.0):
                    h = high[t, i]
                    lo = low[t, i]
                    adv = s_v[i] / c_v[i] if c_v[i] > 0.0 else math.nan
                    if h > 0.0 and lo > 0.0 and h >= lo and adv > 0.0:
                        x = math.log(h / lo)
                        out[t, i] = k[i] * math.sqrt(x * x * _PARKINSON) / math.sqrt(adv)
        jr = jr + 1 if jr + 1 < vw else 0
        ja = ja + 1 if ja + 1 < aw else 0
