"""Live order books and trades from any venue ccxt supports, through ccxt's websocket API
(``ccxt.pro``; imported lazily).

ccxt maintains the book itself and hands over full books (``watch_order_book``), so each update
becomes a :class:`~dea.book.events.DepthSnapshot` for the loop's book (sequencing is ccxt's job
on these venues; prefer :mod:`serving.feeds.binance` on Binance, which is faster and checks the
update ids itself). Trades (``watch_trades``) become :class:`~dea.book.events.Trade` events.

Funding: for perpetuals (``funding=True``) the venue's ``fetchFundingRate`` is polled every
``funding_poll_s`` and each answer becomes a :class:`~serving.events.FundingRateEvent` (current
rate, next settlement time, mark and index). Staying up: a ccxt ``NetworkError`` (timeouts,
disconnects, rate limits, venue unavailable) in any stream is retried with exponential backoff
and full jitter (``tenacity``); the backoff restarts once the stream delivers again. Other errors
(a bad symbol, bad credentials) end the feed with the error.
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
from serving.events import BookMsg, FundingRateEvent, Tick

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


def funding_from_ccxt(fr: dict[str, Any], j: int, now: int) -> FundingRateEvent | None:
    """A ccxt funding-rate structure -> FundingRateEvent (None without a rate or a next time)."""
    rate = fr.get("fundingRate")
    nxt = fr.get("fundingTimestamp") or fr.get("nextFundingTimestamp")
    if rate is None or not nxt:
        return None
    ts = fr.get("timestamp")

    def num(x: Any) -> float:
        return float("nan") if x is None else float(x)

    return FundingRateEvent(now, int(ts) * 1_000_000 if ts else now, j, float(rate), int(nxt) * 1_000_000,
                            num(fr.get("markPrice")), num(fr.get("indexPrice")))


def _network_error() -> tuple[type[BaseException], ...]:
    try:
        import ccxt
    except ImportError:  # a test client without ccxt installed
        return (OSError, TimeoutError)
    return (ccxt.NetworkError, OSError, TimeoutError)


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
        funding: bool = False,
        funding_poll_s: float = 60.0,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_failures: int | None = None,
    ) -> None:
        self.venue = venue
        self.funding = funding
        self.funding_poll_s = funding_poll_s
        self.backoff_s, self.backoff_max_s, self.max_failures = backoff_s, backoff_max_s, max_failures
        self.retries = 0
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
            if self.funding:
                tasks += [asyncio.create_task(self._funding(client, j, m)) for j, m in enumerate(self.markets)]
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

    async def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        """``await call()``, retrying network errors with jittered exponential backoff."""
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_never, wait_random_exponential

        stop = stop_never if self.max_failures is None else stop_after_attempt(self.max_failures + 1)

        def before_sleep(state: Any) -> None:
            self.retries += 1
            log.warning("ccxt %s %s: %s; retrying in %.2fs", self.venue, what, state.outcome.exception(),
                        state.next_action.sleep)

        async for attempt in AsyncRetrying(
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.backoff_max_s), stop=stop,
            retry=retry_if_exception_type(_network_error()), reraise=True, before_sleep=before_sleep,
        ):
            with attempt:
                return await call()
        return None  # unreachable: tenacity either returns or raises

    async def _books(self, client: Any, j: int, market: str) -> None:
        while not self._stop.is_set():
            book = await self._retrying(f"order book {market}", lambda: client.watch_order_book(market))
            now = self.clock()
            self._q.put(BookMsg(now, j, snapshot_from_ccxt(book, now, self.depth)))

    async def _trades(self, client: Any, j: int, market: str) -> None:
        symbol = market.replace("/", "").split(":")[0]
        while not self._stop.is_set():
            trades = await self._retrying(f"trades {market}", lambda: client.watch_trades(market))
            now = self.clock()
            for tr in trades:
                self._q.put(BookMsg(now, j, trade_from_ccxt(tr, symbol, now)))

    async def _funding(self, client: Any, j: int, market: str) -> None:
        while not self._stop.is_set():
            fr = await self._retrying(f"funding rate {market}", lambda: client.fetch_funding_rate(market))
            ev = funding_from_ccxt(fr or {}, j, self.clock())
            if ev is not None:
                self._q.put(ev)
            end = time.monotonic() + self.funding_poll_s
            while not self._stop.is_set() and time.monotonic() < end:
                await asyncio.sleep(min(0.05, self.funding_poll_s))
