"""Cross-venue routing inside the execution desk: every marketable child split across the venues
of ``execution.routes`` (one queue-aware simulator each), hand-checkable on two known books."""

from __future__ import annotations

import pytest

from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig
from dea.execution.quality import shortfall
from dea.execution.order_types import OrderRequest
from dea.execution.replay import EV_GAP, EV_SNAPSHOT, BookMsg, Executor, TradeMsg, VenueMsg
from dea.execution.routed import RoutedVenue
from dea.execution.schedule import ParentOrder

T0 = 1_723_161_255_000_000_000
S = 1_000_000_000
BOOKS = {"A": ((( 59999.0, 3.0),), ((60000.0, 1.0), (60001.0, 5.0))),
         "B": (((59999.5, 1.0),), ((60000.2, 2.0), (60000.5, 3.0)))}


def _cfg(algo: str = "immediate", **kw) -> ExecutionConfig:  # noqa: ANN003
    return ExecutionConfig(algo=algo, routes={"BTCUSDT": [
        {"venue": "A", "taker_fee": 0.0005, "maker_fee": 0.0002},
        {"venue": "B", "taker_fee": 0.0002, "max_qty": 2.5}]}, **kw)


def _executor(cfg: ExecutionConfig) -> Executor:
    rv = RoutedVenue.simulated("BTCUSDT", cfg, maker_fee=0.0001, lot=0.001)
    ex = Executor(rv, cfg, lot=0.001, tick=0.1)  # type: ignore[arg-type]
    for v, (bids, asks) in BOOKS.items():
        ex.on_message(VenueMsg(T0, v, BookMsg(T0, EV_SNAPSHOT, bids, asks)))
    return ex


def test_immediate_parent_split_by_all_in_price_within_max_qty() -> None:
    """4 BTC: all-in asks B 60000.2 -> 60012.2, B 60000.5 -> 60012.5 (B full at its max 2.5),
    A 60000 -> 60030, A 60001 -> 60031: B takes 2 + 0.5, A 1 + 0.5."""
    ex = _executor(_cfg())
    assert ex.sim.mid() == pytest.approx(59999.5)  # the primary (A) is the reference market
    ex.start(ParentOrder("p1", "BTCUSDT", 0, 4.0, T0, ex.sim.mid()))
    ex.finish(T0 + S)
    rec = ex.records[-1]
    assert rec.status == "done"
    got = sorted((f.price, f.qty, f.maker) for f in rec.fills)
    assert got == [(60000.0, 1.0, False), (60000.2, 2.0, False), (60000.5, 0.5, False), (60001.0, 0.5, False)]
    assert {f.client_id for f in rec.fills} == {rec.fills[0].client_id}  # one child to the executor
    fees = {round(f.price, 1): f.fee for f in rec.fills}
    assert fees[60000.2] == pytest.approx(2 * 60000.2 * 0.0002) and fees[60001.0] == pytest.approx(0.5 * 60001.0 * 0.0005)
    routes = rec.detail["routes"]
    assert [(r["venue"], r["qty"], r["filled"], r["price"]) for r in routes] == [
        ("A", pytest.approx(1.5), pytest.approx(1.5), 60001.0), ("B", pytest.approx(2.5), pytest.approx(2.5), 60000.5)]
    assert "capped by max_qty" in routes[1]["reason"] and "fee 0.0002" in routes[1]["reason"]
    assert routes[0]["avg_price"] == pytest.approx((60000.0 + 0.5 * 60001.0) / 1.5)
    assert [r["leg"] for r in routes] == [f"{routes[0]['child']}.0", f"{routes[0]['child']}.1"]
    assert ex.sim.venues["A"].position == pytest.approx(1.5) and ex.sim.venues["B"].position == pytest.approx(2.5)
    sf = shortfall(rec)
    assert sf.fill_rate == pytest.approx(1.0)
    assert sf.fees == pytest.approx((60000.0 + 0.5 * 60001.0) * 0.0005 + (2 * 60000.2 + 0.5 * 60000.5) * 0.0002)


def test_what_no_venue_can_take_is_not_sent_and_reported() -> None:
    """10 BTC: A holds 6, B at most 2.5 (of its 5): 8.5 routed, 1.5 left unfilled, said why."""
    ex = _executor(_cfg())
    ex.start(ParentOrder("p2", "BTCUSDT", 0, 10.0, T0, ex.sim.mid()))
    ex.finish(T0 + S)
    rec = ex.records[-1]
    assert sum(f.qty for f in rec.fills) == pytest.approx(8.5)
    assert all("1.5 not routed" in r["reason"] for r in rec.detail["routes"])
    assert shortfall(rec).fill_rate == pytest.approx(0.85)


