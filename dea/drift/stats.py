"""Distribution-shift statistics in plain numpy (the live loop may not import scipy).

Both statistics compare a *current* sample against a *reference* distribution that was
summarised at training time (:mod:`dea.drift.reference`), so the live loop never needs the
training data itself:

- PSI (population stability index) over fixed reference bins, with a separate bin for NaN so a
  feature that suddenly goes missing counts as drift instead of disappearing from the count.
- Kolmogorov–Smirnov: the largest gap between the current empirical CDF and the reference CDF
  (piecewise-linear through stored quantiles). The two-sample form is provided too; it is exact
  and is what the tests check against scipy.
"""

from __future__ import annotations

import math

import numpy as np

from dea.errors import DataError

#: Share floor used in PSI so an empty bin does not make the index infinite.
PSI_EPS = 1e-4


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` in the bins cut by interior ``edges`` plus a last NaN bin.

    ``edges`` has ``n_bins - 1`` increasing interior edges; bin ``i`` holds ``edges[i-1] <= x <
    edges[i]`` (the first and last bins are open-ended). The returned array has ``n_bins + 1``
    entries, the last counting NaNs.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    nan = np.isnan(values)
    idx = np.searchsorted(edges, values[~nan], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return np.append(counts, float(nan.sum()))


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = PSI_EPS) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins, both share vectors floored at ``eps``."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected_shares: np.ndarray, edges: np.ndarray, values: np.ndarray) -> float:
    """PSI of ``values`` against reference bin shares (``n_bins`` finite bins + 1 NaN bin)."""
    counts = bin_counts(values, edges)
    total = counts.sum()
    if total == 0:
        raise DataError("PSI needs at least one value in the current window")
    return psi_from_shares(expected_shares, counts / total)


def _interp_cdf(x: np.ndarray, q_values: np.ndarray, q_probs: np.ndarray, side: str) -> np.ndarray:
    """Reference CDF at ``x`` (right-continuous for side='right', left limit for 'left').

    Between distinct stored quantiles the CDF is linear; at a repeated quantile value (a point
    mass, e.g. a 0/1 indicator) it jumps, which the left/right evaluation captures.
    """
    hi = np.searchsorted(q_values, x, side=side)
    out = np.empty_like(x, dtype=np.float64)
    below = hi == 0
    above = hi == len(q_values)
    out[below] = 0.0
    out[above] = 1.0
    mid = ~(below | above)
    h = hi[mid]
    x0, x1 = q_values[h - 1], q_values[h]
    p0, p1 = q_probs[h - 1], q_probs[h]
    span = x1 - x0
    frac = np.where(span > 0, (x[mid] - x0) / np.where(span > 0, span, 1.0), 1.0)
    out[mid] = p0 + frac * (p1 - p0)
    return out


def ks_statistic(values: np.ndarray, q_values: np.ndarray, q_probs: np.ndarray) -> float:
    """KS distance between the empirical CDF of finite ``values`` and a quantile-summarised CDF.

    ``q_values`` are the reference quantiles at probabilities ``q_probs`` (0 and 1 included, so
    the reference support is [min, max] of the training sample). The supremum of |step - piecewise
    linear| is attained at a jump of either function, so both one-sided limits are checked at the
    union of sample points and stored quantiles.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise DataError("KS needs at least one finite value in the current window")
    q_values = np.asarray(q_values, dtype=np.float64)
    q_probs = np.asarray(q_probs, dtype=np.float64)
    grid = np.union1d(x, q_values)
    n = x.size
    d_right = np.abs(np.searchsorted(x, grid, "right") / n - _interp_cdf(grid, q_values, q_probs, "right"))
    d_left = np.abs(np.searchsorted(x, grid, "left") / n - _interp_cdf(grid, q_values, q_probs, "left"))
    return float(max(d_right.max(), d_left.max()))


def ks_2samp_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sample KS statistic sup|F_a - F_b| (NaNs ignored)."""
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        raise DataError("two-sample KS needs finite values in both samples")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, "right") / a.size
    fb = np.searchsorted(b, grid, "right") / b.size
    return float(np.abs(fa - fb).max())


def ks_pvalue(d: float, n: int) -> float:
    """Asymptotic p-value of a one-sample KS distance ``d`` on ``n`` points (Kolmogorov series).

    Uses the Stephens small-sample correction lambda = (sqrt(n) + 0.12 + 0.11/sqrt(n)) * d.
    Large windows make tiny shifts "significant", which is why the monitor thresholds the
    distance itself; the p-value is reported for context.
    """
    if n <= 0:
        return float("nan")
    en = math.sqrt(n)
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    k = np.arange(1, 101)
    terms = 2.0 * ((-1.0) ** (k - 1)) * np.exp(-2.0 * k * k * lam * lam)
    return float(min(1.0, max(0.0, terms.sum())))
