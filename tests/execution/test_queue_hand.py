"""Hand-checkable queue cases: one order, a known sequence of trades and cancels, the exact fill."""

from __future__ import annotations

import math

import pytest

from dea.errors import ExchangeError
from dea.execution.order_types import OrderRequest
from dea.execution.queue import LimitOrderSimulator, QueueModel


def _book(sim: LimitOrderSimulator, ts: int = 0) -> None:
    # bids 100.0 x 5, 99.5 x 10; asks 100.5 x 4, 101.0 x 6
    sim.on_snapshot(ts, [(100.0, 5.0), (99.5, 10.0)], [(100.5, 4.0), (101.0, 6.0)])


def _buy(qty: float = 1.0, price: float | None = 100.0, **kw) -> OrderRequest:  # noqa: ANN003
    kind = "limit" if price is not None else "market"
    return OrderRequest("BTCUSDT", 0, qty, kw.pop("cid", "c1"), 0, kind=kind, price=price, **kw)


def test_join_back_trades_and_cancels_ahead_exact_fill_time() -> None:
    sim = LimitOrderSimulator(submit_latency_ns=10, model=QueueModel("power", 1.0))
    _book(sim)
    o = sim.submit(0, _buy())
    assert o.status == "pending"
    sim.on_diff(5, [(100.0, 6.0)], [])  # size joins before we arrive (t=10): we queue behind 6
    sim.advance(10)
    assert o.status == "open" and o.front == 6.0
    sim.on_trade(20, 100.0, 2.0, -1)  # sell 2 at our price: 4 ahead
    sim.on_diff(21, [(100.0, 4.0)], [])  # the trade seen in depth: no cancel
    assert o.front == pytest.approx(4.0)
    sim.on_diff(30, [(100.0, 3.0)], [])  # a cancel of 1; nobody behind us -> it was ahead
    assert o.front == pytest.approx(3.0)
    sim.on_diff(31, [(100.0, 5.0)], [])  # 2 join behind us
    sim.on_diff(32, [(100.0, 4.0)], [])  # cancel 1 with 3 ahead, 2 behind: 3/5 of it was ahead
    assert o.front == pytest.approx(3.0 - 0.6)
    sim.on_trade(40, 100.0, 2.0, -1)
    assert o.status == "open" and o.filled == 0.0 and o.front == pytest.approx(0.4)
    sim.on_trade(41, 100.0, 1.0, -1)  # 0.4 ahead consumed, 0.6 fills us: a partial fill at t=41
    assert o.filled == pytest.approx(0.6) and o.status == "open"
    sim.on_trade(50, 100.0, 0.4, -1)  # the rest: filled at t=50
    assert o.status == "filled" and o.filled == pytest.approx(1.0)
    assert [(f.ts, round(f.qty, 9), f.price, f.maker) for f in sim.fills] == [(41, 0.6, 100.0, True), (50, 0.4, 100.0, True)]
    assert sim.fills[0].fee == pytest.approx(0.6 * 100.0 * 0.0002)
    assert sim.position == pytest.approx(1.0)


def test_risk_averse_ignores_cancels_but_caps_at_level_size() -> None:
    sim = LimitOrderSimulator(model=QueueModel("risk_averse"))
    _book(sim)
    o = sim.submit(0, _buy())
    assert o.front == 5.0
    sim.on_diff(1, [(100.0, 4.0)], [])  # a cancel: still 4 ahead (capped by the level)
    sim.on_diff(2, [(100.0, 6.0)], [])  # growth behind
    assert o.front == 4.0
    sim.on_trade(3, 100.0, 4.0, -1)
    assert o.front == 0.0 and o.filled == 0.0
    sim.on_trade(4, 100.0, 0.5, -1)
    assert o.filled == 0.5


