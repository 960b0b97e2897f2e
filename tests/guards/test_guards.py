"""The market-data guards (dea.guards): verdicts by hand-checkable cases, the config contract,
the batch panel on real Binance bars (a NaN close no longer resets the age; clean data is left
alone) and the event backtest (a spike is never traded, an out-of-order event no longer stops it)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from dea.backtest.config import CostsConfig
from dea.backtest.event import BarEvent, EventBacktester
from dea.config import load_config
from dea.errors import ConfigError
from dea.guards import GuardsConfig, MarketGuard, apply_actions
from dea.risk.config import RiskConfig

T0 = 1_700_000_000_000_000_000
H = 3_600_000_000_000


def _guard(**kw):
    return MarketGuard(GuardsConfig(**kw), ["A", "B"], clock=lambda: T0 + 10_000 * H)


def _walk(g, n=60, p=100.0, stream=0):
    for k in range(n):
        p *= 1.0 + (0.004 if k % 2 else -0.004)
        assert g.check_price(stream, 0, T0 + k * H, T0 + k * H, p) is None
    return p, T0 + n * H


def test_bad_values_and_their_verdicts():
    g = _guard()
    p, t = _walk(g)
    assert g.check_price(0, 0, t, t, math.nan) == "missing"
    assert g.check_price(0, 0, t, t, math.inf) == "nonfinite"
    assert g.check_price(0, 0, t, t, -100.0) == "nonpositive"
    assert g.check_price(0, 0, t, t, 0.0) == "nonpositive"
    assert g.check_price(0, 0, t - 5 * H, t - 5 * H, p) == "out_of_order"
    assert g.check_price(0, 0, t - H, t - H, p * 1.3) == "conflict"  # same stamp as the last good, other value
    last = g._streams[(0, 0)][1]
    assert g.check_price(0, 0, t - H, t - H, last) == "duplicate"
    far = T0 + 20_000 * H
    assert g.check_price(0, 0, far, far, p) == "future"
    assert g.counts["missing"] == g.counts["nonfinite"] == g.counts["future"] == 1


def test_a_spike_is_refuted_by_the_next_price_and_a_real_move_confirmed():
    g = _guard()
    p, t = _walk(g)
    assert g.check_price(0, 0, t, t, p * 1.5) == "jump"  # 50 % in one bar: quarantined
    assert g.check_price(0, 0, t + H, t + H, p * 1.001) is None  # back near the old level: spike refuted
    g2 = _guard()
    p, t = _walk(g2)
    assert g2.check_price(0, 0, t, t, p * 0.6) == "jump"
    # a mark price (another stream of the same instrument) near the new level confirms the move
    assert g2.check_price(1, 0, t + 1, t + 1, p * 0.62) is None
    assert g2.check_price(0, 0, t + H, t + H, p * 0.61) is None  # the new level is the reference now


def test_fixed_fraction_and_disabled_jump_guard():
    g = _guard(jump={"k_sigma": None, "max_move": 0.2})
    assert g.check_price(0, 0, T0, T0, 100.0) is None
    assert g.check_price(0, 0, T0 + H, T0 + H, 125.0) == "jump"  # no warm-up needed for a fixed fraction
    off = _guard(jump={"enabled": False})
    assert off.check_price(0, 0, T0, T0, 100.0) is None
    assert off.check_price(0, 0, T0 + H, T0 + H, 300.0) is None


def test_actions_hold_derisk_halt():
    tgt = [0.5, -0.5]
    assert not apply_actions(tgt, [0.2, -0.4], {0: "hold", 1: "derisk"}, 0.5)
    assert math.isnan(tgt[0]) and tgt[1] == pytest.approx(-0.2)
    assert apply_actions([0.1, 0.1], [0.0, 0.0], {1: "halt"}, 0.5)


def test_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(Exception, match="extra|unknown"):
        GuardsConfig(jump={"k_sigmaa": 3})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
data:
  instruments: [{symbol: A, venue: x, kind: spot, base: A, quote: USD}]
  sources: [{name: a, kind: bars, format: sim, path: "-", instrument: A}]
  clock: {step: 1h}
features: {set: [{name: logret, params: {horizon: 1}}]}
guards: {actions: {jump: freeze}}
""")
    with pytest.raises(ConfigError, match="guards.actions.jump"):
        load_config(cfg)


