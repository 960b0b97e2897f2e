"""L2 book snapshots of a simulated market, as numpy arrays (no pyarrow).

Why numpy and separate from the tables: stress scenarios replay books through the live loop,
which must stay importable without pyarrow; the canonical ``book`` / ``quotes`` tables are built
from these same arrays, so both views agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dea.errors import ConfigError
from dea.sim.market import SimMarket
from dea.sim.moments import regime_moments
from dea.sim.processes import component_rng


@dataclass(frozen=True)
class BookSnapshots:
    """Snapshots at bar boundaries ``seq`` (indices into ``market.price_times``), taken every
    ``book.every`` boundaries. ``prices`` / ``sizes`` are [2, K, N, L]: side 0 bids, side 1 asks,
    level 0 best; sizes in base units."""

    seq: np.ndarray
    times: np.ndarray
    prices: np.ndarray
    sizes: np.ndarray


def book_snapshots(market: SimMarket) -> BookSnapshots:
    """The market's book, thinning with volatility.

    The half-spread (``market.half_spread``) and the level spacing widen with the regime's spread
    factor (vol_scale**spread_elasticity * spread_scale); the quote notional (``market.depth``)
    shrinks with its depth factor (vol_scale**-depth_elasticity * depth_scale); each carries
    mean-one log-normal noise from the book's own random stream, so enabling the book leaves every
    other table unchanged.
    """
    b = market.config.book
    seq = np.arange(0, market.price_times.size, b.every)
    k, n, levels = seq.size, market.n_assets, b.levels
    rng = component_rng(market.config.seed, "book")
    regime = np.append(market.regimes, market.regimes[-1])[seq]
    widen = regime_moments(market.config).spread_factor[regime][:, None, None]
    mid = market.mark[seq][:, :, None]

    def lognormal(shape: tuple[int, ...]) -> np.ndarray:
        return np.exp(b.noise * rng.standard_normal(shape) - 0.5 * b.noise**2)

    half = market.half_spread[seq][:, :, None] * lognormal((k, n, 1))
    level = np.arange(levels)[None, None, :]
    offsets = half + 1e-4 * b.level_spacing_bps * widen * level
    if offsets.max() >= 0.9:
        raise ConfigError(
            f"simulated book reaches {offsets.max():.0%} away from mid: lower book.levels ({levels}), "
            f"book.level_spacing_bps ({b.level_spacing_bps}), book.spread_bps or the regimes' spread_scale"
        )
    prices = np.stack([mid * (1.0 - offsets), mid * (1.0 + offsets)])
    notional = market.depth[seq][:, :, None] * (1.0 + b.level_growth * level) * lognormal((2, k, n, levels))
    return BookSnapshots(seq=seq, times=market.price_times[seq], prices=prices, sizes=notional / prices)
