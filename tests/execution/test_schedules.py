"""Child-order schedules against their definitions (TWAP, POV, passive-then-aggressive,
immediate), the risk bound at every child, clean cancellation on a new target, stable ids."""

from __future__ import annotations

import pytest

from dea.book.capture import EV_DIFF, EV_SNAPSHOT
from dea.execution.queue import LimitOrderSimulator
from dea.execution.replay import BookMsg, Executor, TradeMsg
from dea.execution.schedule import ExecutionConfig, ParentOrder, floor_lot

S = 1_000_000_000
BIDS = tuple((100.0 - 0.1 * k, 50.0) for k in range(20))
ASKS = tuple((100.1 + 0.1 * k, 50.0) for k in range(20))


def _executor(cfg: ExecutionConfig, **kw) -> Executor:  # noqa: ANN003
    sim = LimitOrderSimulator(cancel_latency_ns=kw.pop("cancel_latency_ns", 0))
    ex = Executor(sim, cfg, lot=0.001, tick=0.1, **kw)
    ex.on_message(BookMsg(0, EV_SNAPSHOT, BIDS, ASKS))
    return ex


def _parent(qty: float, t0: int = 1 * S, pid: str = "p1") -> ParentOrder:
    return ParentOrder(pid, "BTCUSDT", 0, qty, t0, 100.05)


def _tick(ex: Executor, ts: int, trade: float = 0.0, side: int = 1) -> None:
    # a quiet diff far from the touch (the clock moves), or a public trade at the ask
    if trade:
        ex.on_message(TradeMsg(ts, 100.1 if side > 0 else 100.0, trade, side))
    else:
        ex.on_message(BookMsg(ts, EV_DIFF, ((50.0, 1.0),), ()))


def test_twap_slices_at_their_times_and_sizes() -> None:
    cfg = ExecutionConfig(algo="twap", horizon="60s", slices=6)
    ex = _executor(cfg)
    pe = ex.start(_parent(1.0))
    for t in range(2, 80):
        _tick(ex, t * S)
    kids = pe.children
    assert [k.t_decision for k in kids] == [S + k * 10 * S for k in range(6)]
    cum = [sum(abs(k.qty) for k in kids[: i + 1]) for i in range(6)]
    assert cum == pytest.approx([floor_lot(1.0 * (i + 1) / 6, 0.001) for i in range(5)] + [1.0])
    assert all(k.kind == "market" for k in kids)
    assert ex.records[-1].status == "done" and sum(f.qty for f in ex.records[-1].fills) == pytest.approx(1.0)


def test_pov_tracks_participation_of_public_volume() -> None:
    cfg = ExecutionConfig(algo="pov", participation=0.2, pov_interval="1s", horizon="30s")
    ex = _executor(cfg)
    pe = ex.start(_parent(-2.0))
    v0 = ex.volume
    sent_vs_volume = []
    for t in range(2, 20):
        _tick(ex, t * S, trade=0.3, side=-1)  # 0.3 traded every second
        sent_vs_volume.append((pe.sent, ex.volume - v0))
    for sent, vol in sent_vs_volume:
        assert sent <= 0.2 * vol + 1e-9  # never ahead of the participation
        assert sent >= 0.2 * (vol - 0.3) - 0.001 - 1e-9  # at most one interval behind
    assert pe.remaining > 0.8  # 18 s x 0.3 x 0.2 = 1.08 of 2 sent: the deadline sends the rest
    for t in range(20, 35):
        _tick(ex, t * S)
    rec = ex.records[-1]
    assert sum(f.qty for f in rec.fills) == pytest.approx(-2.0)
    assert all(f.qty < 0 for f in rec.fills)


