"""Volatility forecasts re-estimated as data arrives (EWMA and GARCH(1,1)).

Every forecast at index t uses returns strictly before t, so forecasts can be scored against the
return at t (and later) without look-ahead. The EWMA is what the risk engine's volatility target
uses (``risk.vol_target.halflife``); GARCH(1,1), re-fitted on a trailing window, is the
benchmark it is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dea.errors import DataError


def _check_returns(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.size < 3:
        raise DataError(f"volatility estimation needs a 1-D series of >= 3 returns, got shape {r.shape}")
    if not np.isfinite(r).all():
        bad = int(np.argmax(~np.isfinite(r)))
        raise DataError(f"volatility estimation: return at index {bad} is {r[bad]!r}; drop or fill it explicitly first")
    return r


def ewma_variance(returns: np.ndarray, halflife: float, init: float | None = None) -> np.ndarray:
    """One-step-ahead EWMA variance: ``v[t] = lam*v[t-1] + (1-lam)*r[t-1]**2`` (RiskMetrics).

    ``v[0]`` is ``init`` (default: the mean square of the first ``ceil(halflife)`` returns, the
    only warm-up that does not peek further ahead than the half-life itself).
    """
    r = _check_returns(returns)
    if halflife <= 0:
        raise DataError(f"EWMA half-life must be > 0, got {halflife}")
    lam = 0.5 ** (1.0 / halflife)
    v = np.empty_like(r)
    v[0] = init if init is not None else float(np.mean(r[: max(2, math.ceil(halflife))] ** 2))
    # v[t] = lam^t v0 + (1-lam) sum_{s<t} lam^(t-1-s) r_s^2 : a linear filter, run in a loop-free way
    sq = (1 - lam) * r[:-1] ** 2
    try:
        from scipy.signal import lfilter  # fast path where scipy exists (batch, not the live loop)

        v[1:] = lfilter([1.0], [1.0, -lam], sq, zi=[lam * v[0]])[0]
    except ImportError:  # pragma: no cover - numpy fallback
        for t in range(1, r.size):
            v[t] = lam * v[t - 1] + sq[t - 1]
    return v


@dataclass(frozen=True)
class Garch11:
    """sigma2[t] = omega + alpha * r[t-1]**2 + beta * sigma2[t-1] (zero-mean returns)."""

    omega: float
    alpha: float
    beta: float

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def long_run_variance(self) -> float:
        return self.omega / (1 - self.persistence) if self.persistence < 1 else float("inf")

    def variance(self, returns: np.ndarray, init: float | None = None) -> np.ndarray:
        """One-step-ahead variance path for ``returns`` (v[0] = init or the sample variance)."""
        r = _check_returns(returns)
        v = np.empty_like(r)
        v[0] = init if init is not None else float(np.mean(r**2))
        from scipy.signal import lfilter

        # v[t] - beta v[t-1] = omega + alpha r[t-1]^2
        drive = self.omega + self.alpha * r[:-1] ** 2
        v[1:] = lfilter([1.0], [1.0, -self.beta], drive, zi=[self.beta * v[0]])[0]
        return v


def fit_garch11(returns: np.ndarray) -> Garch11:
    """Gaussian quasi-maximum likelihood with variance targeting (omega = (1-a-b) * var(r)).

    Variance targeting leaves two free parameters and keeps the fit stable on the short
    trailing windows a rolling re-estimation uses.
    """
    from scipy.optimize import minimize

    r = _check_returns(returns)
    var = float(np.mean(r**2))
    if var <= 0:
        raise DataError("GARCH fit: returns are all zero")

    def nll(x: np.ndarray) -> float:
        a, b = x
        if a < 0 or b < 0 or a + b >= 0.9999:
            return 1e12
        v = Garch11((1 - a - b) * var, a, b).variance(r, init=var)
        return float(0.5 * np.sum(np.log(v) + r**2 / v))

    best = min(
        (minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-6, "maxiter": 400}) for x0 in ([0.05, 0.9], [0.15, 0.8])),
        key=lambda res: res.fun,
    )
    a, b = (float(v) for v in best.x)
    return Garch11((1 - a - b) * var, a, b)


def rolling_garch_variance(returns: np.ndarray, window: int, refit_every: int) -> np.ndarray:
    """One-step-ahead GARCH(1,1) variance, parameters re-fitted every ``refit_every`` steps on the
    trailing ``window`` returns. NaN until the first fit (index ``window``)."""
    r = _check_returns(returns)
    if window < 50 or refit_every < 1:
        raise DataError("rolling GARCH needs window >= 50 and refit_every >= 1")
    out = np.full_like(r, np.nan)
    for start in range(window, r.size, refit_every):
        params = fit_garch11(r[start - window : start])
        end = min(r.size, start + refit_every)
        # filter from the window start so the state at `start` is the fitted model's own
        v = params.variance(r[start - window : end], init=float(np.mean(r[start - window : start] ** 2)))
        out[start:end] = v[window:]
    return out
