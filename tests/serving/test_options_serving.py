"""The option overlay in the live loop and on the paper option venue.

The live loop replays real Binance BTCUSDT 5-minute bars on a daily 08:00 UTC clock with a
constant exposure of 1.0 (a constant ONNX policy), costs reduced to the overlay backtest's (taker
fee only, latency 0), and runs ``serving.options_overlay``. Its option rolls, contracts and
equity are those of :func:`dea.backtest.options_overlay.run_overlay` on the same decision clock,
prices and flat IV (the parity anchor): to 1e-9 without fees; to 1e-4 with fees (5 bp perpetual
taker, Deribit's option fees), because the loop holds a *quantity*, sized on the equity before
the fees paid after it, while run_overlay holds an exposure *fraction* of the equity after every
fee (its perpetual shrinks with each fee): a fee of 3e-4 of equity moves the next day's PnL by
~1e-5 of equity, and a later roll's size by as much. The vega budget cuts the same contracts; settlement is
hand-computed on the paper venue; a kill between an option order and its journal entry trades
nothing twice; ccxt is refused; a quarantined price or IV holds the overlay."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from serving_helpers import export_config_policy

from dea.backtest.options_overlay import _asof, guarded, run_overlay
from dea.config import load_config
from dea.errors import ConfigError, ExchangeError
from dea.guards import MarketGuard
from dea.options import parse_option_name
from dea.options.overlay_config import OptionFeeConfig
from dea.timeutil import parse_timestamp
from serving.exchanges.paper import PaperExchange
from serving.exchanges.paper_options import OptionOrder, PaperOptionVenue
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner

NO_FEES = {"rate": 0.0, "delivery_rate": 0.0, "cap_of_premium": 0.0}
DERIBIT = {"rate": 0.0003, "delivery_rate": 0.00015, "cap_of_premium": 0.125}
EQUITY0 = 1_000_000.0


def _config(folder: Path, shared: Path, *, budgets: dict | None = None, iv: dict | None = None, extra_sources=(),
            taker: float = 0.0, option_fees: dict | None = None, guards: dict | None = None) -> Path:
    raw = {
        "name": "options-serving",
        "data": {
            "instruments": [{"symbol": "BTCUSDT", "venue": "binance", "kind": "perpetual", "base": "BTC", "quote": "USDT",
                             "funding": "none", "taker_fee": taker, "maker_fee": 0.0}],
            "sources": [{"name": "btc", "kind": "bars", "format": "freqtrade", "instrument": "BTCUSDT", "step": "5m",
                         "path": str(shared / "perps_5m_15m" / "BTC_USDT_USDT-5m-futures.feather")}, *extra_sources],
            "clock": {"step": "1d", "start": "2024-01-01T08:00:00Z", "end": "2024-02-15T08:00:00Z"},
        },
        "model": {"base": {"kind": "none"}, "adjust": {"vol_scaling": False}},
        "features": {"set": [{"name": "hour_of_day"}]},
        "costs": {"fee_side": "taker", "half_spread_bps": 0.0, "impact": {"model": "sqrt", "k": 0.0},
                  "initial_equity": EQUITY0},
        "risk": {"max_exposure": 1.5, "max_gross": 2.0, "max_net": 1.5, "max_leverage": 3.0, "no_trade_band": 0.0,
                 "drawdown": {"enabled": False}},  # run_overlay has no risk rules: none cut the perpetual here
        **({"guards": guards} if guards else {}),
        "serving": {"journal_sync": "normal", "model_poll": None, "options_overlay": {
            "instrument": "BTCUSDT",
            "leg": {"strategy": "protective_put", "moneyness": 0.95, "tenor": "7d", "strike_step": 500.0},
            "fees": option_fees or NO_FEES,
            "iv": iv or {"flat": 0.55},
            "budgets": budgets or {},
        }},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "options.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    """Config, the bar table cut to the clock (plus a week before it) and a constant policy."""
    tmp = tmp_path_factory.mktemp("options")
    cfg = load_config(_config(tmp, shared_data))
    since, until = parse_timestamp("2023-12-25"), parse_timestamp("2024-02-16")
    tables = {k: t.filter(pc.and_(pc.greater_equal(t["ts_event"], since), pc.less(t["ts_event"], until)))
              for k, t in load_tables(cfg).items()}
    model = export_config_policy(cfg, tmp / "hold.onnx", constant=1.0)
    return cfg, tables, model, shared_data


def _venues(cfg):
    ov = cfg.serving.options_overlay
    return (PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.0]),
            PaperOptionVenue(ov.fees, multiplier=ov.leg.multiplier))


def _run(cfg, tables, model, journal, venues=None, hook=None):
    ex, opt = venues or _venues(cfg)
    replay = TableReplay(cfg.data, tables)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), ex, Journal(journal, synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps,
                    crash_hook=hook, option_venue=opt)
    return loop, loop.run(replay.events(loop.panel))


def _backtest(cfg, states):
    """run_overlay on the live loop's decision clock, at the prices it used, flat IV."""
    ov = cfg.serving.options_overlay
    ts = np.array([s["t_ns"] for s in states], dtype=np.int64)
    px = np.array([s["price"] for s in states])
    iv = np.full(len(ts), ov.iv.flat)
    return run_overlay(ts, px, iv, np.ones(len(ts)), ov.leg, ov.budgets, ov.fees, underlying="BTC",
                       initial_equity=EQUITY0, perp_taker_fee=cfg.data.instruments[0].taker_fee)


