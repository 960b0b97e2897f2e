"""Is one strategy's Sharpe ratio really higher than another's? A confidence interval and a
p-value for the difference of two Sharpe ratios measured on the same dates.

Why: a table of Sharpe ratios invites reading 0.62 vs 0.55 as "better", but over a few years of
daily returns the standard error of a Sharpe ratio is about 0.5 (annualised). Two series measured
on the same dates are correlated, which shrinks the error of their *difference*; both tests below
use that correlation and the series' serial dependence (volatility clustering, overlapping
positions) instead of assuming iid returns.

Two methods, same output (:class:`SharpeDiff`):

- ``"bootstrap"``: the stationary bootstrap of Politis & Romano (1994), resampling the *pairs*
  (a_t, b_t) in blocks of random geometric length (``arch.bootstrap.StationaryBootstrap``). The
  mean block length is Politis & White's (2004, corrected by Patton, Politis & White 2009)
  automatic choice (``arch.bootstrap.optimal_block_length``), the largest over the four series
  a, b, a^2, b^2 whose means make up the two Sharpe ratios. The interval is the percentile
  interval of the resampled differences; the p-value is that of the centred bootstrap
  distribution, ``(1 + #{|d* - d| >= |d|}) / (B + 1)`` (two-sided, H0: equal Sharpe ratios).
- ``"ledoit_wolf"``: Ledoit & Wolf (2008), "Robust performance hypothesis testing with the Sharpe
  ratio": the delta method applied to the four moments (mean and mean square of each series)
  with a HAC covariance (Parzen kernel, Andrews' 1991 AR(1) automatic bandwidth
  ``2.6614 (alpha T)^0.2``, small-sample factor T / (T - 4)) -- their ``hac.inference``. The
  interval is ``d +- z * se`` and the p-value ``2 Phi(-|d| / se)``.

Sharpe ratios are mean / std (ddof=1) * sqrt(periods_per_year), as in
:mod:`dea.metrics.performance`; the difference is ``sharpe(a) - sharpe(b)``, annualised.
A series with zero variance has no Sharpe ratio: the result is NaN with verdict "undefined"
(never a made-up zero). Results are deterministic given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from dea.errors import DataError

Method = Literal["bootstrap", "ledoit_wolf"]
Verdict = Literal["better", "worse", "not distinguishable", "undefined"]
METHODS: tuple[str, ...] = ("bootstrap", "ledoit_wolf")
MIN_OBS = 8
_N = NormalDist()


@dataclass(frozen=True)
class SharpeDiff:
    """Annualised ``sharpe(a) - sharpe(b)`` with its ``1 - alpha`` interval [lo, hi]."""

    diff: float
    lo: float
    hi: float
    p_value: float
    method: str
    n: int
    sharpe_a: float
    sharpe_b: float
    alpha: float
    se: float  # annualised standard error (ledoit_wolf: HAC delta method; bootstrap: std of d*)
    block_length: float  # bootstrap mean block length (NaN for ledoit_wolf)
    n_boot: int  # 0 for ledoit_wolf

    @property
    def verdict(self) -> Verdict:
        """"better" / "worse" when the interval excludes 0, else "not distinguishable"."""
        if not all(map(math.isfinite, (self.diff, self.lo, self.hi))):
            return "undefined"
        if self.lo > 0:
            return "better"
        if self.hi < 0:
            return "worse"
        return "not distinguishable"

    def to_dict(self, prefix: str = "sharpe_diff") -> dict[str, float]:
        """Flat numeric figures for metrics tables and MLflow (``prefix``, ``prefix_lo``, ...)."""
        return {prefix: self.diff, f"{prefix}_lo": self.lo, f"{prefix}_hi": self.hi,
                f"{prefix}_p": self.p_value, f"{prefix}_se": self.se}

    def describe(self) -> str:
        """One line for console tables: ``+0.42 [-0.10, +0.95] p=0.11 not distinguishable``."""
        return f"{self.diff:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}] p={self.p_value:.3f} {self.verdict}"

    def as_record(self) -> dict[str, float | int | str]:
        """Every field plus the verdict (for JSON reports)."""
        return {**asdict(self), "verdict": self.verdict}


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise DataError(f"sharpe_difference: need two aligned 1-D return series, got shapes {a.shape} and {b.shape}")
    for name, x in (("a", a), ("b", b)):
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise DataError(
                f"sharpe_difference: series {name} has {bad.size} NaN/inf returns (first at row {int(bad[0])}); "
                "align both series on rows where both are known"
            )
    if a.size < MIN_OBS:
        raise DataError(f"sharpe_difference: {a.size} returns, need at least {MIN_OBS}")
    return a, b


def _sharpes(a: np.ndarray, b: np.ndarray, ann: float) -> tuple[float, float]:
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    sr_a = float(a.mean() / sa * ann) if sa > 0 else math.nan
    sr_b = float(b.mean() / sb * ann) if sb > 0 else math.nan
    return sr_a, sr_b


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


# ----------------------------------------------------------------------------- stationary bootstrap
def mean_block_length(*series: np.ndarray) -> float:
    """Politis-White automatic mean block length for the stationary bootstrap: the largest over
    ``series`` and their squares (the moments a Sharpe ratio is made of), at least 1."""
    from arch.bootstrap import optimal_block_length

    cols = [np.asarray(s, dtype=np.float64) for s in series]
    x = np.column_stack(cols + [c * c for c in cols])
    x = x[:, x.std(axis=0) > 0]  # a constant column has no dependence to measure
    if x.shape[1] == 0:
        return 1.0
    lengths = np.asarray(optimal_block_length(x)["stationary"], dtype=np.float64)
    return float(min(max(1.0, np.nanmax(lengths)), x.shape[0] / 2))


def _bootstrap(a: np.ndarray, b: np.ndarray, ann: float, n_boot: int, alpha: float, seed: int,
               block_length: float | None) -> SharpeDiff:
    from arch.bootstrap import StationaryBootstrap

    sr_a, sr_b = _sharpes(a, b, ann)
    d = sr_a - sr_b
    L = mean_block_length(a, b) if block_length is None else float(block_length)
    if not (math.isfinite(d) and n_boot > 0):
        return SharpeDiff(math.nan, math.nan, math.nan, math.nan, "bootstrap", a.size, sr_a, sr_b, alpha,
                          math.nan, L, n_boot)
    bs = StationaryBootstrap(L, a, b, seed=np.random.default_rng(seed))

    def stat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        sx, sy = x.std(ddof=1), y.std(ddof=1)
        # a resample can be constant only if the data nearly are; NaN there is dropped below
        return np.array([(x.mean() / sx if sx > 0 else math.nan) - (y.mean() / sy if sy > 0 else math.nan)])

    draws = bs.apply(stat, n_boot)[:, 0] * ann
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return SharpeDiff(d, math.nan, math.nan, math.nan, "bootstrap", a.size, sr_a, sr_b, alpha, math.nan, L, n_boot)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    exceed = int(np.count_nonzero(np.abs(draws - d) >= abs(d) - 1e-12 * max(1.0, abs(d))))
    p = (1 + exceed) / (draws.size + 1)
    se = float(draws.std(ddof=1)) if draws.size > 1 else math.nan
    return SharpeDiff(d, float(lo), float(hi), float(p), "bootstrap", a.size, sr_a, sr_b, alpha, se, L, n_boot)


# ----------------------------------------------------------------------------- Ledoit-Wolf HAC
def _parzen(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return np.where(ax <= 0.5, 1 - 6 * ax**2 + 6 * ax**3, np.where(ax <= 1, 2 * (1 - ax) ** 3, 0.0))


def _andrews_alpha(v: np.ndarray) -> float:
    """Andrews (1991) AR(1) plug-in for the Parzen bandwidth, summed over the columns of ``v``."""
    num = den = 0.0
    for j in range(v.shape[1]):
        x = v[:, j] - v[:, j].mean()
        lag, cur = x[:-1], x[1:]
        ss = float(lag @ lag)
        rho = float(lag @ cur) / ss if ss > 0 else 0.0
        rho = min(max(rho, -1 + 1e-9), 1 - 1e-9)  # a unit root would divide by zero (S* is capped at T - 1)
        sig2 = float(np.mean((cur - rho * lag) ** 2))
        num += 4 * rho**2 * sig2**2 / (1 - rho) ** 8
        den += sig2**2 / (1 - rho) ** 4
    return num / den if den > 0 else 0.0


def hac_covariance(v: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf's Psi-hat: Parzen-kernel HAC covariance of the (demeaned) columns of ``v`` [T, p]
    with Andrews' automatic bandwidth and the T / (T - 4) correction."""
    v = np.asarray(v, dtype=np.float64)
    T = v.shape[0]
    s_star = min(2.6614 * (_andrews_alpha(v) * T) ** 0.2, T - 1)
    psi = v.T @ v / T
    j = 1
    while j < s_star:
        g = v[j:].T @ v[:-j] / T
        psi += float(_parzen(np.array(j / s_star))) * (g + g.T)
        j += 1
    return psi * (T / (T - 4))


