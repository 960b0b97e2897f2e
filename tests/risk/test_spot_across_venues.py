"""Unlevered spot is unlevered across venues: the collateral of every account together is at most
the one equity, so two cash accounts cannot each hold spot worth the whole equity."""

from __future__ import annotations

import numpy as np
import pytest

from dea.config.accounts import AccountsConfig
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.risk.engine import RiskEngine, gross_limit

T = 1_700_000_000_000_000_000
SPOT_A = Instrument(symbol="BTCUSDT", venue="binance", kind="spot", base="BTC", quote="USD")
SPOT_B = Instrument(symbol="BTC-USD", venue="coinbase", kind="spot", base="BTC", quote="USD")
PERP = Instrument(symbol="BTCPERP", venue="bybit", kind="perpetual", base="BTC", quote="USD", funding="none")
LOOSE = RiskConfig(max_exposure=5.0, max_gross=10.0, max_net=10.0, max_leverage=10.0, drawdown={"enabled": False})


def test_two_cash_accounts_share_one_equity():
    eng = RiskEngine(LOOSE, [SPOT_A, SPOT_B])
    d = eng.apply(T, np.array([1.0, 1.0]), np.zeros(2), 1e6)
    np.testing.assert_allclose(d.exposure, [0.5, 0.5])  # 1.0 in all, not 2.0 with no margin anywhere
    assert [r.rule for r in d.interventions] == ["account_limit"]
    assert "collateral of all venues" in d.interventions[0].reason
    assert eng.apply(T + 1, np.array([0.7, 0.3]), np.zeros(2), 1e6).exposure.tolist() == [0.7, 0.3]
    assert gross_limit(LOOSE, [SPOT_A, SPOT_B]) == pytest.approx(1.0)


def test_margin_posted_elsewhere_counts_against_the_same_equity():
    """Cash spot 0.8 at Binance plus a 5x-levered perp of 1.5 at Bybit (0.3 of margin): 1.1 of
    equity posted, scaled to 1.0 (both by 1/1.1); a perp without leverage set posts nothing."""
    acc = AccountsConfig(list=[{"name": "bb", "venue": "bybit", "collateral": "USD", "leverage": 5}])
    eng = RiskEngine(LOOSE, [SPOT_A, PERP], acc)
    d = eng.apply(T, np.array([0.8, 1.5]), np.zeros(2), 1e6)
    np.testing.assert_allclose(d.exposure, [0.8 / 1.1, 1.5 / 1.1])
    free = RiskEngine(LOOSE, [SPOT_A, PERP])
    assert free.apply(T, np.array([0.8, 1.5]), np.zeros(2), 1e6).exposure.tolist() == [0.8, 1.5]