def _roll_events(journal: Journal):
    return [(f.ts, f.instrument, f.contracts) for f in journal.option_fills() if f.kind == "trade"]


@pytest.mark.parametrize(("fees", "rtol"), [("none", 1e-9), ("real", 1e-4)])
def test_live_overlay_matches_the_backtest(base, tmp_path, fees, rtol):
    """(a) Same rolls (series, contracts), settlements and equity as run_overlay (module doc: the
    tolerance with fees)."""
    cfg, tables, model, shared = base
    if fees == "real":
        cfg = load_config(_config(tmp_path, shared, taker=0.0005, option_fees=DERIBIT))
    loop, summary = _run(cfg, tables, model, tmp_path / "j.sqlite")
    j = loop.journal
    states = j.option_states()
    assert len(states) == summary.decisions == 46 and not any(s["action"].startswith("hold") for s in states)
    # the prices the overlay used are the guarded 5-minute closes known at each 08:00 decision
    bars = tables["btc"]
    ts = np.array([s["t_ns"] for s in states])
    guard = MarketGuard(cfg.guards, ["BTC"])
    b_ts, b_av, b_close = bars["ts_event"].to_numpy(), bars["available_at"].to_numpy(), bars["close"].to_numpy()
    keep = guarded(guard, "price", b_ts, b_av, b_close, is_price=True)
    np.testing.assert_array_equal([s["price"] for s in states], _asof(ts, b_av[keep], b_close[keep], 3_600_000_000_000, "px"))
    ref = _backtest(cfg, states)
    want_rolls = [(e["ts"], e["instrument"], e["contracts"]) for e in ref.events if e["event"] == "roll"]
    got_rolls = _roll_events(j)
    last = int(ts[-1])  # the backtest never rolls at its last decision; the live loop does not know it is the last
    live = [r for r in got_rolls if r[0] < last]
    assert [r[:2] for r in live] == [r[:2] for r in want_rolls] and len(want_rolls) >= 6
    np.testing.assert_allclose([r[2] for r in live], [r[2] for r in want_rolls], rtol=rtol)  # no budget: unrounded
    settles = [(f.ts, f.instrument, f.price) for f in j.option_fills() if f.kind == "settle"]
    assert settles == [(e["ts"], e["instrument"], e["payoff"]) for e in ref.events if e["event"] == "settle"]
    eq = np.array([s["equity"] for s in states])
    n = len(ts) - (1 if got_rolls and got_rolls[-1][0] == last else 0)
    np.testing.assert_allclose(eq[:n], ref.equity[:n], rtol=rtol)
    np.testing.assert_allclose([s["contracts"] for s in states][:n], ref.option_contracts[:n], rtol=rtol)
    np.testing.assert_allclose([s["delta"] for s in states][:n], ref.option_delta[:n], rtol=rtol, atol=1e-12)
    # the account mirror holds the option's cash: equity = perp account + option at its mark
    assert summary.equity == pytest.approx(states[-1]["equity"], rel=1e-12)
    # the serve summary shows the option position and its greeks
    from serving.summary import serve_report

    rep = serve_report(j, summary, step_ns=loop.step)["options"]
    assert rep["position"]["contracts"] == states[-1]["contracts"] and rep["greeks"]["delta"] == states[-1]["delta"]
    assert rep["rolls"] == len(got_rolls) and rep["collateral"] == ["BTC"]
    assert (rep["fees_usd"] > 0) == (fees == "real")
    assert loop.overlay.venue.positions() == j.option_positions()


