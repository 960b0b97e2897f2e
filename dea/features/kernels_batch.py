"""Numba kernels behind :class:`dea.features.ops.BatchOps` (batch only; never imported by serving).

Each kernel is the whole-history loop of the streaming operator with the same name in
:mod:`dea.features.ops`, doing the same floating-point operations in the same order, so batch
and streaming values agree bit for bit (the parity tests check ≤ 1e-9). Non-finite inputs are
missing values everywhere. Compiled with ``cache=True`` (first use compiles, later runs load).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rolling_sum(x: np.ndarray, w: int) -> np.ndarray:  # pragma: no cover - compiled
    T, C = x.shape
    out = np.empty((T, C))
    buf = np.full((w, C), np.nan)
    s = np.zeros(C)
    nanc = np.full(C, w, dtype=np.int64)
    pos = 0
    for t in range(T):
        for c in range(C):
            old = buf[pos, c]
            if np.isfinite(old):
                s[c] = s[c] - old
            else:
                nanc[c] -= 1
            v = x[t, c]
            if np.isfinite(v):
                s[c] = s[c] + v
            else:
                nanc[c] += 1
            buf[pos, c] = v
        pos += 1
        if pos == w:
            pos = 0
            for c in range(C):
                acc = 0.0
                for k in range(w):
                    b = buf[k, c]
                    if np.isfinite(b):
                        acc = acc + b
                    else:
                        acc = acc + 0.0
                s[c] = acc
        for c in range(C):
            out[t, c] = s[c] if nanc[c] == 0 else np.nan
    return out


@njit(cache=True, nogil=True)
def rolling_mean_std(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    T, C = x.shape
    mean = np.empty((T, C))
    std = np.empty((T, C))
    buf = np.full((w, C), np.nan)
    ref = np.full(C, np.nan)
    s1 = np.zeros(C)
    s2 = np.zeros(C)
    nanc = np.full(C, w, dtype=np.int64)
    pos = 0
    for t in range(T):
        for c in range(C):
            v = x[t, c]
            vfin = np.isfinite(v)
            if np.isnan(ref[c]) and vfin:
                ref[c] = v
            old = buf[pos, c]
            if np.isfinite(old):
                d = old - ref[c]
                s1[c] = s1[c] - d
                s2[c] = s2[c] - d * d
            else:
                s1[c] = s1[c] - 0.0
                s2[c] = s2[c] - 0.0
                nanc[c] -= 1
            if vfin:
                d = v - ref[c]
                s1[c] = s1[c] + d
                s2[c] = s2[c] + d * d
            else:
                s1[c] = s1[c] + 0.0
                s2[c] = s2[c] + 0.0
                nanc[c] += 1
            buf[pos, c] = v
        pos += 1
        if pos == w:
            pos = 0
            for c in range(C):
                last = buf[w - 1, c]
                if np.isfinite(last):
                    ref[c] = last
                a1 = 0.0
                a2 = 0.0
                for k in range(w):
                    d = buf[k, c] - ref[c]
                    if not np.isfinite(d):
                        d = 0.0
                    a1 = a1 + d
                    a2 = a2 + d * d
                s1[c] = a1
                s2[c] = a2
        for c in range(C):
            if nanc[c] == 0:
                mean[t, c] = ref[c] + s1[c] / w
                var = (s2[c] - s1[c] * s1[c] / w) / (w - 1)
                std[t, c] = np.sqrt(var if var > 0.0 else 0.0)
            else:
                mean[t, c] = np.nan
                std[t, c] = np.nan
    return mean, std


@njit(cache=True, nogil=True)
def rolling_extreme(x: np.ndarray, w: int, is_max: bool) -> np.ndarray:  # pragma: no cover - compiled
    T, C = x.shape
    out = np.full((T, C), np.nan)
    qi = np.empty(T, dtype=np.int64)
    qv = np.empty(T)
    for c in range(C):
        head = 0
        tail = 0
        last_nan = -(10**18)
        for i in range(T):
            v = x[i, c]
            if not np.isfinite(v):
                last_nan = i
            else:
                if is_max:
                    while tail > head and qv[tail - 1] <= v:
                        tail -= 1
                else:
                    while tail > head and qv[tail - 1] >= v:
                        tail -= 1
                qi[tail] = i
                qv[tail] = v
                tail += 1
            while tail > head and qi[head] <= i - w:
                head += 1
            if i >= w - 1 and last_nan <= i - w and tail > head:
                out[i, c] = qv[head]
    return out


@njit(cache=True, nogil=True)
def ewma(x: np.ndarray, alpha: float, min_periods: int) -> np.ndarray:  # pragma: no cover - compiled
    T, C = x.shape
    out = np.empty((T, C))
    m = np.full(C, np.nan)
    n = np.zeros(C, dtype=np.int64)
    for t in range(T):
        for c in range(C):
            v = x[t, c]
            if np.isfinite(v):
                if np.isnan(m[c]):
                    m[c] = v
                else:
                    m[c] = m[c] + alpha * (v - m[c])
                n[c] += 1
                out[t, c] = m[c] if n[c] >= min_periods else np.nan
            else:
                out[t, c] = np.nan
    return out
