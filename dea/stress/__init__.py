"""Stress scenarios: a market path model, shock generators, real-history windows (numpy at import)."""

from dea.stress.generators import (
    correlation_one,
    flash_crash,
    funding_squeeze,
    latency_spike,
    liquidity_drain,
    order_rejects,
    stale_feed,
    transplant,
    vol_spike,
)
from dea.stress.history import Drawdown, read_coinmetrics, read_freqtrade_close, worst_drawdowns
from dea.stress.library import build_library, build_scenario, select
from dea.stress.path import BookLevels, MarketPath, path_from_bars_table, path_from_prices, path_to_bars_table

__all__ = [
    "BookLevels",
    "Drawdown",
    "MarketPath",
    "build_library",
    "build_scenario",
    "correlation_one",
    "flash_crash",
    "funding_squeeze",
    "latency_spike",
    "liquidity_drain",
    "order_rejects",
    "path_from_bars_table",
    "path_from_prices",
    "path_to_bars_table",
    "read_coinmetrics",
    "read_freqtrade_close",
    "select",
    "stale_feed",
    "transplant",
    "vol_spike",
    "worst_drawdowns",
]