def test_vega_budget_binds_live_as_in_the_backtest(base, tmp_path):
    """(b) A vega budget of 2 bp of equity per vol point cuts every roll to the backtest's size."""
    cfg0, tables, model, shared = base
    cfg = load_config(_config(tmp_path, shared, budgets={"max_vega": 0.0002, "contract_step": 0.1}))
    loop, _ = _run(cfg, tables, model, tmp_path / "j.sqlite")
    states = loop.journal.option_states()
    ref = _backtest(cfg, states)
    rolls = [e for e in ref.events if e["event"] == "roll"]
    assert rolls and all(e["binding"] == ["vega"] and 0 < e["contracts"] < e["requested"] for e in rolls)
    live = _roll_events(loop.journal)
    assert [(t, q) for t, _, q in live if t < states[-1]["t_ns"]] == [(e["ts"], e["contracts"]) for e in rolls]
    cut = [s for s in states if s["action"].startswith("roll")]
    assert cut and all(s["action"] == "roll:cut_by_vega" and s["vega"] <= 0.0002 + 1e-12 for s in cut)


def test_paper_venue_settles_at_expiry_by_hand():
    """(c) 2 puts bought at 1,000 USD (underlying 42,000), settled at 38,000 after expiry."""
    venue = PaperOptionVenue(OptionFeeConfig(rate=0.0003, delivery_rate=0.00015, cap_of_premium=0.125))
    name = "BTC-9FEB24-40000-P"
    expiry = parse_option_name(name).expiry_ns
    t0 = expiry - 7 * 86_400_000_000_000
    ack = venue.submit(OptionOrder("dea-opt-1", t0, name, 2.0, 1_000.0, 42_000.0))
    assert ack.status == "filled" and venue.submit(OptionOrder("dea-opt-1", t0, name, 2.0, 1_000.0, 42_000.0)) == ack
    (buy,) = venue.poll_fills()
    # fee per unit: min(0.0003 x 42,000 = 12.6, 0.125 x 1,000 = 125) = 12.6
    assert buy.fee_usd == pytest.approx(25.2) and buy.cash_usd == pytest.approx(-2_025.2)
    assert buy.collateral == "BTC" and buy.cash_collateral == pytest.approx(-2_025.2 / 42_000)
    with pytest.raises(ExchangeError, match="cannot settle"):
        venue.settle(expiry - 1, name, 38_000.0)
    st = venue.settle(expiry, name, 38_000.0)
    # intrinsic 2,000 per unit; delivery fee min(0.00015 x 38,000 = 5.7, 0.125 x 2,000) = 5.7 per unit
    assert (st.kind, st.contracts, st.price_usd, st.fee_usd) == ("settle", -2.0, 2_000.0, pytest.approx(11.4))
    assert st.cash_usd == pytest.approx(3_988.6) and st.cash_collateral == pytest.approx(3_988.6 / 38_000)
    assert venue.positions() == {} and venue.settle(expiry, name, 38_000.0) is None
    stmt = venue.statement()
    assert stmt["BTC"]["cash"] == pytest.approx(-2_025.2 / 42_000 + 3_988.6 / 38_000) and stmt["BTC"]["positions"] == {}
    # out of the money: worth nothing, no delivery fee
    venue.submit(OptionOrder("dea-opt-2", t0, name, 1.0, 500.0, 42_000.0))
    otm = venue.settle(expiry, name, 41_000.0)
    assert (otm.price_usd, otm.fee_usd, otm.cash_usd) == (0.0, 0.0, 0.0)


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize(("point", "new_venue"), [("after_option_venue", False), ("after_option_journal", False),
                                                  ("after_option_venue", True), ("after_option_journal", True)])
def test_restart_after_a_kill_around_an_option_order(base, tmp_path, point, new_venue):
    """(d) Killed after the venue filled the 3rd roll but before its fill was journaled (or after
    the order was journaled, before it was sent); restarted on the journal (the venues outlived
    the process, or new ones): every option order once, the same fills and positions."""
    cfg, tables, model, _ = base
    ref_loop, _ = _run(cfg, tables, model, tmp_path / "ref.sqlite")
    ref = ref_loop.journal
    third = sorted({f.ts for f in ref.option_fills() if f.kind == "trade"})[2]

    def hook(where, t):
        if where == point and t == third:
            raise Crash(f"killed {where} at {t}")

    venues = _venues(cfg)
    with pytest.raises(Crash):
        _run(cfg, tables, model, tmp_path / "live.sqlite", venues, hook)
    crashed = Journal(tmp_path / "live.sqlite")
    assert crashed.option_orders(("new",))[0].t_decision == third  # journaled, its fill is not
    assert all(f.ts < third for f in crashed.option_fills() if f.kind == "trade")
    loop, _ = _run(cfg, tables, model, tmp_path / "live.sqlite", _venues(cfg) if new_venue else venues)
    j = loop.journal
    key = lambda f: (f.fill_id, f.kind, f.ts, f.instrument, f.contracts, f.price, round(f.fee, 9))  # noqa: E731
    assert [key(f) for f in j.option_fills()] == [key(f) for f in ref.option_fills()]
    assert [(o.client_id, o.contracts, o.status) for o in j.option_orders()] == \
        [(o.client_id, o.contracts, o.status) for o in ref.option_orders()]
    assert j.option_positions() == ref.option_positions() == loop.overlay.venue.positions()
    restored = loop.overlay.stepper.position
    assert restored is not None and {restored.instrument: restored.contracts} == j.option_positions()
    got = [(s["t_ns"], s["action"], s["instrument"], s["contracts"]) for s in j.option_states()]
    assert got == [(s["t_ns"], s["action"], s["instrument"], s["contracts"]) for s in ref.option_states()]
    np.testing.assert_allclose([s["equity"] for s in j.option_states()], [s["equity"] for s in ref.option_states()], rtol=1e-9)
    if not new_venue:  # the surviving venue never filled an order twice
        assert len(venues[1].fills_of(f"dea-opt-{third}")) == 1