def ledoit_wolf_se(a: np.ndarray, b: np.ndarray, *, hac: bool = True) -> float:
    """Per-period standard error of ``SR(a) - SR(b)`` by the delta method on the four moments
    (Ledoit & Wolf 2008, eq. 5); ``hac=False`` uses the plain (iid) covariance Gamma_0."""
    mu1, mu2 = a.mean(), b.mean()
    g1, g2 = np.mean(a * a), np.mean(b * b)
    v1, v2 = g1 - mu1**2, g2 - mu2**2
    if v1 <= 0 or v2 <= 0:
        return math.nan
    grad = np.array([g1 / v1**1.5, -g2 / v2**1.5, -0.5 * mu1 / v1**1.5, 0.5 * mu2 / v2**1.5])
    V = np.column_stack([a - mu1, b - mu2, a * a - g1, b * b - g2])
    psi = hac_covariance(V) if hac else V.T @ V / V.shape[0]
    return math.sqrt(max(float(grad @ psi @ grad), 0.0) / V.shape[0])


def _ledoit_wolf(a: np.ndarray, b: np.ndarray, ann: float, alpha: float) -> SharpeDiff:
    sr_a, sr_b = _sharpes(a, b, ann)
    d = sr_a - sr_b
    se = ledoit_wolf_se(a, b) * ann if math.isfinite(d) else math.nan
    if not math.isfinite(d) or not math.isfinite(se):
        return SharpeDiff(math.nan, math.nan, math.nan, math.nan, "ledoit_wolf", a.size, sr_a, sr_b, alpha,
                          math.nan, math.nan, 0)
    z = _N.inv_cdf(1 - alpha / 2)
    tiny = 1e-12 * max(1.0, abs(sr_a), abs(sr_b))
    if se <= tiny:  # e.g. identical series: the difference is known exactly
        p = 1.0 if abs(d) <= tiny else 0.0
    else:
        p = 2 * _N.cdf(-abs(d) / se)
    return SharpeDiff(d, d - z * se, d + z * se, p, "ledoit_wolf", a.size, sr_a, sr_b, alpha, se, math.nan, 0)


