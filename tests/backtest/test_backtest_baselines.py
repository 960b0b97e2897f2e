"""Baselines: no look-ahead, their defining properties, and a run of every baseline on real
Binance USDT-M perpetual 5-minute bars (declared ``funding: none``) through the backtester."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bt_helpers import random_panel

from dea.backtest.baselines import BASELINES, baseline_targets, benchmark_index, targets_from
from dea.backtest.config import BaselineConfig
from dea.backtest.vectorized import backtest, backtest_config
from dea.config.experiment import validate_config
from dea.data.panel import Panel, build_panel
from dea.errors import ConfigError
from dea.metrics import compute_metrics
from dea.timeutil import NS_PER_DAY

CFG = BaselineConfig(rebalance="1d", vol_lookback="20d", momentum_lookback="10d", refit="30d", fit_lookback="60d")


@pytest.fixture(scope="module")
def daily() -> Panel:
    panel, _ = random_panel(260, 3, seed=11, step=NS_PER_DAY)
    price = panel.fields["price"].copy()
    price[:40, 2] = np.nan  # a late listing
    return Panel(clock=panel.clock, step_ns=panel.step_ns, instruments=panel.instruments,
                 fields={**panel.fields, "price": price})


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_do_not_look_ahead(daily: Panel, name: str):
    full = BASELINES[name](daily, CFG)
    assert full.shape == daily.fields["price"].shape
    for cut in (35, 90, 181):
        head = BASELINES[name](daily.head(cut), CFG)
        np.testing.assert_array_equal(head, full[:cut])
    # scrambling the future leaves every decision up to the cut unchanged
    rng = np.random.default_rng(0)
    future = daily.fields["price"].copy()
    future[121:] *= np.exp(rng.normal(0, 0.2, future[121:].shape))
    other = Panel(clock=daily.clock, step_ns=daily.step_ns, instruments=daily.instruments,
                  fields={**daily.fields, "price": future})
    np.testing.assert_array_equal(BASELINES[name](other, CFG)[:121], full[:121])


def test_baseline_definitions(daily: Panel):
    price = daily.fields["price"]
    bh = BASELINES["buy_and_hold"](daily, CFG)
    np.testing.assert_array_equal(bh[0], [1.0, 0.0, 0.0])
    assert np.isnan(bh[1:]).all()  # entered once, then held
    ew = BASELINES["equal_weight"](daily, CFG)
    np.testing.assert_allclose(ew[10], [0.5, 0.5, 0.0])  # the third is not listed yet
    np.testing.assert_allclose(ew[100], [1 / 3] * 3)
    iv = BASELINES["inverse_vol"](daily, CFG)
    r = np.log(price[81:101] / price[80:100])
    inv = 1 / r.std(axis=0, ddof=1)
    np.testing.assert_allclose(iv[100], inv / inv.sum(), rtol=1e-9)
    ts = BASELINES["tsmom"](daily, CFG)
    mom = np.log(price[100] / price[90])
    np.testing.assert_array_equal(np.sign(ts[100]), np.sign(mom))
    for name in ("hrp", "mean_risk"):
        w = BASELINES[name](daily, CFG)
        assert np.isnan(w[1:30]).all()  # held between refits
        refits = w[np.isfinite(w).all(axis=1)]
        assert (refits >= -1e-9).all() and np.allclose(refits[refits.sum(1) > 0].sum(1), 1.0)
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline_targets("nope", daily)
    with pytest.raises(ConfigError, match="benchmark"):
        benchmark_index(daily, BaselineConfig(benchmark="DOGE"))


def test_targets_from_enters_the_position_decided_earlier():
    t = np.array([[1.0, 0.0], [np.nan, np.nan], [np.nan, 0.5], [np.nan, np.nan]])
    np.testing.assert_array_equal(targets_from(t, 1), [[1.0, 0.0], [np.nan, 0.5], [np.nan, np.nan]])
    np.testing.assert_array_equal(targets_from(t, 3)[0], [1.0, 0.5])


def _perps_config(shared_data, tmp_path):  # noqa: ANN001, ANN202
    folder = shared_data / "perps_5m_15m"
    sources, instruments = [], []
    for base in ("BTC", "ETH", "LTC"):
        sym = f"{base}USDT"
        instruments.append({"symbol": sym, "venue": "binance", "kind": "perpetual", "base": base, "quote": "USDT",
                            "funding": "none", "lot_size": 0.001, "min_notional": 5.0,
                            "taker_fee": 0.0005, "maker_fee": 0.0002})
        sources.append({"name": base.lower(), "kind": "bars", "format": "freqtrade", "instrument": sym, "step": "5m",
                        "path": str(folder / f"{base}_USDT_USDT-5m-futures.feather")})
    raw = {
        "name": "perps5m",
        "data": {"store": str(tmp_path / "store"), "instruments": instruments, "sources": sources,
                 "clock": {"step": "5m", "start": "2024-01-01", "end": "2024-02-01"}},
        "features": {"set": [{"name": "logret", "params": {"horizon": 1}}]},
        "costs": {"impact": {"model": "sqrt", "k": 0.5}, "latency": "30s"},
        "risk": {"no_trade_band": 0.01},
        "backtest": {"baseline": {"rebalance": "1d", "vol_lookback": "3d", "momentum_lookback": "3d",
                                  "refit": "7d", "fit_lookback": "14d"}},
    }
    return validate_config(raw, tmp_path)


def test_every_baseline_on_real_perpetual_bars(shared_data, tmp_path):  # noqa: ANN001
    cfg = _perps_config(shared_data, tmp_path)
    panel = build_panel(cfg)
    T = len(panel.clock)
    assert T == 31 * 288 + 1 and panel.instruments == ("BTCUSDT", "ETHUSDT", "LTCUSDT")
    for name in cfg.backtest.baselines:
        targets = BASELINES[name](panel, cfg.backtest.baseline)
        res = backtest_config(cfg, panel, targets, hold_nan=True, name=name)
        m = compute_metrics(res)
        assert np.isfinite(res.equity).all() and res.final_equity > 0, name
        assert res.latency_ns == 30_000_000_000
        assert m["cost_fees"] > 0 and m["cost_impact"] > 0 and m["cost_funding"] == 0.0, name
        assert math.isfinite(m["sharpe"]) and 0 <= m["max_drawdown"] < 1, name
        assert any("funding: none" in n for n in res.notes)
        if name in ("equal_weight", "tsmom"):  # the event replay agrees on real data too
            ref = backtest_config(cfg, panel, targets, hold_nan=True, name=name, engine="reference")
            np.testing.assert_allclose(ref.equity, res.equity, rtol=1e-10)
            assert ref.interventions == res.interventions
    bh = backtest_config(cfg, panel, BASELINES["buy_and_hold"](panel, cfg.backtest.baseline), hold_nan=True)
    assert bh.exposures[:, 0].mean() > 0.5 and not bh.exposures[:, 1:].any()


def test_backtest_needs_instruments_for_a_panel(daily: Panel):
    with pytest.raises(Exception, match="instruments"):
        backtest(daily, np.zeros(daily.fields["price"].shape))