def test_ccxt_venue_with_an_overlay_is_refused_at_start(base, tmp_path, capsys):
    """(e) Before the model is loaded or the journal written: the ccxt adapter has no option path."""
    from dea.cli.main import main as dea_main
    from serving.app import run_serve

    cfg, _, model, _ = base
    with pytest.raises(ConfigError, match=r"serving.options_overlay needs --exchange paper, not 'ccxt:deribit': the ccxt "
                                          r"adapter .* has no option order path"):
        run_serve(cfg, model=str(model), feed="replay", exchange="ccxt:deribit", journal=str(tmp_path / "j.sqlite"))
    assert not (tmp_path / "j.sqlite").exists()
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load((Path(cfg.base_dir) / "options.yaml").read_text())))
    code = dea_main(["serve", "--config", str(path), "--model", str(model), "--feed", "replay", "--exchange",
                     "ccxt:binanceusdm", "--journal", str(tmp_path / "cli.sqlite"), "--log-format", "text"])
    assert code == 2 and "serving.options_overlay needs --exchange paper" in capsys.readouterr().err


def test_quarantined_price_or_iv_holds_the_overlay(base, tmp_path):
    """(f) A 5-minute close 3x the price just before the first decision, and an infinite DVOL value
    before the second: both decisions hold (no roll at a bad price or IV), the third rolls."""
    cfg0, tables, model, shared = base
    dvol_src = {"name": "dvol", "kind": "exogenous", "format": "deribit_dvol", "entity": "BTC", "step": "1d",
                "path": str(shared / "options" / "deribit_btc_dvol_daily_2023_2024.csv")}
    # a non-finite value halts the loop by default; here it holds, so the overlay's own hold is what is seen
    cfg = load_config(_config(tmp_path, shared, iv={"field": "dvol", "max_age": "2d"}, extra_sources=[dvol_src],
                              guards={"actions": {"nonfinite": "hold"}}))
    t0, day = parse_timestamp("2024-01-01T08:00:00Z"), 86_400_000_000_000
    bars = tables["btc"]
    close = bars["close"].to_numpy().copy()
    k = int(np.nonzero(bars["available_at"].to_numpy() == t0)[0][0])  # the bar that closes at the first decision
    close[k] *= 3.0
    dvol = load_tables(cfg)["dvol"]
    vol = dvol["value"].to_numpy().copy()
    av = dvol["available_at"].to_numpy()
    i = int(np.nonzero((av > t0) & (av <= t0 + day))[0][0])  # the value known first at the second decision
    vol[i] = math.inf
    bad = dict(tables, btc=bars.set_column(bars.schema.get_field_index("close"), "close", pa.array(close)),
               dvol=dvol.set_column(dvol.schema.get_field_index("value"), "value", pa.array(vol)))
    loop, summary = _run(cfg, bad, model, tmp_path / "j.sqlite")
    states = loop.journal.option_states()
    assert states[0]["t_ns"] == t0 and states[0]["action"] == "hold:inputs" and "jump" in states[0]["detail"]["hold"]
    assert states[1]["action"] == "hold:inputs" and "nonfinite" in states[1]["detail"]["hold"]
    assert states[2]["action"].startswith("roll") and states[2]["contracts"] > 0
    assert min(o.t_decision for o in loop.journal.option_orders()) == t0 + 2 * day
    assert summary.guarded.get("jump", 0) >= 1 and summary.guarded.get("nonfinite", 0) >= 1
    # the IV it rolled on is the DVOL field (a fraction), not the flat input
    assert 0.2 < states[2]["iv"] < 1.5


