"""The paper venue with typed orders replaying the real USDT-M BTCUSDT capture through the live
parser and book: fills equal the event replay's, order types behave, ids survive a restart."""

from __future__ import annotations

import gzip

import pytest

from dea.book import capture as book_capture
from dea.book.binance import parse_binance_message
from dea.book.capture import parse_capture
from dea.book.events import DepthDiff, DepthSnapshot, Trade
from dea.book.l2 import SyncedBook
from dea.execution import replay as exec_replay
from dea.execution.order_types import OrderRequest, child_client_id, replacement
from dea.execution.queue import LimitOrderSimulator, QueueModel
from dea.execution.store import ExecutionStore
from dea.instruments import Instrument
from serving.exchanges.paper_orders import PaperOrderVenue

S = 1_000_000_000
SECONDS = 90
PERP = Instrument(symbol="BTCUSDT", kind="perpetual", funding="none", taker_fee=0.0005, maker_fee=0.0002, lot_size=0.001,
                  tick_size=0.1)


def _script(t0: int):  # noqa: ANN202
    """Typed orders at times after t0, priced off the touch when they are sent."""
    cid = lambda k: child_client_id("dea", t0, "BTCUSDT", k)  # noqa: E731
    lim = lambda k, q, px, tif, **kw: OrderRequest("BTCUSDT", 0, q, cid(k), t0, kind="limit", price=px, tif=tif, **kw)  # noqa: E731
    return [
        (t0 + 1 * S, lambda sim: lim(0, 0.5, sim.best(1), "GTX")),
        (t0 + 1 * S, lambda sim: lim(1, -0.5, sim.best(1), "GTX")),  # would take: rejected
        (t0 + 2 * S, lambda sim: lim(2, 0.2, sim.best(-1) + 50.0, "IOC")),
        (t0 + 3 * S, lambda sim: lim(3, 100.0, sim.best(-1), "FOK")),  # 100 BTC are not at the touch
        (t0 + 4 * S, lambda sim: lim(4, -0.5, sim.best(-1) + 5.0, "GTC", expire_ns=t0 + 40 * S)),
        (t0 + 30 * S, lambda sim: OrderRequest("BTCUSDT", 0, -5.0, cid(5), t0, kind="market", reduce_only=True)),
        (t0 + 31 * S, lambda sim: lim(6, 0.3, sim.best(1) - 20.0, "GTC")),
    ]


def _live_run(path, venue: PaperOrderVenue):  # noqa: ANN001, ANN202
    synced = SyncedBook()
    script = None
    t_end = t0 = None
    sent = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            recv, _, raw = line.partition(b" ")
            ts = int(recv)
            ev = parse_binance_message(raw, ts)
            if t_end is None:
                t_end = ts + SECONDS * S
            if ts > t_end:
                break
            if script is None and synced.valid:
                t0 = ts
                script = _script(ts)
            while script and script[0][0] <= ts:
                req = script.pop(0)[1](venue.sims[0])
                sent.append((ts, req, venue.sims[0].position))
                venue.submit_orders(ts, [req])
            if isinstance(ev, (DepthSnapshot, DepthDiff)):
                synced.feed(ev, lambda e, t: venue.on_book(0, e, t))
            elif isinstance(ev, Trade):
                venue.on_trade(0, ev)
    return t0, t_end, sent


def test_paper_venue_fills_like_the_replay_and_handles_order_types(shared_data, tmp_path) -> None:  # noqa: ANN001
    assert (exec_replay.EV_GAP, exec_replay.EV_SNAPSHOT, exec_replay.EV_DIFF) == (
        book_capture.EV_GAP, book_capture.EV_SNAPSHOT, book_capture.EV_DIFF)
    path = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
    store = ExecutionStore(tmp_path / "journal.sqlite")
    venue = PaperOrderVenue([PERP], model=QueueModel("power", 2.0), submit_latency_ns=5_000_000, store=store)
    t0, t_end, sent = _live_run(path, venue)
    fills = venue.poll_fills(t_end)
    sim = venue.sims[0]
    ids = [req.client_id for _, req, _ in sent]
    o = [sim.orders[c] for c in ids]
    assert o[1].status == "rejected" and o[1].filled == 0.0  # post-only that would cross
    assert o[2].status == "filled" and o[2].filled == pytest.approx(0.2)  # IOC through the touch
    assert all(not f.maker for f in sim.fills if f.client_id == ids[2])
    assert o[3].status == "expired" and o[3].filled == 0.0  # FOK
    assert o[0].status in ("open", "filled") and all(f.maker for f in sim.fills if f.client_id == ids[0])
    assert o[4].status in ("expired", "filled")  # a resting sell 5 above the ask: filled or expired at 40 s
    pos_before_ro = sent[5][2]
    assert o[5].filled == pytest.approx(max(pos_before_ro, 0.0))  # reduce-only: clipped to the long position
    assert len({f.fill_id for f in fills}) == len(fills) >= 3
    assert venue.positions()["BTCUSDT"] == pytest.approx(sum(f.qty for f in fills))
    # the event replay of the parsed capture gives the same fills for the same script
    msgs = exec_replay.capture_messages(parse_capture(path), end_ns=t_end)
    ref = LimitOrderSimulator(maker_fee=0.0002, taker_fee=0.0005, model=QueueModel("power", 2.0), submit_latency_ns=5_000_000,
                              lot=PERP.lot_size)  # the venue quantises queue fills to the lot, so must the replay
    todo = _script(t0)
    for m in msgs:
        while todo and todo[0][0] <= m.ts:
            ref.submit(m.ts, todo.pop(0)[1](ref))
        exec_replay.feed(ref, m)
    assert [(f.client_id, f.ts, f.qty, f.price) for f in ref.fills] == [(f.client_id, f.ts, f.qty, f.price) for f in fills]
    # the store has every order with its final state
    assert [store.order_status(c) for c in ids[1:4]] == ["rejected", "filled", "expired"]
    # restart: a new venue on the same store recognises the ids and never trades them again
    venue2 = PaperOrderVenue([PERP], store=ExecutionStore(tmp_path / "journal.sqlite"))
    acks = venue2.submit_orders(t_end, [req for _, req, _ in sent])
    assert [a.status for a in acks][1:4] == ["rejected", "filled", "rejected"]
    assert venue2.sims[0].orders == {}
    assert [r.client_id for r in store.open_orders()] == [c for c, x in zip(ids, o) if x.status in ("open", "pending")]


def test_cancel_replace_loses_priority() -> None:
    venue = PaperOrderVenue([PERP])
    venue.on_book(0, DepthSnapshot(0, 0, 1, ((100.0, 5.0),), ((100.5, 5.0),)), 0)
    a = OrderRequest("BTCUSDT", 0, 1.0, "a", 0, kind="limit", price=100.0)
    venue.submit_orders(0, [a])
    venue.on_book(0, DepthDiff(1, 1, "BTCUSDT", 2, 2, 1, ((100.0, 8.0),), ()), 1)  # 3 join behind us
    assert venue.sims[0].orders["a"].front == 5.0
    ack = venue.replace(2, "a", replacement(a, "ar1", price=100.0, qty=2.0))
    assert ack.status == "sent" and venue.sims[0].orders["ar1"].front == 8.0  # back of the queue now
    assert venue.lookup("a", "BTCUSDT").status == "rejected"  # cancelled
