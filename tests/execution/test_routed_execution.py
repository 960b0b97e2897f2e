"""Cross-venue routing inside the execution desk: every marketable child split across the venues
of ``execution.routes`` (one queue-aware simulator each), hand-checkable on two known books."""

from __future__ import annotations

import pytest

from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig
from dea.execution.quality import shortfall
from dea.execution.replay import EV_SNAPSHOT, BookMsg, Executor, TradeMsg, VenueMsg
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
