"""The ccxt adapter against a local fake of Binance USDT-M REST (127.0.0.1): order types,
partial fills, cancel/replace, idempotent client ids, market checks, TLS and rate limits."""

from __future__ import annotations

import pytest

from dea.errors import ConfigError, ExchangeError
from dea.execution.order_types import OrderRequest, child_client_id, replacement
from dea.instruments import Instrument
from serving.exchanges.ccxt_exchange import CcxtExchange, check_endpoints
from tests.serving.fake_binance import FakeBinance

ccxt = pytest.importorskip("ccxt")
T0 = 1_723_161_255_000_000_000


@pytest.fixture()
def fake():  # noqa: ANN201
    f = FakeBinance()
    yield f
    f.close()


def _adapter(fake: FakeBinance, **opts) -> CcxtExchange:  # noqa: ANN003
    client = ccxt.binance({"apiKey": "k", "secret": "s", "enableRateLimit": True,
                           "options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False,
                                       **opts}})
    client.urls["api"] = fake.urls()
    return CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, client=client)


def _perp(**kw) -> Instrument:  # noqa: ANN003
    base = {"symbol": "BTCUSDT", "kind": "perpetual", "funding": "none", "tick_size": 0.1, "lot_size": 0.001,
            "min_notional": 100.0}
    return Instrument(**{**base, **kw})


def _cid(k: int) -> str:
    return child_client_id("dea", T0, "BTCUSDT", k)


def test_order_types_partial_fills_and_cancel_replace(fake) -> None:  # noqa: ANN001
    ex = _adapter(fake)
    ex.check_markets([_perp()])
    lim = OrderRequest("BTCUSDT", 0, 0.5, _cid(0), T0, kind="limit", price=60000.0, tif="GTC")
    ack = ex.submit_order(lim)
    assert ack.status == "sent" and ack.venue_id is not None
    assert fake.sim.orders[_cid(0)].front == 2.0  # queued behind the 2 BTC on the bid
    fake.trade(60000.0, 2.3, -1)  # sells take the queue ahead and 0.3 of ours: a partial fill
    status, filled, left = ex.order_state(_cid(0), "BTCUSDT")
    assert status == "open" and filled == pytest.approx(0.3) and left == pytest.approx(0.2)
    fills = ex.poll_fills(0)
    assert [(f.client_id, f.qty, f.price) for f in fills] == [(_cid(0), pytest.approx(0.3), 60000.0)]
    # cancel/replace: the rest re-quoted one tick lower under a new id
    new = replacement(lim, _cid(0) + "r1", qty=0.2, price=59999.9)
    ack2 = ex.replace_order(_cid(0), new)
    assert ack2.status == "sent" and fake.sim.orders[_cid(0)].status == "cancelled"
    assert fake.sim.orders[new.client_id].front == 5.0
    # post-only that would cross is rejected by the venue, IOC and FOK, market, reduce-only
    po = ex.submit_order(OrderRequest("BTCUSDT", 0, 0.1, _cid(1), T0, kind="limit", price=60000.1, tif="GTX"))
    assert po.status == "rejected" and "Post Only" in po.reason and "-5022" in po.reason
    ioc = ex.submit_order(OrderRequest("BTCUSDT", 0, 2.0, _cid(2), T0, kind="limit", price=60000.1, tif="IOC"))
    assert ioc.status == "rejected" and fake.sim.orders[_cid(2)].filled == pytest.approx(1.0)  # expired after 1
    fok = ex.submit_order(OrderRequest("BTCUSDT", 0, 9.0, _cid(3), T0, kind="limit", price=60000.5, tif="FOK"))
    assert fok.status == "rejected" and fake.sim.orders[_cid(3)].filled == 0.0
    ro = ex.submit_order(OrderRequest("BTCUSDT", 0, -3.0, _cid(4), T0, kind="market", reduce_only=True))
    assert ro.status == "filled" and fake.sim.orders[_cid(4)].filled == pytest.approx(1.3)  # clipped to the long
    assert ex.positions()["BTCUSDT"] == pytest.approx(0.0)
    # the same client id again (a restart): answered with the existing order, nothing new traded
    n = len(fake.sim.fills)
    again = ex.submit_order(OrderRequest("BTCUSDT", 0, 2.0, _cid(2), T0, kind="limit", price=60000.1, tif="IOC"))
    assert again.client_id == _cid(2) and len(fake.sim.fills) == n
    seen = {f.fill_id: f for f in fills}
    new_fills = {f.fill_id: f for f in ex.poll_fills(0) if f.fill_id not in seen}  # polls may repeat: ids dedupe
    assert sum(f.qty for f in new_fills.values()) == pytest.approx(1.0 - 1.3)