# ----------------------------------------------------------------------------- public entry points
def sharpe_difference(a: np.ndarray, b: np.ndarray, periods_per_year: float, *, method: Method = "bootstrap",
                      n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                      block_length: float | None = None) -> SharpeDiff:
    """Annualised ``sharpe(a) - sharpe(b)`` of two aligned per-period return series, with a
    ``1 - alpha`` confidence interval and a two-sided p-value (see the module docstring).

    ``block_length`` fixes the bootstrap's mean block length (default: automatic). Raises
    :class:`DataError` for misaligned, too short (< 8) or non-finite series.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_alpha(alpha)
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if block_length is not None and not block_length >= 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    a, b = _pair(a, b)
    ann = math.sqrt(float(periods_per_year))
    if method == "ledoit_wolf":
        return _ledoit_wolf(a, b, ann, alpha)
    return _bootstrap(a, b, ann, n_boot, alpha, seed, block_length)


def sharpe_differences(policy: np.ndarray, baselines: Mapping[str, np.ndarray], periods_per_year: float,
                       **kwargs: object) -> dict[str, SharpeDiff]:
    """:func:`sharpe_difference` of ``policy`` against every baseline (same dates), keyed like
    ``baselines``. Every comparison uses the same ``seed``, so a table is reproducible row by row."""
    return {name: sharpe_difference(policy, r, periods_per_year, **kwargs)  # type: ignore[arg-type]
            for name, r in baselines.items()}