def test_passive_then_aggressive_posts_then_crosses_the_rest_after_the_cancel() -> None:
    cfg = ExecutionConfig(algo="passive_aggressive", passive_timeout="10s")
    ex = _executor(cfg, cancel_latency_ns=S // 2)
    pe = ex.start(_parent(1.0))
    post = pe.children[0]
    assert post.kind == "limit" and post.tif == "GTX" and post.price == 100.0  # the near touch
    assert ex.sim.orders[post.client_id].front == 50.0  # behind the whole level
    _tick(ex, 3 * S, trade=50.3, side=-1)  # sells take the 50 ahead and 0.3 of us
    assert pe.executed == pytest.approx(0.3)
    _tick(ex, 11 * S)  # timeout: cancel sent, effective at 11.5 s; nothing crosses yet
    assert len(pe.children) == 1
    _tick(ex, 11 * S + S // 4, trade=0.2, side=-1)  # a fill inside the cancel latency still counts
    _tick(ex, 12 * S)
    assert len(pe.children) == 2 and pe.children[1].kind == "market"
    assert abs(pe.children[1].qty) == pytest.approx(0.5)  # exactly the unfilled rest: no overfill
    rec = ex.records[-1]
    assert sum(f.qty for f in rec.fills) == pytest.approx(1.0)
    assert [f.maker for f in rec.fills] == [True, True, False]


def test_immediate_risk_bound_and_retarget_cancels_cleanly() -> None:
    halves = []

    def bound(req):  # noqa: ANN001, ANN202 - lets half of every child through
        halves.append(req.qty)
        return req.qty / 2

    ex = _executor(ExecutionConfig(algo="immediate"), bound=bound)
    pe = ex.start(_parent(1.0))
    assert len(pe.children) == 1 and pe.children[0].qty == pytest.approx(0.5) and pe.clipped == pytest.approx(0.5)
    assert halves == [1.0]
    # a resting passive child, so that the cancel on a new target has something to cancel
    ex2 = _executor(ExecutionConfig(algo="passive_aggressive", passive_timeout="30s"), cancel_latency_ns=S)
    pa = ex2.start(_parent(1.0))
    cid = pa.children[0].client_id
    _tick(ex2, 5 * S)
    new = ex2.start(_parent(-0.4, t0=5 * S, pid="p2"))  # the next decision changed the target
    assert pa.status == "cancelled" and not ex2.records  # its cancel is still in flight
    assert ex2.in_flight() == pytest.approx(-0.4)  # the old child is being cancelled: not expected to fill
    _tick(ex2, 7 * S)
    assert ex2.sim.orders[cid].status == "cancelled"
    assert ex2.records[0].status == "cancelled" and ex2.records[0].parent_id == "p1"
    assert all(o.req.parent_id == "p2" for o in ex2.sim.open_orders())
    assert new.children and new.children[0].qty < 0


def test_child_ids_are_stable_across_a_restart() -> None:
    cfg = ExecutionConfig(algo="twap", horizon="60s", slices=3)
    ids = []
    for _ in range(2):  # the same parent regenerated by a new process
        ex = _executor(cfg)
        pe = ex.start(_parent(0.9))
        for t in range(2, 70):
            _tick(ex, t * S)
        ids.append([k.client_id for k in pe.children])
    assert ids[0] == ids[1] and len(set(ids[0])) == 3


def test_desk_carries_the_replaced_parent_into_the_new_target() -> None:
    from dea.execution.desk import ExecutionDesk
    from dea.instruments import Instrument

    perp = Instrument(symbol="BTCUSDT", kind="perpetual", funding="none", lot_size=0.001, tick_size=0.1)
    desk = ExecutionDesk([perp], ExecutionConfig(algo="passive_aggressive", passive_timeout="30s"))
    desk.on_message(0, BookMsg(0, EV_SNAPSHOT, BIDS, ASKS))
    pe, _ = desk.rebalance(S, 0, 1.0)  # target +1: a resting bid, nothing filled
    assert desk.in_flight() == [pytest.approx(1.0)]
    # next decision, target -0.5: sized against position 0 + in flight 1 -> -1.5
    pe2, _ = desk.rebalance(2 * S, 0, -1.5)
    assert pe.status == "cancelled" and pe2.parent.qty == pytest.approx(-0.5)  # the unfilled +1 is carried
    assert desk.in_flight() == [pytest.approx(-0.5)]
    desk.on_message(0, TradeMsg(3 * S, 100.1, 50.2, 1))  # buyers take the ask queue and 0.2 of our offer
    assert desk.in_flight() == [pytest.approx(-0.3)]
    pe3, _ = desk.rebalance(4 * S, 0, 0.5)  # target 0: position -0.2, in flight -0.3 -> +0.5
    assert pe3.parent.qty == pytest.approx(0.2)  # -0.3 carried: buy back only what was sold
    assert desk.executors[0].sim.position == pytest.approx(-0.2)
    assert desk.rebalance(5 * S, 0, -0.2)[0] is None and desk.in_flight() == [0.0]  # a change that cancels out
