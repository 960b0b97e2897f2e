"""Live order books and trades from any venue ccxt supports, through ccxt's websocket API
(``ccxt.pro``; imported lazily).

ccxt maintains the book itself and hands over full books (``watch_order_book``), so each update
becomes a :class:`~dea.book.events.DepthSnapshot` for the loop's book (sequencing is ccxt's job
on these venues; prefer :mod:`serving.feeds.binance` on Binance, which is faster and checks the
update ids itself). Trades (``watch_trades``) become :class:`~dea.book.events.Trade` events.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dea.book.events import DepthSnapshot, Trade
from dea.errors import ExchangeError
from serving.events import BookMsg, Tick

log = logging.getLogger("dea.serving.feeds.ccxt")

_STOP = object()


def snapshot_from_ccxt(book: dict[str, Any], now: int, depth: int) -> DepthSnapshot:
    """A ccxt order book dict -> DepthSnapshot (``nonce`` as the update id when present)."""
    ts = book.get("timestamp")
    return DepthSnapshot(
        now,
        int(ts) * 1_000_000 if ts else now,
        int(book.get("nonce") or 0),
        tuple((float(p), float(q)) for p, q, *_ in book.get("bids", [])[:depth]),
        tuple((float(p), float(q)) for p, q, *_ in book.get("asks", [])[:depth]),
    )


def trade_from_ccxt(tr: dict[str, Any], symbol: str, now: int) -> Trade:
    ts = tr.get("timestamp")
    return Trade(now, int(ts) * 1_000_000 if ts else now, symbol, int(tr.get("id") or 0) if str(tr.get("id") or "0").isdigit() else 0,
                 float(tr["price"]), float(tr["amount"]), 1 if tr.get("side") == "buy" else -1)


class CcxtFeed:
    """``ccxt.pro.<venue>`` books and trades for ``markets`` (ccxt symbols, instrument order)."""

    def __init__(
        self,
        venue: str,
        markets: Sequence[str],
        *,
        depth: int = 200,
        tick_s: float = 1.0,
        client: Any = None,
        clock: Callable[[], int] = time.time_ns,
        max_queue: int = 200_000,
    ) -> None:
        self.venue = venue
        self.markets = list(markets)
        self.depth = depth
        self.tick_s = tick_s
        self.clock = clock
        self._client = client
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[Any]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dea-ccxt-feed", daemon=True)
            self._thread.start()
        while True:
            try:
                item = self._q.get(timeout=self.tick_s)
            except queue.Empty:
                if self._stop.is_set():
                    break
                yield Tick(self.clock())
                continue
            if item is _STOP:
                break
            yield item
        if self.error is not None:
            raise ExchangeError(f"ccxt feed {self.venue} failed: {self.error}") from self.error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._q.put(_STOP)

    async def _main(self) -> None:
        client = self._client
        if client is None:
            try:
                import ccxt.pro as ccxtpro
            except ImportError as exc:
                raise ExchangeError("the ccxt feed needs ccxt (with ccxt.pro): pip install 'dea[serve]'") from exc
            if not hasattr(ccxtpro, self.venue):
                raise ExchangeError(f"ccxt.pro has no venue {self.venue!r}")
            client = getattr(ccxtpro, self.venue)({"enableRateLimit": True})
        try:
            tasks = [asyncio.create_task(self._books(client, j, m)) for j, m in enumerate(self.markets)]
            tasks += [asyncio.create_task(self._trades(client, j, m)) for j, m in enumerate(self.markets)]
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()
            for t in tasks:
                t.cancel()
        finally:
            closer = getattr(client, "close", None)
            if closer is not None:
                res = closer()
                if asyncio.iscoroutine(res):
                    await res

    async def _books(self, client: Any, j: int, market: str) -> None:
        while not self._stop.is_set():
            book = await client.watch_order_book(market)
            now = self.clock()
            self._q.put(BookMsg(now, j, snapshot_from_ccxt(book, now, self.depth)))

    async def _trades(self, client: Any, j: int, market: str) -> None:
        symbol = market.replace("/", "").split(":")[0]
        while not self._stop.is_set():
            trades = await client.watch_trades(market)
            now = self.clock()
            for tr in trades:
                self._q.put(BookMsg(now, j, trade_from_ccxt(tr, symbol, now)))