def test_contract_size_and_market_checks(fake) -> None:  # noqa: ANN001
    fake.contract_size = 0.01  # a venue quoting in 0.01 BTC contracts
    ex = _adapter(fake)
    with pytest.raises(ConfigError, match=r"contract_size: config 1 but .* says 0.01"):
        ex.check_markets([_perp()])
    ex.check_markets([_perp(contract_size=0.01, lot_size=0.00001)])
    ex.submit_order(OrderRequest("BTCUSDT", 0, 0.5, _cid(0), T0, kind="market"))
    assert fake.sim.orders[_cid(0)].filled == pytest.approx(0.5)  # 50 contracts of 0.01
    assert ex.poll_fills(0)[0].qty == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="tick_size: config 0.5"):
        _adapter(fake).check_markets([_perp(contract_size=0.01, tick_size=0.5)])


def test_tls_only_except_loopback_and_rate_limit(fake) -> None:  # noqa: ANN001
    with pytest.raises(ExchangeError, match="not TLS"):
        check_endpoints({"api": {"fapiPrivate": "http://fapi.example.com/fapi/v1"}}, "binance")
    with pytest.raises(ExchangeError, match="not TLS"):
        check_endpoints({"api": {"ws": "ws://stream.example.com"}}, "binance")
    check_endpoints({"api": {"a": "https://fapi.binance.com", "b": "wss://x", "c": "http://127.0.0.1:1"}}, "binance")
    client = ccxt.binance({"apiKey": "k", "secret": "s", "enableRateLimit": False})
    client.urls["api"] = {"fapiPrivate": "http://fapi.example.com/fapi/v1"}
    with pytest.raises(ExchangeError, match="not TLS"):
        CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, client=client)
    ex = _adapter(fake)
    ex.client.enableRateLimit = False
    ex = CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, client=ex.client)
    assert ex.client.enableRateLimit is True  # the adapter turns the limiter back on
    ex.check_markets([_perp()])
    start = len(fake.requests)
    for _ in range(4):
        ex.lookup("nope", "BTCUSDT")
    times = [t for t, _, _ in fake.requests[start:]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 4 and min(gaps) >= 0.8 * ex.client.rateLimit / 1000


def test_schedules_through_the_ccxt_adapter(fake) -> None:  # noqa: ANN001
    """passive-then-aggressive and TWAP worked by the executor through ccxt against the fake."""
    from dea.book.l2 import L2Book
    from dea.execution.quality import shortfall
    from dea.execution.replay import Executor
    from dea.execution.schedule import ExecutionConfig, ParentOrder
    from serving.exchanges.order_port import VenueOrderPort

    ex = _adapter(fake)
    ex.check_markets([_perp()])
    book = L2Book()
    book.load([(60000.0, 2.0), (59999.9, 5.0)], [(60000.1, 1.0), (60000.5, 4.0)])  # the feed's view
    port = VenueOrderPort(ex, "BTCUSDT", book)
    run = Executor(port, ExecutionConfig(algo="passive_aggressive", passive_timeout="10s"), lot=0.001, tick=0.1)  # type: ignore[arg-type]
    s = 1_000_000_000
    pe = run.start(ParentOrder("pa-1", "BTCUSDT", 0, 1.0, T0, 60000.05))
    post = pe.children[0]
    assert post.tif == "GTX" and post.price == 60000.0 and fake.sim.orders[post.client_id].status == "open"
    fake.trade(60000.0, 2.4, -1)  # the queue ahead (2) and 0.4 of ours
    run.sim.advance(T0 + 5 * s)
    run.wake(T0 + 5 * s)
    assert pe.executed == pytest.approx(0.4) and len(pe.children) == 1
    run.sim.advance(T0 + 11 * s)
    run.wake(T0 + 11 * s)  # timeout: cancel the rest, then cross what is left
    run.sim.advance(T0 + 11 * s)
    run.wake(T0 + 11 * s)
    assert [c.kind for c in pe.children] == ["limit", "market"] and abs(pe.children[1].qty) == pytest.approx(0.6)
    rec = run.records[-1]
    assert rec.status == "done" and sum(f.qty for f in rec.fills) == pytest.approx(1.0)
    assert [f.maker for f in rec.fills] == [True, False]
    sf = shortfall(rec)
    assert sf.fill_rate == pytest.approx(1.0) and sf.spread < sf.fees  # maker half earned, taker half paid
    assert fake.sim.position == pytest.approx(1.0)
    twap = Executor(port, ExecutionConfig(algo="twap", horizon="20s", slices=2), lot=0.001, tick=0.1)  # type: ignore[arg-type]
    pt = twap.start(ParentOrder("tw-1", "BTCUSDT", 0, -0.4, T0 + 20 * s, 60000.05))
    for k in (21, 30, 31):
        twap.sim.advance(T0 + k * s)
        twap.wake(T0 + k * s)
    assert [c.t_decision for c in pt.children] == [T0 + 20 * s, T0 + 30 * s]
    assert fake.sim.position == pytest.approx(0.6) and twap.records[-1].status == "done"


def test_worked_exchange_through_ccxt_and_a_restart_trades_nothing_twice(fake, tmp_path) -> None:  # noqa: ANN001
    """The live loop's worked venue over the ccxt adapter: a passive-then-aggressive parent at the
    fake over HTTP, fills under the parent id, in-flight for the loop; a second process re-sending
    the same parent regenerates the same child ids and the venue answers with the existing orders."""
    from dea.book.events import DepthSnapshot
    from dea.execution.orders import Order
    from dea.execution.schedule import ExecutionConfig
    from dea.execution.store import ExecutionStore
    from serving.exchanges.worked import WorkedExchange

    s = 1_000_000_000
    cfg = ExecutionConfig(algo="passive_aggressive", passive_timeout="10s")
    book = DepthSnapshot(T0, T0, 1, ((60000.0, 2.0), (59999.9, 5.0)), ((60000.1, 1.0), (60000.5, 4.0)))
    parent = Order("BTCUSDT", 0, 1.0, T0, T0, 60000.05, "dea-par-1")

    def process(tag: str):  # noqa: ANN202 - one serving process
        ex = _adapter(fake)
        ex.check_markets([_perp()])
        w = WorkedExchange([_perp()], cfg, adapter=ex, store=ExecutionStore(tmp_path / f"{tag}.sqlite"))
        w.on_depth(0, book)
        return w

    w = process("a")
    assert w.submit([parent])[0].status == "sent"
    post = fake.sim.orders[_cid(0)]
    assert post.req.tif == "GTX" and post.req.price == 60000.0 and post.status == "open"
    fake.trade(60000.0, 2.4, -1)  # the 2 ahead, then 0.4 of ours
    w.before_decision(T0 + 5 * s)
    first = w.poll_fills(T0 + 5 * s)
    assert [(f.client_id, f.qty, f.maker) for f in first] == [("dea-par-1", pytest.approx(0.4), True)]
    assert w.in_flight() == [pytest.approx(0.6)]  # what the loop counts as pending
    for k in (11, 11, 12):
        w.before_decision(T0 + k * s)  # timeout: cancel at the venue, then cross the rest
    second = w.poll_fills(T0 + 12 * s)
    assert [(f.qty, f.maker) for f in second] == [(pytest.approx(0.6), False)]
    assert fake.sim.position == pytest.approx(1.0) and w.positions()["BTCUSDT"] == pytest.approx(1.0)
    assert w.in_flight() == [pytest.approx(0.0)] and w.lookup("dea-par-1", "BTCUSDT").status == "filled"
    w.close()
    kinds = _rows_of(tmp_path / "a.sqlite", "SELECT client_id, kind, tif, status FROM exec_orders ORDER BY client_id")
    assert kinds == [(_cid(0), "limit", "GTX", "cancelled"), (_cid(1), "market", "GTC", "filled")]

    n_trades, n_requests = len(fake.sim.fills), len(fake.requests)
    w2 = process("b")  # a restart that re-sends the parent (its ack was never journaled)
    w2.submit([parent])
    for k in (5, 11, 11, 12):
        w2.before_decision(T0 + k * s)
    again = w2.poll_fills(T0 + 12 * s)
    assert len(fake.sim.fills) == n_trades and len(fake.requests) > n_requests  # asked, traded nothing
    # the same fills under the same ids: the journal ignores them as repeats
    assert sorted(f.fill_id for f in again) == sorted(f.fill_id for f in first + second)
    w2.close()


def _rows_of(path, sql: str) -> list[tuple]:  # noqa: ANN001
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_expiry_through_the_ccxt_adapter(fake) -> None:  # noqa: ANN001
    """A resting GTC limit with an expiry, partly filled, is cancelled at the venue when its
    expiry passes on the caller's clock and ends expired with its partial fill."""
    from dea.book.l2 import L2Book
    from serving.exchanges.order_port import VenueOrderPort

    ex = _adapter(fake)
    ex.check_markets([_perp()])
    port = VenueOrderPort(ex, "BTCUSDT", L2Book())
    s = 1_000_000_000
    req = OrderRequest("BTCUSDT", 0, 0.5, _cid(0), T0, kind="limit", price=60000.0, tif="GTC", expire_ns=T0 + 5 * s)
    o = port.submit(T0, req)
    assert o.status == "open" and fake.sim.orders[_cid(0)].status == "open"
    fake.trade(60000.0, 2.1, -1)  # 0.1 of ours after the 2 ahead
    port.advance(T0 + 4 * s)  # before the expiry: still working
    assert o.status == "open" and o.filled == pytest.approx(0.1)
    port.advance(T0 + 5 * s)  # expiry: cancelled at the venue over HTTP
    assert fake.sim.orders[_cid(0)].status == "cancelled"
    assert o.status == "expired" and o.filled == pytest.approx(0.1) and o.leaves == pytest.approx(0.4)
    assert port.updates[-1].status == "expired" and port.updates[-1].reason == "expiry reached"
    assert sum(f.qty for f in port.fills) == pytest.approx(0.1)
