"""Per-step market arrays the objective needs, derived from the backtester's own market arrays.

Why derive from :func:`dea.backtest.market.prepare_market`: the policy must be trained on the
same fees, spread, impact and funding it is later evaluated with; computing them twice invites
drift. Alignment (decision at row t, exposure held over (t, t+1])::

    returns[t]  = price[t+1] / price[t] - 1            (NaN on the last row)
    funding[t]  = market.funding[t+1]                   rates settled in (t, t+1]
    impact[t]   = market.impact_coef[t] * sqrt(equity)  so that the cost of a trade |dw| is
                  impact[t] * |dw| ** 1.5 as a fraction of equity (square-root law)
    fee[i]      = fee rate of the configured side + half spread

``prepare_market`` already refuses a perpetual whose funding is unknown while it trades
(:class:`MissingFundingError`); nothing here turns a missing value into a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.backtest.config import CostsConfig
from dea.backtest.market import Market, prepare_market
from dea.data.panel import Panel
from dea.execution.fills import fee_rates
from dea.instruments import Instrument
from dea.timeutil import NS_PER_YEAR


@dataclass(frozen=True)
class MarketArrays:
    """Aligned float64 arrays [T, N] (``fee`` [N]) for the cost-aware objective."""

    clock: np.ndarray
    instruments: tuple[str, ...]
    returns: np.ndarray
    funding: np.ndarray
    impact: np.ndarray
    fee: np.ndarray
    sigma: np.ndarray  # per-step volatility known at t (for volatility-scaled baselines)
    periods_per_year: float

    def net_returns(self, exposure: np.ndarray, held: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        """Per-step net return [len(rows)] of holding ``exposure`` over ``rows`` after trading
        from ``held`` (the previous exposure drifted; ``None`` = the previous row of
        ``exposure``, flat before the first): the objective's cost model in numpy (fees and half
        spread on |dw|, square-root impact on |dw|**1.5, funding on the exposure held). Unknown
        returns, funding or impact count 0 here: callers mask rows that are not tradable."""
        w = np.asarray(exposure, dtype=np.float64)
        prev = np.vstack([np.zeros((1, w.shape[1])), w[:-1]]) if held is None else np.asarray(held, dtype=np.float64)
        r, f, imp = (np.nan_to_num(a[rows]) for a in (self.returns, self.funding, self.impact))
        dw = np.abs(w - prev)
        return (w * (r - f)).sum(1) - (self.fee * dw).sum(1) - (imp * dw**1.5).sum(1)

    @property
    def tradable(self) -> np.ndarray:
        """Rows [T] whose forward return, funding and impact are all known."""
        return (
            np.isfinite(self.returns).all(1) & np.isfinite(self.funding).all(1) & np.isfinite(self.impact).all(1)
        )


def _rolling_rms(x: np.ndarray, window: int) -> np.ndarray:
    """Root mean square of the finite values of rows (t - window, t] (causal)."""
    import pandas as pd

    return np.sqrt(pd.DataFrame(x * x).rolling(window, min_periods=max(2, window // 2)).mean().to_numpy())


def arrays_from_market(market: Market, costs: CostsConfig, vol_window: int | None = None) -> MarketArrays:
    """:class:`MarketArrays` from a prepared backtest :class:`Market`."""
    price = market.price
    T, N = price.shape
    returns = market.forward_returns
    funding = np.full((T, N), np.nan)
    funding[:-1] = market.funding[1:]
    impact = np.asarray(market.impact_coef, dtype=np.float64) * np.sqrt(costs.initial_equity)
    past = np.full((T, N), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        past[1:] = np.log(price[1:] / price[:-1])
    sigma = _rolling_rms(past, vol_window or costs.impact.vol_window)
    fee = fee_rates(market.instruments, costs.fee_side) + costs.half_spread_bps * 1e-4
    return MarketArrays(
        clock=np.asarray(market.clock),
        instruments=market.symbols,
        returns=returns,
        funding=funding,
        impact=impact,
        fee=fee,
        sigma=sigma,
        periods_per_year=NS_PER_YEAR / float(market.step_ns),
    )


def market_arrays(panel: Panel, instruments: Sequence[Instrument], costs: CostsConfig) -> MarketArrays:
    """Build :class:`MarketArrays` from ``panel`` via the backtester's ``prepare_market``."""
    return arrays_from_market(prepare_market(panel, instruments, costs), costs)