def test_trade_through_and_book_through_fill_in_full() -> None:
    sim = LimitOrderSimulator()
    _book(sim)
    a = sim.submit(0, _buy(cid="a"))
    sim.on_trade(5, 99.5, 0.1, -1)  # a sell printed below our bid: we were hit first
    assert a.status == "filled" and sim.fills[-1].ts == 5 and sim.fills[-1].price == 100.0
    b = sim.submit(6, _buy(price=100.0, cid="b"))
    sim.on_diff(7, [], [(100.5, 0.0), (100.0, 2.0)])  # asks come down to our bid
    assert b.status == "filled" and sim.fills[-1].ts == 7


def test_marketable_orders_ioc_fok_post_only_market() -> None:
    sim = LimitOrderSimulator(taker_fee=0.001)
    _book(sim)
    post = sim.submit(0, _buy(price=100.5, tif="GTX", cid="post"))
    assert post.status == "rejected" and "post-only" in sim.updates[-1].reason
    fok = sim.submit(0, _buy(qty=5.0, price=100.5, tif="FOK", cid="fok"))  # only 4 at <= 100.5
    assert fok.status == "expired" and fok.filled == 0.0
    ioc = sim.submit(0, _buy(qty=5.0, price=100.5, tif="IOC", cid="ioc"))
    assert ioc.status == "expired" and ioc.filled == 4.0 and ioc.avg_price == 100.5
    # the 4 we took are gone until the feed updates that level: the next market buy walks to 101
    mkt = sim.submit(1, _buy(qty=2.0, price=None, cid="mkt"))
    assert mkt.status == "filled" and mkt.avg_price == 101.0
    assert sim.fills[-1].fee == pytest.approx(2 * 101.0 * 0.001) and not sim.fills[-1].maker
    sim.on_diff(2, [], [(100.5, 3.0)])  # level refreshed by the feed: liquidity back
    gtc = sim.submit(3, _buy(qty=4.0, price=100.5, cid="gtc"))  # crosses for 3, rests 1 at 100.5
    assert gtc.filled == 3.0 and gtc.status == "open" and gtc.front == 0.0


def test_reduce_only_cancel_latency_expiry_and_idempotent_ids() -> None:
    sim = LimitOrderSimulator(cancel_latency_ns=10, position=0.5)
    _book(sim)
    sell = OrderRequest("BTCUSDT", 0, -2.0, "ro", 0, kind="market", reduce_only=True)
    o = sim.submit(0, sell)
    assert o.filled == 0.5 and sim.position == 0.0  # clipped to the position
    again = sim.submit(0, sell)
    assert again is o and len(sim.fills) == 1  # the same client id is the same order
    addonly = sim.submit(1, OrderRequest("BTCUSDT", 0, 1.0, "ro2", 0, kind="market", reduce_only=True))
    assert addonly.status == "rejected"
    rest = sim.submit(2, _buy(cid="rest"))
    sim.cancel(3, "rest")  # effective at 13: a fill at 12 still stands
    sim.on_trade(12, 100.0, 5.0, -1)  # 4.5 ahead (our market sell took 0.5 of the 5)
    assert rest.filled == 0.5
    sim.advance(13)
    assert rest.status == "cancelled" and rest.filled == 0.5
    exp = sim.submit(20, OrderRequest("BTCUSDT", 0, 1.0, "exp", 0, kind="limit", price=99.5, expire_ns=100))
    sim.advance(99)
    assert exp.status == "open"
    sim.on_trade(100, 101.0, 1.0, 1)
    assert exp.status == "expired" and sim.updates[-1].ts == 100


def test_bad_orders_are_refused() -> None:
    with pytest.raises(ExchangeError, match="post-only"):
        OrderRequest("X", 0, 1.0, "a", 0, kind="market", tif="GTX")
    with pytest.raises(ExchangeError, match="positive finite price"):
        OrderRequest("X", 0, 1.0, "a", 0, kind="limit", price=math.nan)
    with pytest.raises(ExchangeError, match="client id"):
        OrderRequest("X", 0, 1.0, "bad id!", 0)
    with pytest.raises(ExchangeError, match="expiry"):
        OrderRequest("X", 0, 1.0, "a", 10, kind="limit", price=1.0, expire_ns=5)
