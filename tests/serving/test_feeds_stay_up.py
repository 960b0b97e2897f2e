"""Feeds that stay up, against a local exchange on 127.0.0.1 that misbehaves on purpose.

The websocket server scripts its connections: the first drops after a few messages, the second
is closed by the server at once ("try again later"), the third stalls (open, silent), the
fourth skips an update id (a sequence gap) and then behaves. The Binance feed must reconnect each time (with backoff), re-sync the
book from a fresh snapshot after every reconnect, keep the snapshot request rate bounded, and end
with the exchange's own book; the mark-price stream must arrive as funding events. A ccxt client
that raises network errors must be retried, not end the feed. Every loop here is bounded."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from dea.book.events import DepthDiff, DepthSnapshot
from dea.book.l2 import ASK, BID
from serving.books import OrderBooks
from serving.events import BookMsg, FundingRateEvent, Tick
from serving.feeds.binance import BinanceFeed
from serving.feeds.ccxt_feed import CcxtFeed
from serving.funding import FundingTracker

T_FUND = 1_723_190_400_000  # ms: a funding instant


class FlakyBinance:
    """Depth diffs + mark-price messages for BTCUSDT; ``script`` says what each connection does."""

    def __init__(self, script: list[tuple[str, int]]) -> None:
        self.script = script
        self.last_id = 1000
        self.bids = {round(100.0 - i * 0.1, 1): 1.0 for i in range(5)}
        self.asks = {round(100.1 + i * 0.1, 1): 1.0 for i in range(5)}
        self.connections = 0
        self.rest_calls = 0
        self.rest_times: list[float] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.n = 0

    def start(self) -> FlakyBinance:
        threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True).start()
        assert self.ready.wait(10)
        return self

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        http = await asyncio.start_server(self._http, "127.0.0.1", 0)
        self.rest_port = http.sockets[0].getsockname()[1]
        async with serve(self._ws, "127.0.0.1", 0) as server:
            self.ws_port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stop.wait()
        http.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)

    def _diff(self, skip: bool = False) -> str:
        self.n += 1
        first = self.last_id + 1
        self.last_id += 3
        bid, ask = round(100.0 - (self.n % 5) * 0.1, 1), round(100.1 + (self.n % 5) * 0.1, 1)
        self.bids[bid] = round(1.0 + self.n * 0.01, 3)
        self.asks[ask] = round(1.0 + self.n * 0.02, 3)
        body = {"e": "depthUpdate", "E": 1723161256000 + self.n, "T": 1723161256000 + self.n, "s": "BTCUSDT",
                "U": first, "u": self.last_id, "pu": first - 1,
                "b": [[f"{bid:.1f}", f"{self.bids[bid]:.3f}"]], "a": [[f"{ask:.1f}", f"{self.asks[ask]:.3f}"]]}
        return json.dumps({"stream": "btcusdt@depth@0ms", "data": body})

    def _mark(self) -> str:
        nxt = T_FUND if self.n < 40 else T_FUND + 8 * 3600 * 1000
        body = {"e": "markPriceUpdate", "E": 1723161256000 + self.n, "s": "BTCUSDT", "p": "100.05", "i": "100.04",
                "P": "100.06", "r": "0.00010000" if self.n < 40 else "0.00020000", "T": nxt}
        return json.dumps({"stream": "btcusdt@markPrice@1s", "data": body})

    async def _ws(self, conn) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._script(conn)
        except ConnectionClosed:  # the client went away (a rotation, or the end of the test)
            pass

    async def _script(self, conn) -> None:
        assert conn.request.path.startswith("/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade/btcusdt@markPrice")
        k = self.connections
        self.connections += 1
        what, count = self.script[min(k, len(self.script) - 1)]
        if what == "refuse":
            await conn.close(code=1013)
            return
        for i in range(count):
            if what == "gap" and i == count // 2:
                self._diff()  # the exchange's book moves, the client never hears it
            await conn.send(self._diff())
            if i % 5 == 0:
                await conn.send(self._mark())
            await asyncio.sleep(0.002)
        if what == "drop":
            conn.transport.abort()  # no close frame: a dropped TCP connection
            return
        if what == "stall":
            await asyncio.sleep(5)  # open and silent; the client must give up on it
            return
        self.done.set()
        await self._stop.wait()

    async def _http(self, reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.rest_calls += 1
        self.rest_times.append(time.monotonic())
        body = json.dumps({"lastUpdateId": self.last_id, "E": 0, "T": 0,
                           "bids": [[repr(p), repr(q)] for p, q in sorted(self.bids.items(), reverse=True)],
                           "asks": [[repr(p), repr(q)] for p, q in sorted(self.asks.items())]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()


def _consume(feed: BinanceFeed, books: OrderBooks, server: FlakyBinance, timeout_s: float = 20.0) -> list:
    seen = []
    t_end = time.monotonic() + timeout_s
    for ev in feed:
        if isinstance(ev, BookMsg):
            books.on_book(ev.instrument, ev.event) if isinstance(ev.event, (DepthSnapshot, DepthDiff)) else None
        elif not isinstance(ev, Tick):
            seen.append(ev)
        sync = books.streams[0].book
        if (server.done.is_set() and feed._q.empty() and sync.valid
                and sync.last_update_id == server.last_id) or time.monotonic() > t_end:
            break
    return seen


def _feed(server: FlakyBinance, books: OrderBooks, **kw) -> BinanceFeed:
    return BinanceFeed(["BTCUSDT"], base_ws=f"ws://127.0.0.1:{server.ws_port}",
                       rest_url=f"http://127.0.0.1:{server.rest_port}/fapi/v1/depth", tick_s=0.02,
                       book_state=books.sync_state, backoff_s=0.02, backoff_max_s=0.2, stall_s=0.4,
                       healthy_s=60.0, snapshot_interval_s=0.05, **kw)


def test_binance_feed_survives_drops_refusals_stalls_and_gaps():
    server = FlakyBinance([("drop", 30), ("refuse", 0), ("stall", 20), ("gap", 40)]).start()
    books = OrderBooks(1)
    feed = _feed(server, books)
    try:
        seen = _consume(feed, books, server)
    finally:
        feed.stop()
        server.stop()
    sync = books.streams[0].book
    assert server.done.is_set(), "the feed never reached the well-behaved connection"
    assert server.connections == feed.connects == 4
    assert feed.drops >= 2 and feed.error is None
    # the book is the exchange's: in sync after every reconnect and after the gap
    assert sync.valid and sync.last_update_id == server.last_id
    b = sync.book
    assert b.levels(BID, 10) == sorted(server.bids.items(), reverse=True)[:10]
    assert b.levels(ASK, 10) == sorted(server.asks.items())[:10]
    # a fresh snapshot per connection (+1 for the gap), never a burst
    assert feed.connects <= server.rest_calls <= feed.connects + 2
    gaps = [b - a for a, b in zip(server.rest_times, server.rest_times[1:])]
    assert all(g >= 0.04 for g in gaps)
    # the mark-price stream arrives as funding information, and its settlement is recoverable
    funding = [e for e in seen if isinstance(e, FundingRateEvent)]
    assert funding and all(e.instrument == 0 for e in funding)
    assert {e.rate for e in funding} <= {1e-4, 2e-4} and funding[0].mark_price == 100.05
    tracker = FundingTracker(1, [0])
    settled = [s for e in funding if (s := tracker.on_rate(e._replace(available_at=T_FUND * 1_000_000 + 1))) is not None]
    assert len(settled) == 1 and settled[0].ts_event == T_FUND * 1_000_000 and settled[0].rate == 1e-4


def test_binance_feed_reconnects_before_the_session_limit():
    server = FlakyBinance([("ok", 60)]).start()
    books = OrderBooks(1)
    feed = _feed(server, books, max_session_s=0.1)
    try:
        t_end = time.monotonic() + 10
        for _ in feed:
            if feed.rotations >= 2 or time.monotonic() > t_end:
                break
    finally:
        feed.stop()
        server.stop()
    assert feed.rotations >= 2 and feed.connects >= feed.rotations and feed.error is None
    assert server.connections >= 2 and feed.drops == 0  # rotated by the client, not dropped


def test_binance_feed_gives_up_after_max_failures_with_a_clear_error():
    server = FlakyBinance([("refuse", 0)]).start()
    books = OrderBooks(1)
    feed = _feed(server, books, max_failures=3)
    from dea.errors import ExchangeError

    try:
        with pytest.raises(ExchangeError, match="Binance feed failed"):
            t_end = time.monotonic() + 10
            for _ in feed:
                assert time.monotonic() < t_end
    finally:
        feed.stop()
        server.stop()
    assert server.connections == 4


class FlakyCcxt:
    """A ccxt.pro-like client whose calls fail with network errors now and then."""

    def __init__(self) -> None:
        import ccxt

        self.err = ccxt.NetworkError
        self.calls = {"book": 0, "trades": 0, "funding": 0}

    async def watch_order_book(self, market):
        self.calls["book"] += 1
        await asyncio.sleep(0.005)
        if self.calls["book"] % 3 == 0:
            raise self.err("simulated disconnect")
        return {"timestamp": 1723161256000, "nonce": self.calls["book"], "bids": [[100.0, 1.0]], "asks": [[100.1, 1.0]]}

    async def watch_trades(self, market):
        self.calls["trades"] += 1
        await asyncio.sleep(0.005)
        if self.calls["trades"] == 2:
            raise self.err("simulated timeout")
        return [{"timestamp": 1723161256000, "id": "1", "price": 100.05, "amount": 0.1, "side": "buy"}]

    async def fetch_funding_rate(self, market):
        self.calls["funding"] += 1
        if self.calls["funding"] == 1:
            raise self.err("simulated 503")
        return {"fundingRate": 0.0001, "fundingTimestamp": T_FUND, "timestamp": 1723161256000,
                "markPrice": 100.05, "indexPrice": 100.04}


def test_ccxt_feed_retries_network_errors_and_polls_funding():
    client = FlakyCcxt()
    feed = CcxtFeed("binanceusdm", ["BTC/USDT:USDT"], client=client, tick_s=0.02, funding=True,
                    funding_poll_s=0.05, backoff_s=0.01, backoff_max_s=0.05)
    books, funding = 0, []
    t_end = time.monotonic() + 10
    try:
        for ev in feed:
            if isinstance(ev, BookMsg) and isinstance(ev.event, DepthSnapshot):
                books += 1
            elif isinstance(ev, FundingRateEvent):
                funding.append(ev)
            if (books >= 10 and len(funding) >= 2) or time.monotonic() > t_end:
                break
    finally:
        feed.stop()
    assert feed.error is None and feed.retries >= 4
    assert books >= 10 and len(funding) >= 2
    assert funding[0].rate == 1e-4 and funding[0].next_funding_ns == T_FUND * 1_000_000