def test_option_delta_counts_in_the_risk_engine_delta_budget(base, tmp_path):
    """With ``risk.greeks.BTC`` (the overlay's budgets), the risk engine cuts the perpetual so that
    perpetual + option delta stays within max_delta: 0.9 before the first put, more once the puts'
    negative delta is held (the policy asks 1.0). Two different budgets for BTC are refused."""
    cfg0, tables, model, shared = base
    path = _config(tmp_path, shared, budgets={"max_delta": 0.9})
    raw = yaml.safe_load(path.read_text())
    raw["risk"]["greeks"] = {"BTC": {"max_delta": 0.9}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(path)
    loop, _ = _run(cfg, tables, model, tmp_path / "j.sqlite")
    decisions = loop.journal.decisions()
    assert decisions[0]["allowed"][0] == pytest.approx(0.9) and "greek_budget" in decisions[0]["detail"]["rules"]
    assert any(d["allowed"][0] > 0.95 for d in decisions)
    for d in decisions:  # the option delta the engine counted is journaled with each decision
        w, opt = d["allowed"][0], d["detail"]["option_delta"]["BTC"]
        if "greek_budget" in d["detail"]["rules"]:
            assert w + opt == pytest.approx(0.9, abs=1e-9)
        else:
            assert w == pytest.approx(1.0) and w + opt <= 0.9 + 1e-9
    raw["risk"]["greeks"] = {"BTC": {"max_delta": 0.8}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError, match="risk.greeks.BTC and serving.options_overlay.budgets disagree"):
        _run(load_config(path), tables, model, tmp_path / "k.sqlite")


def _greek_budget_config(tmp_path, shared, *, max_delta=0.9, execution=None, latency=None) -> Path:
    """The overlay with ``risk.greeks.BTC`` (its budgets): the risk engine counts the puts' delta."""
    path = _config(tmp_path, shared, budgets={"max_delta": max_delta})
    raw = yaml.safe_load(path.read_text())
    raw["risk"]["greeks"] = {"BTC": {"max_delta": max_delta}}
    raw["serving"]["journal_inputs"] = True
    if execution is not None:
        raw["execution"] = execution
    if latency is not None:
        raw["costs"]["latency"] = latency
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_audit_rederives_the_option_delta_and_the_greek_rule(base, tmp_path, capsys):
    """``dea audit --config``: an honest journal of an overlay under ``risk.greeks`` audits clean
    (every option delta re-priced from the overlay's steps, the greek rule re-applied, and the rule
    did bind); a tampered option delta, or a tampered allowed exposure, is reported at its decision."""
    import json
    import sqlite3

    from dea.cli.main import main as dea_main
    from serving.audit import audit_journal

    _, tables, model, shared = base
    path = _greek_budget_config(tmp_path, shared)
    cfg = load_config(path)
    journal = tmp_path / "j.sqlite"
    loop, summary = _run(cfg, tables, model, journal)
    decisions = loop.journal.decisions()
    cut = [d for d in decisions if "greek_budget" in d["detail"]["rules"]]
    held = [d for d in decisions if d["detail"]["option_delta"]["BTC"] < 0]
    assert len(cut) >= 2 and held and summary.interventions.get("greek_budget") == len(cut)
    assert all(d["detail"]["greek_before"] == [pytest.approx(1.0)] for d in cut)
    rep = audit_journal(journal, str(model), config=cfg)
    assert rep.differences == [] and rep.greeks_checked == rep.decisions == len(decisions) == 46
    assert rep.rederived == rep.matched == 46 and rep.greeks_unchecked == 0
    # without the config: clean on the model's part, the greek rule counted as unchecked and noted
    bare = audit_journal(journal, str(model))
    assert bare.ok and bare.greeks_unchecked == 46 and "--config" in bare.notes[0]
    assert dea_main(["audit", str(journal), "--model", str(model), "--config", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["greeks_checked"] == 46

    def tamper(t, fn):
        db = sqlite3.connect(journal)
        (raw_detail, raw_allowed), = db.execute("SELECT detail, allowed FROM decisions WHERE t_ns=?", (t,)).fetchall()
        detail, allowed = json.loads(raw_detail), json.loads(raw_allowed)
        fn(detail, allowed)
        db.execute("UPDATE decisions SET detail=?, allowed=? WHERE t_ns=?", (json.dumps(detail), json.dumps(allowed), t))
        db.commit()
        db.close()

    from dea.timeutil import iso

    victim = next(d for d in cut if d["detail"]["option_delta"]["BTC"] < 0)  # the rule bound on a held put
    t = victim["t_ns"]
    tamper(t, lambda d, a: d["option_delta"].update(BTC=d["option_delta"]["BTC"] + 0.05))
    rep = audit_journal(journal, str(model), config=cfg)
    assert {x["t"] for x in rep.differences} == {iso(t)}
    assert [x["problem"] for x in rep.differences] == [
        "journaled option delta differs from the one re-priced from the overlay's journaled steps",
        "greek rule re-derived with the journaled option delta differs"]
    assert dea_main(["audit", str(journal), "--model", str(model), "--config", str(path)]) == 1
    capsys.readouterr()
    tamper(t, lambda d, a: d["option_delta"].update(BTC=d["option_delta"]["BTC"] - 0.05))  # restored
    assert audit_journal(journal, str(model), config=cfg).ok
    other = next(d for d in decisions if "greek_budget" not in d["detail"]["rules"])
    tamper(other["t_ns"], lambda d, a: a.__setitem__(0, a[0] + 0.2))  # an allowed exposure beyond the budget
    rep = audit_journal(journal, str(model), config=cfg)
    assert [(x["t"], x["problem"]) for x in rep.differences] == [
        (iso(other["t_ns"]), "greek rule re-derived with the journaled option delta differs")]
    with pytest.raises(ConfigError, match="this config lacks serving.options_overlay or risk.greeks"):
        audit_journal(journal, str(model), config=load_config(_config(tmp_path / "plain", shared)))


@pytest.mark.parametrize(("point", "new_venue", "greeks"), [("after_journal", True, False), ("after_journal", True, True),
                                                            ("after_option_venue", False, False),
                                                            ("after_option_venue", True, True)])
def test_standby_takes_over_an_overlay(base, tmp_path, point, new_venue, greeks):
    """``dea serve --standby`` with an overlay: the primary (lease held) is killed at the 3rd roll's
    decision -- after journaling the decision, before the option step (``after_journal``), or after
    the venue filled the roll but before its fill was journaled (``after_option_venue``); the
    standby followed the feed and the journal from the start and takes over when the lease expires.
    Option position, cash (equity), every roll and settlement after it equal the run that never
    failed over, and no option order is sent twice (the venues outlived the primary, or are new).
    ``greeks``: with ``risk.greeks`` (the option delta in the engine, also in the risk re-check of
    the perpetual's unsent orders at takeover); the failed-over journal then audits clean."""
    from serving.audit import audit_journal
    from serving.lease import LeaseKeeper
    from serving.standby import StandbyLoop

    ttl = 300_000_000
    cfg, tables, model, shared = base
    if greeks:
        cfg = load_config(_greek_budget_config(tmp_path, shared))
    ref_loop, _ = _run(cfg, tables, model, tmp_path / "ref.sqlite")
    ref = ref_loop.journal
    third = sorted({f.ts for f in ref.option_fills() if f.kind == "trade"})[2]
    path = tmp_path / "live.sqlite"
    primary = Journal(path, synchronous="NORMAL")
    primary.acquire_lease("primary", ttl)

    def hook(where, t):
        if where == point and t == third:
            raise Crash(f"killed {where} at {t}")

    venues = _venues(cfg)
    replay = TableReplay(cfg.data, tables)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), venues[0], primary, clock_start=replay.clock_start,
                    clock_end=replay.clock_end, native_steps=replay.native_steps, crash_hook=hook, option_venue=venues[1])
    with pytest.raises(Crash):
        loop.run(replay.events(loop.panel))
    assert primary.last_decision_t() == third and not primary.option_states(third)
    assert all(f.ts < third for f in primary.option_fills() if f.kind == "trade")

    jr = Journal(path, synchronous="NORMAL")
    keeper = LeaseKeeper(jr, ttl, holder="standby")
    ex, opt = _venues(cfg) if new_venue else venues
    replay = TableReplay(cfg.data, tables)
    standby = StandbyLoop(cfg, PolicyRunner.from_path(model), ex, jr, keeper=keeper, clock_start=replay.clock_start,
                          clock_end=replay.clock_end, native_steps=replay.native_steps, option_venue=opt)
    try:
        summary = standby.run(replay.events(standby.panel))
    finally:
        keeper.release()
    assert not standby.following and standby.followed_to == third and summary.reconciled == 1
    (took,) = jr.events("standby_takeover")
    assert took["detail"]["last_journaled"] == third
    (rec,) = jr.events("option_reconciled")
    # the step at the kill was never journaled: re-run on the inputs the standby followed, it
    # re-decides the roll under the same client id (a venue that filled it reports that fill)
    assert rec["detail"] == {"rerun": 1, "filled": 0, "resent": 0, "cancelled": 0}
    key = lambda f: (f.fill_id, f.kind, f.ts, f.instrument, f.contracts, f.price, round(f.fee, 9))  # noqa: E731
    assert [key(f) for f in jr.option_fills()] == [key(f) for f in ref.option_fills()]
    assert [(o.client_id, o.contracts, o.status) for o in jr.option_orders()] == \
        [(o.client_id, o.contracts, o.status) for o in ref.option_orders()]
    assert jr.option_positions() == ref.option_positions() == standby.overlay.venue.positions()
    got = [(s["t_ns"], s["action"], s["instrument"], s["contracts"]) for s in jr.option_states()]
    assert got == [(s["t_ns"], s["action"], s["instrument"], s["contracts"]) for s in ref.option_states()]
    np.testing.assert_allclose([s["equity"] for s in jr.option_states()], [s["equity"] for s in ref.option_states()],
                               rtol=1e-12)
    assert [(d["t_ns"], d["allowed"]) for d in jr.decisions()] == [(d["t_ns"], d["allowed"]) for d in ref.decisions()]
    assert summary.equity == pytest.approx(ref_loop.summary.equity, rel=1e-12)
    after = [f for f in jr.option_fills() if f.kind == "trade" and f.ts > third]
    assert len(after) >= 2  # rolls the standby made itself
    # each option order reached the venue that now holds the book once
    for o in jr.option_orders():
        if o.t_decision >= third or not new_venue:
            assert len(opt.fills_of(o.client_id)) == 1, o.client_id
    assert not jr.events("cancel_unsent") and not jr.events("option_reconcile")  # nothing dropped, nothing differs
    if greeks:
        assert any("greek_budget" in d["detail"]["rules"] for d in jr.decisions() if d["t_ns"] > third)
        rep = audit_journal(path, str(model), config=cfg)
        assert rep.ok and rep.greeks_checked == len(jr.decisions()) == 46


def test_a_decision_latency_with_an_overlay_is_refused_at_start(base, tmp_path, capsys):
    """The paper option venue fills a roll at the decision's price; with ``costs.latency`` above 0
    the perpetual fills later: refused before the journal is written (loop, ``dea serve``)."""
    from dea.cli.main import main as dea_main
    from serving.app import run_serve

    _, tables, model, shared = base
    path = _greek_budget_config(tmp_path, shared, latency="5m")
    cfg = load_config(path)
    assert resolve_latency_ns(cfg) == 300_000_000_000
    with pytest.raises(ConfigError, match=r"serving.options_overlay needs a decision latency of 0, not 300s \(costs.latency "
                                          r"'5m'.*fills a roll at once"):
        _run(cfg, tables, model, tmp_path / "loop.sqlite")
    assert Journal(tmp_path / "loop.sqlite").events() == []  # the loop wrote nothing (not even its start)
    with pytest.raises(ConfigError, match="needs a decision latency of 0"):
        run_serve(cfg, model=str(model), feed="replay", exchange="paper", journal=str(tmp_path / "j.sqlite"))
    assert not (tmp_path / "j.sqlite").exists()
    code = dea_main(["serve", "--config", str(path), "--model", str(model), "--feed", "replay", "--exchange", "paper",
                     "--journal", str(tmp_path / "cli.sqlite"), "--log-format", "text"])
    assert code == 2 and "needs a decision latency of 0" in capsys.readouterr().err
    # the same config at latency 0 serves
    _run(load_config(_greek_budget_config(tmp_path / "zero", shared, latency="0s")), tables, model, tmp_path / "ok.sqlite")


WORKED = """
name: worked-overlay
data:
  instruments:
    - {{symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001,
       tick_size: 0.1, maker_fee: 0.0002, taker_fee: 0.0005}}
  sources:
    - {{name: btc_book, kind: book, format: binance_ws, path: {capture}, instrument: BTCUSDT}}
  price_field: mid
  clock: {{step: 5s}}
features:
  set: [{{name: ob_spread_bps}}]
  missing: {{policy: fill, fill_value: 0.0, indicator: false}}
costs: {{impact: {{model: none}}, initial_equity: 1000000.0}}
risk: {{max_exposure: 0.5, stale: {{max_age: 1h}}, greeks: {{BTC: {{max_delta: 0.3}}}}}}
execution: {{algo: {algo}, horizon: 4s, slices: 2}}
backtest: {{baselines: []}}
serving:
  journal_sync: normal
  model_poll: null
  options_overlay:
    instrument: BTCUSDT
    leg: {{strategy: protective_put, moneyness: 0.95, tenor: 1d, strike_step: 500.0}}
    iv: {{flat: 0.55}}
    budgets: {{max_delta: 0.3}}
"""


@pytest.mark.parametrize("algo", ["twap", "immediate"])
def test_worked_execution_with_an_overlay(shared_data, tmp_path, capsys, algo):
    """``execution.algo: twap`` (the perpetual's orders worked as parents on the real BTCUSDT book)
    with the overlay under ``risk.greeks``: it serves, the put is bought at the first decision as
    with immediate execution, every decision keeps perpetual + option delta within max_delta, and
    the desk's children count the option delta as the decision did: the position reaches the
    exposure the engine allowed (0.3 + the puts' delta), not 0.3 (children bounded without it)."""
    import json
    import sqlite3

    from dea.cli.main import main as dea_main
    from serving_helpers import build_onnx_policy

    from dea.features.featureset import FeatureSet

    capture = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
    path = tmp_path / "worked.yaml"
    path.write_text(WORKED.format(algo=algo, capture=capture))
    cfg = load_config(path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    model = build_onnx_policy(tmp_path / "m.onnx", fs.names, ["BTCUSDT"], spec_hash=fs.spec_hash, constant=0.5)
    journal = tmp_path / "j.sqlite"
    code = dea_main(["serve", "--config", str(path), "--model", str(model), "--feed", f"replay:{capture}", "--exchange",
                     "paper", "--journal", str(journal), "--max-events", "20000", "--log-format", "text"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out[out.index("{"):])["options"]["rolls"] == 1
    j = Journal(journal)
    decisions = j.decisions()
    assert len(decisions) >= 12
    t0 = decisions[0]["t_ns"]
    assert [(o.t_decision, o.status) for o in j.option_orders()] == [(t0, "filled")]  # the put at the first decision
    assert decisions[0]["allowed"] == [pytest.approx(0.3)] and "greek_budget" in decisions[0]["detail"]["rules"]
    for d in decisions:
        w, opt = d["allowed"][0], d["detail"]["option_delta"]["BTC"]
        assert w + opt <= 0.3 + 1e-9 and ("greek_budget" not in d["detail"]["rules"] or w + opt == pytest.approx(0.3))
    last = decisions[-1]
    assert last["detail"]["option_delta"]["BTC"] < -0.005 and last["allowed"][0] > 0.305
    with sqlite3.connect(journal) as db:
        (qty,), = db.execute("SELECT SUM(qty) FROM ledger WHERE kind='fill'").fetchall()
        if algo == "twap":
            (parents,), = db.execute("SELECT COUNT(*) FROM exec_parents WHERE algo='twap'").fetchall()
            assert parents >= 2  # the first target and the top-ups once the put's delta is held
    state = j.option_states()[-1]
    price = state["price"]
    held_w = qty * price / state["equity"]
    # within two lots (0.001 BTC) of what the engine allowed; children bounded without the option
    # delta would stop at 0.3, ~0.008 short
    assert held_w == pytest.approx(last["allowed"][0], abs=2 * 0.001 * price / state["equity"])
    assert held_w + state["delta"] <= 0.3 + 2 * 0.001 * price / state["equity"]
    from serving.audit import audit_journal

    rep = audit_journal(journal, str(model), config=cfg)  # the greek rule re-derives on a worked journal too
    assert rep.ok and rep.greeks_checked == len(decisions)


@pytest.mark.parametrize("at", ["2024-08-08T23:54:20Z", "2024-08-08T07:00:00Z", "2024-08-08T08:00:00Z"])
def test_a_roll_off_the_expiry_hour_names_its_own_expiry(at):
    """A roll decided at any hour expires at the 08:00 UTC its name stands for (the first at or
    after ``tenor`` later): the stepper, the paper venue and a restart parsing the name agree (a
    roll at 07:00 with expiry t + 1d would be settled at 07:00 next day, which the venue refuses
    before the name's 08:00; one at 23:54 would be marked and restored on different expiries)."""
    from dea.options.overlay import OverlayStepper
    from dea.options.overlay_config import OverlayLegConfig
    from dea.risk.greeks import GreekBudgetConfig

    leg = OverlayLegConfig(strategy="protective_put", moneyness=0.95, tenor="1d", strike_step=500.0)
    fees = OptionFeeConfig(**DERIBIT)
    stepper = OverlayStepper(leg, GreekBudgetConfig(), fees, underlying="BTC")
    t = parse_timestamp(at)
    order = stepper.plan_roll(t, 60_000.0, 0.55, 0.5, 1e6)
    named = parse_option_name(order.instrument).expiry_ns
    assert order.expiry_ns == named >= t + 86_400_000_000_000 and named - t < 2 * 86_400_000_000_000
    venue = PaperOptionVenue(fees)
    venue.submit(OptionOrder("dea-opt-x", t, order.instrument, order.contracts, order.premium_usd, 60_000.0))
    stepper.open(order)
    k = -((-(named - t)) // 3_600_000_000_000)  # the first hourly decision at or after the expiry
    due = t + k * 3_600_000_000_000
    assert stepper.settlement(due - 3_600_000_000_000, 55_000.0) is None
    assert stepper.settlement(due, 55_000.0) is not None
    fill = venue.settle(due, order.instrument, 55_000.0)
    assert fill is not None and fill.price_usd == pytest.approx(57_000.0 - 55_000.0)
