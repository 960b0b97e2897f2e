"""Risk rules the backtests share with the live RiskEngine: greek budgets (``risk.greeks``, event
replay only: the jitted kernel refuses them) and unlevered spot across venues (both engines)."""

from __future__ import annotations

import numpy as np
import pytest

from bt_helpers import FREE, market
from dea.backtest.vectorized import backtest
from dea.errors import ConfigError
from dea.instruments import Instrument
from dea.risk.config import RiskConfig

BTC = Instrument(symbol="BTCUSDT", kind="perpetual", base="BTC", quote="USDT", funding="none",
                 taker_fee=0.0, maker_fee=0.0)
ETH = Instrument(symbol="ETHUSDT", kind="perpetual", base="ETH", quote="USDT", funding="none",
                 taker_fee=0.0, maker_fee=0.0)
SPOT_A = Instrument(symbol="BTCUSDT", venue="binance", kind="spot", base="BTC", quote="USD")
SPOT_B = Instrument(symbol="BTC-USD", venue="coinbase", kind="spot", base="BTC", quote="USD")
LOOSE = dict(max_exposure=5.0, max_gross=10.0, max_net=10.0, max_leverage=10.0, drawdown={"enabled": False})


def test_backtests_enforce_the_delta_budget_like_the_live_engine():
    """The event replay (engine: reference) runs the RiskEngine, so max_delta caps the BTC perp at
    0.6; the jitted kernel does not run greek budgets and refuses the config instead."""
    risk = RiskConfig(**LOOSE, greeks={"BTC": {"max_delta": 0.6}})
    m = market(np.array([[100.0, 10.0], [110.0, 11.0], [121.0, 12.0]]), instruments=[BTC, ETH])
    res = backtest(m, np.tile([1.0, 1.0], (3, 1)), costs=FREE, risk=risk, engine="reference")
    np.testing.assert_allclose(res.exposures[0], [0.6, 1.0])
    with pytest.raises(ConfigError, match="engine: reference"):
        backtest(m, np.tile([1.0, 1.0], (3, 1)), costs=FREE, risk=risk)


@pytest.mark.parametrize("engine", ["numba", "reference"])
def test_spot_stays_unlevered_across_venues_in_both_engines(engine: str):
    a = SPOT_A.model_copy(update={"taker_fee": 0.0, "maker_fee": 0.0})
    b = SPOT_B.model_copy(update={"taker_fee": 0.0, "maker_fee": 0.0})
    res = backtest(market(np.array([[100.0, 100.0], [90.0, 90.0]]), instruments=[a, b]), np.ones((2, 2)),
                   costs=FREE, risk=RiskConfig(**LOOSE), engine=engine)
    np.testing.assert_allclose(res.exposures[0], [0.5, 0.5])
    assert res.final_equity == pytest.approx(0.9e6)  # fully invested once, not twice