def test_passive_child_rests_at_the_primary_then_the_cross_is_routed() -> None:
    """passive-then-aggressive: the post-only rests at A (the primary) and fills by its queue
    there; after the timeout the rest crosses, split across A and B."""
    cfg = _cfg("passive_aggressive", passive_timeout="10s")
    ex = _executor(cfg)
    ex.start(ParentOrder("p3", "BTCUSDT", 0, 3.0, T0, ex.sim.mid()))
    post = ex.sim.orders[ex.active.children[0].client_id]
    assert post.legs == {"A": f"{post.req.client_id}.0"} and post.req.tif == "GTX" and post.req.price == 59999.0
    ex.on_message(VenueMsg(T0 + S, "A", TradeMsg(T0 + S, 59999.0, 3.5, -1)))  # 3 ahead, then 0.5 of ours
    ex.on_message(VenueMsg(T0 + 2 * S, "B", TradeMsg(T0 + 2 * S, 59999.5, 9.0, -1)))  # B's tape: not our order's
    assert ex.active.executed == pytest.approx(0.5)
    ex.wake(T0 + 11 * S)
    ex.sim.advance(T0 + 11 * S)
    ex.wake(T0 + 11 * S)
    rec = ex.records[-1]
    legs = rec.detail["routes"]
    assert [(r["venue"], r["filled"]) for r in legs] == [("A", pytest.approx(0.5)), ("B", pytest.approx(2.5))]
    assert "queue priority is per venue" in legs[0]["reason"]
    assert [f.maker for f in rec.fills] == [True, False, False] and sum(f.qty for f in rec.fills) == pytest.approx(3.0)
    assert ex.volume == pytest.approx(12.5)  # POV's volume counts every venue's tape


def test_routed_venue_refuses_unnamed_venues_and_untagged_data() -> None:
    ex = _executor(_cfg())
    with pytest.raises(ExchangeError, match="unknown venue 'C'"):
        ex.on_message(VenueMsg(T0, "C", TradeMsg(T0, 1.0, 1.0, 1)))
    with pytest.raises(ExchangeError, match="market data without a venue"):
        ex.on_message(TradeMsg(T0, 1.0, 1.0, 1))
    with pytest.raises(ExchangeError, match="routes name"):
        RoutedVenue("BTCUSDT", _cfg(), {"A": ex.sim.venues["A"]})


ROUTED_CONFIG = """
name: routed
data:
  instruments:
    - {{symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001,
       tick_size: 0.1, maker_fee: 0.0002, taker_fee: 0.0005}}
  sources:
    - {{name: usdm_book, kind: book, format: binance_ws, path: {usdm}, instrument: BTCUSDT}}
  price_field: mid
  clock: {{step: 5s}}
features:
  set:
    - {{name: ob_spread_bps}}
    - {{name: ob_imbalance, params: {{level: 5}}}}
  missing: {{policy: fill, fill_value: 0.0, indicator: false}}
costs: {{impact: {{model: none}}, initial_equity: 1000000.0}}
risk: {{max_exposure: 0.5, stale: {{max_age: 1h}}}}
execution:
  algo: twap
  horizon: 4s
  slices: 2
  routes:
    BTCUSDT:
      - {{venue: usdm, taker_fee: 0.0005, max_qty: 1.0}}
      - {{venue: spot, capture: {spot}, taker_fee: 0.0001, lot: 0.00001}}
backtest: {{baselines: []}}
"""


