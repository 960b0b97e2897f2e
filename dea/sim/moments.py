"""Per-regime moments of one simulator step, derived from the config alone.

Why a module of its own: the price simulation (to scale the planted signal and compensate jumps)
and the oracle (to invert the true covariance) must use exactly the same numbers; computing them
once from the config keeps the two in lock-step and makes the oracle free of look-ahead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dea.sim.config import SimConfig
from dea.sim.processes import stationary_shares
from dea.timeutil import parse_duration


@dataclass(frozen=True)
class RegimeMoments:
    """Arrays indexed by regime k (and asset i), all per simulator step.

    ``sigma`` [K, N]: diffusive volatility of the log return. ``lam_market`` / ``lam_idio`` [K]:
    expected jump counts per step. ``compensator`` [K]: subtracted from the log drift so jumps
    add no expected simple return. ``cov`` [K, N, N]: covariance of the log return (diffusion +
    jumps). ``total_sd`` [K, N]: sqrt(diag(cov)). ``chol`` [K, N, N]: Cholesky factor of each
    regime's diffusive correlation. ``exit_prob`` [K]: per-step probability of leaving the
    regime (1 for ``forced_only`` regimes, which the chain never enters). ``shares`` [K]: long-run
    share of time the chain spends in each regime. ``vol_scale`` [K]. ``spread_factor`` /
    ``depth_factor`` [K]: multipliers of the book's spread (and level spacing) and depth.
    ``basis_shift`` [K]: added to the perpetual's premium.
    """

    sigma: np.ndarray
    lam_market: np.ndarray
    lam_idio: np.ndarray
    compensator: np.ndarray
    cov: np.ndarray
    total_sd: np.ndarray
    chol: np.ndarray
    exit_prob: np.ndarray
    shares: np.ndarray
    vol_scale: np.ndarray
    spread_factor: np.ndarray
    depth_factor: np.ndarray
    basis_shift: np.ndarray

    @property
    def chain(self) -> np.ndarray:
        """Indices of the regimes the Markov chain visits (the others occur only when forced)."""
        return np.flatnonzero(self.shares > 0)


def regime_moments(cfg: SimConfig) -> RegimeMoments:
    n = cfg.n_assets
    step_ns = cfg.step_ns
    base_sd = cfg.per_asset("vol") * np.sqrt(cfg.step_years)
    vol_scale = np.array([r.vol_scale for r in cfg.regimes])
    jump_scale = np.array([r.jump_scale for r in cfg.regimes])
    sigma = vol_scale[:, None] * base_sd[None, :]
    j = cfg.jumps
    lam_market = j.market_intensity * jump_scale * cfg.step_days
    lam_idio = j.idio_intensity * jump_scale * cfg.step_days
    second_moment = j.mean**2 + j.std**2
    compensator = (lam_market + lam_idio) * (np.exp(j.mean + 0.5 * j.std**2) - 1.0)
    corr = np.stack([cfg.correlation_matrix(k) for k in range(len(cfg.regimes))])
    cov = sigma[:, :, None] * corr * sigma[:, None, :]
    cov = cov + (lam_market * second_moment)[:, None, None] * np.ones((n, n))
    cov = cov + (lam_idio * second_moment)[:, None, None] * np.eye(n)
    exit_prob = np.array(
        [min(1.0, step_ns / parse_duration(r.mean_duration)) for r in cfg.regimes], dtype=np.float64
    )
    in_chain = np.array([not r.forced_only for r in cfg.regimes])
    shares = np.zeros(len(cfg.regimes))
    shares[in_chain] = stationary_shares(exit_prob[in_chain])
    book = cfg.book
    return RegimeMoments(
        sigma=sigma,
        lam_market=lam_market,
        lam_idio=lam_idio,
        compensator=compensator,
        cov=cov,
        total_sd=np.sqrt(np.einsum("kii->ki", cov)),
        chol=np.linalg.cholesky(corr),
        exit_prob=exit_prob,
        shares=shares,
        vol_scale=vol_scale,
        spread_factor=vol_scale**book.spread_elasticity * np.array([r.spread_scale for r in cfg.regimes]),
        depth_factor=vol_scale ** (-book.depth_elasticity) * np.array([r.depth_scale for r in cfg.regimes]),
        basis_shift=np.array([r.basis_shift for r in cfg.regimes]),
    )


def signal_loading(strength: float) -> float:
    """k such that corr(alpha, k*alpha + e) = strength for unit-variance alpha and noise e."""
    return float(strength / np.sqrt(1.0 - strength * strength))
