"""The oracle: what a trader who knew the planted signal's true conditional moments would hold.

Why: the simulator is DEA's ground truth for "can training find a signal?". Issue 5 asks that a
learned policy reach a set fraction of the oracle's out-of-sample Sharpe, so the oracle must be
(1) computed from the true conditional mean and covariance at each bar's open, (2) free of
look-ahead (its scale is fixed from the config, not from the sample), and (3) evaluated with the
same return and funding conventions as DEA's backtester (DESIGN.md): exposure w[t] is held over
bar t, earns w * r[t], pays w * rate at each funding settlement inside the bar, and pays
``fee * |w[t] - w[t-1]|`` to trade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dea.sim.config import OracleConfig
from dea.sim.moments import RegimeMoments

if TYPE_CHECKING:  # pragma: no cover
    from dea.sim.market import SimMarket


def oracle_scale(moments: RegimeMoments, drift_step: np.ndarray, loading: float, target_step_vol: float) -> float:
    """Risk-tolerance c of the mean-variance oracle w = c * Sigma^-1 mu.

    Chosen so that the long-run expected ex-ante variance E[w' Sigma w] = c^2 E[mu' Sigma^-1 mu]
    equals ``target_step_vol``^2, averaging over the regimes' stationary shares and the unit
    variance alpha (mu = drift + loading * alpha * total_sd). Returns 0 when mu is identically 0.
    """
    quad = 0.0
    for k, share in enumerate(moments.shares):
        inv = np.linalg.pinv(moments.cov[k])
        s = moments.total_sd[k]
        quad += share * (loading**2 * float(np.sum(np.diag(inv) * s * s)) + float(drift_step @ inv @ drift_step))
    return 0.0 if quad <= 0 else target_step_vol / np.sqrt(quad)


def oracle_exposure(
    expected_return: np.ndarray,
    regimes: np.ndarray,
    moments: RegimeMoments,
    scale: float,
    caps: OracleConfig,
) -> np.ndarray:
    """Mean-variance exposure c * Sigma_k(t)^-1 mu[t], clipped per instrument, then to the gross cap."""
    w = np.zeros_like(expected_return)
    for k in range(moments.cov.shape[0]):
        rows = regimes == k
        if rows.any():
            w[rows] = expected_return[rows] @ np.linalg.pinv(moments.cov[k]).T
    w *= scale
    np.clip(w, -caps.max_exposure, caps.max_exposure, out=w)
    gross = np.abs(w).sum(axis=1)
    over = gross > caps.max_gross
    w[over] *= (caps.max_gross / gross[over])[:, None]
    return w


def strategy_returns(
    exposure: np.ndarray,
    returns: np.ndarray,
    funding_per_step: np.ndarray | None = None,
    fee: float = 0.0,
) -> np.ndarray:
    """Per-step net return of holding ``exposure[t]`` over bar t (DESIGN.md conventions).

    net[t] = sum_i w[t,i] * (r[t,i] - funding[t,i]) - fee * sum_i |w[t,i] - w[t-1,i]|, w[-1] = 0.
    """
    exposure = np.asarray(exposure, dtype=np.float64)
    if exposure.shape != returns.shape:
        raise ValueError(f"exposure shape {exposure.shape} differs from returns shape {returns.shape}")
    carry = returns if funding_per_step is None else returns - funding_per_step
    net = np.einsum("ti,ti->t", exposure, carry)
    if fee:
        turnover = np.abs(np.diff(exposure, axis=0, prepend=0.0)).sum(axis=1)
        net = net - fee * turnover
    return net


def annualised_sharpe(step_returns: np.ndarray, periods_per_year: float) -> float:
    """Mean / std * sqrt(periods per year); 0 for a constant (e.g. all-flat) series."""
    r = np.asarray(step_returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return 0.0
    sd = r.std(ddof=1)
    return 0.0 if sd <= 0 else float(r.mean() / sd * np.sqrt(periods_per_year))


def oracle_sharpe(
    market: "SimMarket", *, funding: bool = True, fee: float = 0.0, start: int = 0, stop: int | None = None
) -> float:
    """Annualised Sharpe of the oracle exposure on bars [start, stop) of a simulated market."""
    sl = slice(start, stop)
    net = strategy_returns(
        market.oracle_exposure[sl],
        market.returns[sl],
        market.funding_per_step[sl] if funding else None,
        fee,
    )
    return annualised_sharpe(net, market.config.periods_per_year)


def exposure_on_clock(
    market: "SimMarket", decision_times: np.ndarray, exposure: np.ndarray | None = None
) -> np.ndarray:
    """The oracle (or another [T, N] exposure) as-of each decision time (int64 ns).

    A decision at d holds the exposure of the bar open at or before d; rows before the first bar
    or at/after the end of the simulation are NaN (nothing to hold there: never a silent zero).
    """
    w = market.oracle_exposure if exposure is None else np.asarray(exposure, dtype=np.float64)
    d = np.asarray(decision_times, dtype=np.int64)
    idx = np.searchsorted(market.clock, d, side="right") - 1
    out = np.full((d.size, w.shape[1]), np.nan)
    ok = (idx >= 0) & (d < market.clock[-1] + market.step_ns)
    out[ok] = w[idx[ok]]
    return out
