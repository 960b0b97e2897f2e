"""Greek budgets in the risk engine (``risk.greeks``): option orders checked pre-trade with the
linear exposure counted in the delta, linear targets cut so linear + option delta stays within
``max_delta``, the same cut in the event backtest, and nothing configured = nothing paid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dea.config.experiment import validate_config
from dea.errors import ConfigError, RiskError
from dea.instruments import Instrument
from dea.options.portfolio import GreekExposure
from dea.risk.config import RiskConfig
from dea.risk.engine import GREEK_RULE, RiskEngine

REPO = Path(__file__).resolve().parents[2]
T = 1_700_000_000_000_000_000
BTC = Instrument(symbol="BTCUSDT", kind="perpetual", base="BTC", quote="USDT", funding="none",
                 taker_fee=0.0, maker_fee=0.0)
ETH = Instrument(symbol="ETHUSDT", kind="perpetual", base="ETH", quote="USDT", funding="none",
                 taker_fee=0.0, maker_fee=0.0)
LOOSE = dict(max_exposure=5.0, max_gross=10.0, max_net=10.0, max_leverage=10.0, drawdown={"enabled": False})


def _engine(**budget) -> RiskEngine:  # noqa: ANN003
    return RiskEngine(RiskConfig(**LOOSE, greeks={"BTC": budget}), [BTC, ETH])


def test_option_delta_counts_in_the_underlying_exposure():
    """max_delta 1.0; long puts/calls worth +0.5 delta: a 0.8 BTC perp target is cut to 0.5,
    ETH (no budget) untouched."""
    eng = _engine(max_delta=1.0)
    d = eng.apply(T, np.array([0.8, 0.5]), np.zeros(2), 1e6, option_greeks={"BTC": GreekExposure(delta=0.5)})
    np.testing.assert_allclose(d.exposure, [0.5, 0.5])
    assert [r.rule for r in d.interventions] == [GREEK_RULE] and eng.counts[GREEK_RULE] == 1
    # without options the same target fits the budget
    assert eng.apply(T + 1, np.array([0.8, 0.5]), np.zeros(2), 1e6).exposure.tolist() == [0.8, 0.5]
    # options alone beyond the budget (delta 1.5): a long perp that widens it goes to 0, a hedge stays
    wide = eng.apply(T + 2, np.array([0.3, 0.0]), np.zeros(2), 1e6, option_greeks={"BTC": GreekExposure(delta=1.5)})
    assert wide.exposure.tolist() == [0.0, 0.0]
    hedge = eng.apply(T + 3, np.array([-0.2, 0.0]), np.zeros(2), 1e6, option_greeks={"BTC": GreekExposure(delta=1.5)})
    assert hedge.exposure.tolist() == [-0.2, 0.0] and not hedge.interventions


def test_vega_budget_binds_on_an_option_order():
    """Book vega 0.002, 0.001 per contract, max_vega 0.005: 5 contracts asked, (0.005-0.002)/0.005
    = 0.6 of them allowed = 3.0 contracts, bound by vega."""
    eng = _engine(max_vega=0.005)
    per = GreekExposure(delta=0.02, vega=0.001)
    dec = eng.check_option_order("BTC", per, 5.0, np.zeros(2), GreekExposure(vega=0.002))
    assert dec.quantity == pytest.approx(3.0) and dec.binding == ("vega",) and not dec.refused
    assert eng.counts[GREEK_RULE] == 1
    # selling vega back is always allowed
    assert eng.check_option_order("BTC", per, -5.0, np.zeros(2), GreekExposure(vega=0.002)).quantity == -5.0


def test_linear_exposure_counts_in_an_option_orders_delta():
    """max_delta 1.0 with 0.9 held in the BTC perp: 4 calls of delta 0.05 (0.2) fit only half: 2."""
    eng = _engine(max_delta=1.0)
    per = GreekExposure(delta=0.05)
    assert eng.check_option_order("BTC", per, 4.0, np.array([0.9, 0.7]), None).quantity == pytest.approx(2.0)
    assert eng.check_option_order("BTC", per, 4.0, np.array([0.0, 0.7]), None).quantity == 4.0
    eng.halt()
    assert eng.check_option_order("BTC", per, 4.0, np.zeros(2), None).refused


def test_no_budgets_means_no_greek_path_and_misuse_is_an_error():
    eng = RiskEngine(RiskConfig(**LOOSE), [BTC, ETH])
    assert eng._greeks is None  # apply() never enters the greek code
    with pytest.raises(RiskError, match="option deltas would be ignored"):
        eng.apply(T, np.array([0.1, 0.1]), np.zeros(2), 1e6, option_greeks={"BTC": GreekExposure(delta=0.1)})
    with pytest.raises(RiskError, match="needs risk.greeks"):
        eng.check_option_order("BTC", GreekExposure(vega=0.001), 1.0, np.zeros(2))
    with pytest.raises(RiskError, match="no instrument has it as base"):
        RiskEngine(RiskConfig(**LOOSE, greeks={"SOL": {"max_vega": 0.01}}), [BTC, ETH])
    with pytest.raises(RiskError, match="no risk.greeks budget"):
        _engine(max_delta=1.0).apply(T, np.zeros(2), np.zeros(2), 1e6, option_greeks={"ETH": GreekExposure(delta=0.1)})


def test_an_option_in_data_instruments_is_refused_at_config_load():
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["instruments"].append({"symbol": "BTC-26JUN20-8000-C", "kind": "option", "base": "BTC",
                                       "expiry": "2020-06-26T08:00:00Z"})
    with pytest.raises(ConfigError, match="options overlay"):
        validate_config(raw, REPO / "configs")
