"""Real base paths for the stress tests (Binance USDT-M perps, 5-minute closes)."""

from __future__ import annotations

import numpy as np
import pytest

from dea.stress import MarketPath, path_from_prices, read_freqtrade_close


@pytest.fixture(scope="session")
def perps_5m(shared_data):
    """(clock, close [T, 3]) of BTC, ETH, LTC on their common clock."""
    series = [read_freqtrade_close(shared_data / "perps_5m_15m" / f"{s}_USDT_USDT-5m-futures.feather") for s in ("BTC", "ETH", "LTC")]
    common = series[0][0]
    for c, _ in series[1:]:
        common = np.intersect1d(common, c)
    closes = np.column_stack([v[np.searchsorted(c, common)] for c, v in series])
    return common, closes


@pytest.fixture()
def base_path(perps_5m) -> MarketPath:
    """2,000 real 5-minute steps (about a week) from mid-2023, with an 8 h funding of 1 bp."""
    clock, close = perps_5m
    sl = slice(60_000, 62_000)
    c = clock[sl]
    settled = np.where((c % (8 * 3600 * 10**9)) == 0, 1e-4, 0.0)[:, None] * np.ones((1, 3))
    return path_from_prices(
        c, close[sl], ["BTC-PERP", "ETH-PERP", "LTC-PERP"], spread_bps=1.0, depth=5e6,
        funding_rate=np.full((c.size, 3), 1e-4), funding_settled=settled,
    )
