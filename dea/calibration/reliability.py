"""Are the risk estimates honest? Forecast-vs-realised volatility and VaR coverage.

- Volatility: Mincer–Zarnowitz regression of realised variance on forecast variance (a
  calibrated forecast has slope ~1 and intercept ~0), the realised/forecast ratio, QLIKE loss
  (robust to noisy realised proxies), and a binned reliability table (mean forecast vs mean
  realised per forecast decile) for plots.
- VaR: the exceedance count against the nominal rate with the Kupiec proportion-of-failures
  likelihood-ratio test, the Christoffersen independence test (exceedances must not cluster),
  and the ratio of realised tail loss to forecast expected shortfall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dea.errors import DataError


@dataclass(frozen=True)
class VolReliability:
    n: int
    horizon: int
    slope: float
    intercept: float
    r2: float
    ratio: float  # sqrt(mean realised variance / mean forecast variance): 1 = unbiased level
    qlike: float
    bins_forecast: tuple[float, ...]
    bins_realised: tuple[float, ...]


def realised_variance(returns: np.ndarray, horizon: int) -> np.ndarray:
    """Mean squared return over [t, t+horizon) for each t (NaN where the window runs out)."""
    r2 = np.asarray(returns, dtype=np.float64) ** 2
    c = np.concatenate([[0.0], np.cumsum(r2)])
    out = np.full(r2.size, np.nan)
    n = r2.size - horizon + 1
    if n > 0:
        out[:n] = (c[horizon:] - c[:n]) / horizon
    return out


def vol_reliability(forecast_var: np.ndarray, returns: np.ndarray, horizon: int = 1, n_bins: int = 10) -> VolReliability:
    """Score one-step-ahead variance forecasts ``forecast_var[t]`` (known before ``returns[t]``)
    against the realised variance over the next ``horizon`` returns."""
    f = np.asarray(forecast_var, dtype=np.float64)
    if f.shape != np.shape(returns):
        raise DataError(f"forecast {f.shape} and returns {np.shape(returns)} differ in shape")
    real = realised_variance(returns, horizon)
    ok = np.isfinite(f) & np.isfinite(real) & (f > 0)
    f, real = f[ok], real[ok]
    if f.size < 30:
        raise DataError(f"reliability needs >= 30 scored forecasts, got {f.size}")
    x = np.c_[np.ones_like(f), f]
    (b0, b1), *_ = np.linalg.lstsq(x, real, rcond=None)
    resid = real - (b0 + b1 * f)
    r2 = 1 - resid.var() / real.var() if real.var() > 0 else float("nan")
    ratio = float(np.sqrt(real.mean() / f.mean()))
    qlike = float(np.mean(real / f - np.log(np.maximum(real, 1e-300) / f) - 1))
    order = np.argsort(f)
    chunks = np.array_split(order, min(n_bins, f.size))
    return VolReliability(
        n=int(f.size),
        horizon=horizon,
        slope=float(b1),
        intercept=float(b0),
        r2=float(r2),
        ratio=ratio,
        qlike=qlike,
        bins_forecast=tuple(float(np.sqrt(f[c].mean())) for c in chunks),
        bins_realised=tuple(float(np.sqrt(real[c].mean())) for c in chunks),
    )


@dataclass(frozen=True)
class VarCoverage:
    level: float
    n: int
    exceedances: int
    expected: float
    rate: float
    kupiec_lr: float
    kupiec_p: float
    independence_lr: float
    independence_p: float
    es_ratio: float  # realised mean loss beyond VaR / forecast ES (1 = honest)

    @property
    def rejected(self) -> bool:
        """Kupiec rejects correct coverage at 5 %."""
        return self.kupiec_p < 0.05


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def kupiec_pof(exceedances: int, n: int, p: float) -> tuple[float, float]:
    """Kupiec (1995) proportion-of-failures LR statistic and its chi2(1) p-value."""
    from scipy.stats import chi2

    if n <= 0 or not 0 < p < 1 or not 0 <= exceedances <= n:
        raise DataError(f"Kupiec test needs 0 <= x <= n, n > 0, 0 < p < 1 (got x={exceedances}, n={n}, p={p})")
    x = exceedances
    phat = x / n
    ll0 = _xlogy(n - x, 1 - p) + _xlogy(x, p)
    ll1 = _xlogy(n - x, 1 - phat) + _xlogy(x, phat)
    lr = max(0.0, -2.0 * (ll0 - ll1))
    return lr, float(chi2.sf(lr, 1))


def christoffersen_independence(hits: np.ndarray) -> tuple[float, float]:
    """Christoffersen (1998) LR test that an exceedance does not make the next one likelier."""
    from scipy.stats import chi2

    h = np.asarray(hits, dtype=bool)
    prev, cur = h[:-1], h[1:]
    n00 = int(np.sum(~prev & ~cur))
    n01 = int(np.sum(~prev & cur))
    n10 = int(np.sum(prev & ~cur))
    n11 = int(np.sum(prev & cur))
    pi0 = n01 / max(n00 + n01, 1)
    pi1 = n11 / max(n10 + n11, 1)
    pi = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    ll0 = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    ll1 = _xlogy(n00, 1 - pi0) + _xlogy(n01, pi0) + _xlogy(n10, 1 - pi1) + _xlogy(n11, pi1)
    lr = max(0.0, -2.0 * (ll0 - ll1))
    return lr, float(chi2.sf(lr, 1))


def normal_var_es(sigma: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian VaR and ES (positive loss numbers) at ``level`` for zero-mean returns."""
    from scipy.stats import norm

    z = norm.ppf(level)
    return sigma * z, sigma * norm.pdf(z) / (1 - level)


def var_coverage(returns: np.ndarray, var: np.ndarray, es: np.ndarray | None, level: float) -> VarCoverage:
    """Backtest VaR forecasts (positive loss thresholds, known before each return)."""
    r = np.asarray(returns, dtype=np.float64)
    v = np.asarray(var, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(v)
    r, v = r[ok], v[ok]
    if r.size < 50:
        raise DataError(f"VaR backtest needs >= 50 scored forecasts, got {r.size}")
    hits = -r > v
    x = int(hits.sum())
    lr, p = kupiec_pof(x, r.size, 1 - level)
    ilr, ip = christoffersen_independence(hits)
    es_ratio = float("nan")
    if es is not None and x:
        e = np.asarray(es, dtype=np.float64)[ok]
        es_ratio = float(np.mean(-r[hits]) / np.mean(e[hits]))
    return VarCoverage(level, int(r.size), x, r.size * (1 - level), x / r.size, lr, p, ilr, ip, es_ratio)