@pytest.fixture(scope="module")
def btc_bars(shared_data):
    from dea.config.experiment import validate_config
    from dea.data.sources import load_source

    raw = {
        "data": {
            "instruments": [{"symbol": "BTCUSDT", "venue": "binance", "kind": "perpetual", "base": "BTC", "quote": "USDT",
                             "funding": "none"}],
            "sources": [{"name": "btc", "kind": "bars", "format": "freqtrade", "instrument": "BTCUSDT", "step": "5m",
                         "path": str(shared_data / "perps_5m_15m" / "BTC_USDT_USDT-5m-futures.feather")}],
            "clock": {"step": "1h", "start": "2024-03-01", "end": "2024-03-20"},
        },
        "features": {"set": [{"name": "logret", "params": {"horizon": 1}}]},
    }
    cfg = validate_config(raw)
    table = load_source(cfg.data.sources[0], cfg.base_dir).table
    ts = table["ts_event"].to_numpy()
    keep = (ts >= np.int64(T0 * 0) + np.datetime64("2024-02-25", "ns").astype(np.int64)) & \
        (ts < np.datetime64("2024-03-21", "ns").astype(np.int64))
    return cfg, table.filter(pa.array(keep))


def test_batch_panel_leaves_clean_real_bars_alone(btc_bars):
    from dea.data.panel import assemble_panel

    cfg, table = btc_bars
    on = assemble_panel(cfg.data, {"btc": table}, guards=GuardsConfig())
    off = assemble_panel(cfg.data, {"btc": table}, guards=GuardsConfig(enabled=False))
    assert "guards" not in on.report
    np.testing.assert_array_equal(on.fields["price"], off.fields["price"])
    np.testing.assert_array_equal(on.age["price"], off.age["price"])


def test_batch_panel_nan_close_age_counts_from_the_last_good_bar(btc_bars):
    from dea.data.panel import assemble_panel

    cfg, table = btc_bars
    ts = table["ts_event"].to_numpy()
    t_bad0 = np.datetime64("2024-03-10", "ns").astype(np.int64)
    bad = (ts >= t_bad0) & (ts < t_bad0 + 5 * 24 * H)
    close = table["close"].to_numpy().copy()
    close[bad] = np.nan
    t2 = table.set_column(table.schema.get_field_index("close"), "close", pa.array(close))
    p = assemble_panel(cfg.data, {"btc": t2})
    assert p.report["guards"] == {"missing": int(bad.sum())}
    clock = p.clock
    i = int(np.searchsorted(clock, t_bad0 + 5 * 24 * H - H))
    assert math.isnan(p.fields["price"][i, 0])
    # the last good bar closed at t_bad0 (available one 5m step later): ~5 days old, not 1 bar
    assert p.age["price"][i, 0] == pytest.approx(clock[i] - t_bad0, abs=10 * 60e9)
    assert p.age["price"][i, 0] > 4 * 24 * H


def test_event_backtest_never_trades_a_spike_and_survives_disorder():
    from dea.instruments import Instrument

    inst = [Instrument(symbol="A", venue="x", kind="spot", base="A", quote="USD", lot_size=0.0001)]
    costs = CostsConfig(initial_equity=10_000.0, impact={"model": "none"})
    risk = RiskConfig(max_exposure=1.0, max_gross=1.0, max_net=1.0, no_trade_band=0.0)
    prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, np.tile([0.003, -0.003], 30)]))
    k_spike = 45
    evs = [BarEvent(T0 + k * H, np.array([prices[k] * (1.5 if k == k_spike else 1.0)])) for k in range(len(prices))]
    evs.insert(20, BarEvent(T0 + 5 * H, np.array([prices[5]])))  # an old bar again: out of order

    def policy(ctx):
        return np.array([0.9 if ctx.index % 2 else 0.1])

    decisions = [T0 + k * H + 1 for k in range(len(prices))]
    bt = EventBacktester(inst, costs, risk, policy, guards=GuardsConfig())
    res = bt.run(evs, decisions)
    kinds = [e.kind for e in res.events]
    assert "guard:jump" in kinds and "guard:out_of_order" in kinds
    clean = EventBacktester(inst, costs, risk, policy).run(
        [BarEvent(T0 + k * H, np.array([prices[k]])) for k in range(len(prices))], decisions)
    spiked = [e for k, e in enumerate(evs) if k != 20]
    unguarded = EventBacktester(inst, costs, risk, policy).run(spiked, decisions)
    # unguarded, the spike is bought at 150 and marked back to 100: a large loss; guarded, the
    # spike never marks or fills and the run stays within costs of the clean one
    assert unguarded.equity[-1] < clean.equity[-1] * 0.8
    assert res.equity[-1] == pytest.approx(clean.equity[-1], rel=0.01)
    with pytest.raises(Exception, match="back in time"):
        EventBacktester(inst, costs, risk, policy).run(evs, decisions)