def test_backtest_routes_every_child_across_two_real_captures(shared_data, tmp_path, capsys) -> None:  # noqa: ANN001
    """``dea backtest`` on the USDT-M perp capture (venue usdm, the instrument's book source) and
    the spot capture of the same minutes (venue spot, its own capture): every TWAP child split by
    all-in price within usdm's 1 BTC cap; the legs journaled and reported."""
    import csv
    import json
    import sqlite3
    import sys
    from pathlib import Path

    from dea.cli.main import main as dea_main
    from dea.config import load_config
    from dea.execution.store import open_store
    from dea.features.featureset import FeatureSet

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
    from serving_helpers import build_onnx_policy

    d = shared_data / "orderbook" / "binance_ws_2024"
    cfg_path = tmp_path / "routed.yaml"
    cfg_path.write_text(ROUTED_CONFIG.format(usdm=d / "usdm_btcusdt_20240808.gz", spot=d / "spot_btcusdt_20240808.gz"))
    cfg = load_config(cfg_path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    model = build_onnx_policy(tmp_path / "ob.onnx", fs.names, ["BTCUSDT"], spec_hash=fs.spec_hash, gain=3.0)
    out = tmp_path / "bt"
    assert dea_main(["backtest", "--config", str(cfg_path), "--policy", str(model), "--closed-loop", "--out", str(out)]) == 0
    capsys.readouterr()
    store = open_store(out / "execution.sqlite")
    recs = store.parents()
    store.close()
    assert len(recs) > 20
    legs = [leg for r in recs for leg in r.detail["routes"]]
    assert {leg["venue"] for leg in legs} == {"usdm", "spot"}
    for r in recs:  # the parent's fills are its legs' fills
        assert sum(f.qty for f in r.fills) == pytest.approx(sum(leg["filled"] for leg in r.detail["routes"]), abs=1e-9)
    fee = {"usdm": 0.0005, "spot": 0.0001}
    for leg in legs:
        if leg["venue"] == "usdm":
            assert abs(leg["qty"]) <= 1.0 + 1e-12  # the per-venue cap
        else:
            assert abs(leg["qty"]) / 1e-5 == pytest.approx(round(abs(leg["qty"]) / 1e-5), abs=1e-6)  # spot's lot
        if leg["filled"]:
            assert leg["fee"] == pytest.approx(abs(leg["filled"]) * leg["avg_price"] * fee[leg["venue"]], rel=1e-9)
            assert leg["filled"] * leg["qty"] > 0 and abs(leg["filled"]) <= abs(leg["qty"]) + 1e-12
    assert dea_main(["execution-report", str(out / "execution.sqlite"), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "routing by venue (execution.routes):" in text and "BTCUSDT/spot" in text and "BTCUSDT/usdm" in text
    assert "capped by max_qty" in text
    with (tmp_path / "rep" / "execution_routes.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(legs) and {r["venue"] for r in rows} == {"usdm", "spot"}
    with sqlite3.connect(out / "execution.sqlite") as db:  # the journal holds the legs with the parent
        detail = json.loads(db.execute("SELECT detail FROM exec_parents LIMIT 1").fetchone()[0])
    assert {"venue", "qty", "filled", "reason", "price", "fee"} <= set(detail["routes"][0])


def test_backtest_refuses_a_routed_instrument_without_its_venues_market(shared_data, tmp_path) -> None:  # noqa: ANN001
    from dea.backtest.event_exec import capture_stream
    from dea.config import load_config
    from dea.errors import ConfigError

    d = shared_data / "orderbook" / "binance_ws_2024"
    text = ROUTED_CONFIG.format(usdm=d / "usdm_btcusdt_20240808.gz", spot=d / "spot_btcusdt_20240808.gz")
    text = text.replace("{venue: usdm, taker_fee", "{venue: usdm, capture: " + str(d / "usdm_btcusdt_20240808.gz") + ", taker_fee")
    p = tmp_path / "c.yaml"
    p.write_text(text)
    cfg = load_config(p)
    with pytest.raises(ConfigError, match="the instrument's book source must be one venue's market"):
        capture_stream(cfg.data.sources, cfg.data.symbols, cfg.resolve_path, cfg.execution)


def test_legs_lost_in_flight_end_the_child_with_each_venues_reason() -> None:
    """10 ms submit latency: the books vanish (gaps) while the legs are in flight, so every
    venue rejects its leg; the child is rejected with each venue's reason, and with no book at
    all the next child is not sent anywhere."""
    ex = _executor(_cfg(submit_latency="10ms"))
    child = ex.sim.submit(T0 + 1, OrderRequest("BTCUSDT", 0, 3.0, "c-1", T0, kind="market"))
    assert set(child.legs) == {"A", "B"} and child.status == "open"
    for v in ("A", "B"):
        ex.on_message(VenueMsg(T0 + 2, v, BookMsg(T0 + 2, EV_GAP, (), ())))
    ex.sim.advance(T0 + S)
    assert child.status == "rejected" and child.filled == 0.0
    assert ex.sim.updates[-1].reason == "A: rejected (no valid book at the venue); B: rejected (no valid book at the venue)"
    nxt = ex.sim.submit(T0 + S, OrderRequest("BTCUSDT", 0, 2.0, "c-2", T0, kind="market"))
    assert nxt.status == "rejected" and not nxt.legs and ex.sim.updates[-1].reason.startswith("no venue has size")


def test_the_next_child_plans_on_what_the_first_left() -> None:
    """Two children before any book update, B uncapped: the first (5) takes all of B's asks;
    the second (1) plans on the depth net of that take and goes to A at 60000, instead of an
    IOC at B's 60000.2 that is already gone."""
    cfg = ExecutionConfig(algo="immediate", routes={"BTCUSDT": [{"venue": "A", "taker_fee": 0.0005},
                                                                {"venue": "B", "taker_fee": 0.0002}]})
    ex = _executor(cfg)
    first = ex.sim.submit(T0 + 1, OrderRequest("BTCUSDT", 0, 5.0, "c-1", T0, kind="market"))
    second = ex.sim.submit(T0 + 2, OrderRequest("BTCUSDT", 0, 1.0, "c-2", T0, kind="market"))
    assert first.status == second.status == "filled"
    legs = {(r.client_id, r.venue): (r.qty, r.price) for r in ex.sim.legs}
    assert legs == {("c-1", "B"): (pytest.approx(5.0), 60000.5), ("c-2", "A"): (pytest.approx(1.0), 60000.0)}
