"""Live Binance feed: combined websocket streams + REST depth snapshots, the lowest-latency path.

Messages are decoded by :func:`dea.book.binance.parse_binance_message` (the parser the capture
replay and the feature parity tests use) and stamped with the local receive time
(``available_at``). Book synchronisation follows Binance's procedure: subscribe to the diff
stream first, then fetch a REST snapshot; diffs that arrive before it are buffered by the loop's
:class:`~dea.book.l2.SyncedBook`, which drops stale ones and requires the first applied diff to
straddle the snapshot (``U``/``u``/``pu``). After a sequence gap the book reports
``needs_snapshot`` and the feed fetches a fresh snapshot (at most one in flight per symbol).

The websocket runs on an asyncio loop in a background thread; the live loop iterates the feed
and receives :class:`BookMsg` events, plus :class:`Tick` events when the market is quiet so
decisions still fire on time. ``base_ws`` / ``base_rest`` point the feed at another endpoint
(testnet, or a local replay server in tests).

Funding (derivatives markets): the ``<symbol>@markPrice`` stream (mark, index, current funding
rate ``r``, next funding time ``T``) becomes :class:`~serving.events.FundingRateEvent`; the loop
settles each funding instant at the last rate announced before it.

Staying up: a closed, failed or silent connection (no message for ``stall_s``) is reconnected
with exponential backoff and full jitter (``tenacity``; the backoff restarts after a connection
that stayed healthy for ``healthy_s``), and before Binance's 24 h cut (``max_session_s``);
after every reconnect each book is re-synced with a fresh snapshot. Snapshot requests are
bounded: at most one in flight per symbol, at least ``snapshot_interval_s`` apart, failures
retried with backoff (a burst of requests is how an IP gets banned).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from dea.book.binance import parse_binance_message
from dea.book.events import DepthDiff, DepthSnapshot
from dea.errors import DataError, ExchangeError
from serving.events import BookMsg, FundingRateEvent, Tick

log = logging.getLogger("dea.serving.feeds.binance")

MARKETS = {
    # market: (websocket base, REST depth path, depth stream suffix)
    "usdm": ("wss://fstream.binance.com", "https://fapi.binance.com/fapi/v1/depth", "@depth@0ms"),
    "coinm": ("wss://dstream.binance.com", "https://dapi.binance.com/dapi/v1/depth", "@depth@0ms"),
    "spot": ("wss://stream.binance.com:9443", "https://api.binance.com/api/v3/depth", "@depth@100ms"),
}

_STOP = object()
_MS = 1_000_000


class _Rotate(Exception):
    """The connection must be replaced (stalled, or too old): not a failure of the venue."""


def _recoverable() -> tuple[type[BaseException], ...]:
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    return (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI, _Rotate)


class BinanceFeed:
    """Iterate to receive events; :meth:`stop` ends the iteration.

    ``symbols``: exchange symbols (``BTCUSDT``) in instrument order (event ``instrument`` is the
    index here).
    ``book_state(i) -> (needs_snapshot, snapshots_applied)``: the loop's book; after a gap the
    feed fetches a new snapshot, but only once the loop has applied every snapshot already queued
    (the loop runs behind the feed; without this a slow loop would trigger a fetch storm).
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        market: str = "usdm",
        base_ws: str | None = None,
        rest_url: str | None = None,
        depth_limit: int = 1000,
        tick_s: float = 1.0,
        book_state: Callable[[int], tuple[bool, int]] | None = None,
        max_queue: int = 200_000,
        clock: Callable[[], int] = time.time_ns,
        mark_price: bool | None = None,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_failures: int | None = None,
        healthy_s: float = 30.0,
        stall_s: float = 30.0,
        max_session_s: float = 23.5 * 3600,
        snapshot_interval_s: float = 2.0,
        snapshot_retries: int = 5,
    ) -> None:
        if market not in MARKETS:
            raise DataError(f"unknown Binance market {market!r}; known: {sorted(MARKETS)}")
        ws, rest, depth = MARKETS[market]
        self.symbols = [s.upper() for s in symbols]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.mark_price = market != "spot" if mark_price is None else mark_price
        suffixes = (depth, "@bookTicker", "@trade") + (("@markPrice@1s",) if self.mark_price else ())
        streams = "/".join(f"{s.lower()}{suffix}" for s in self.symbols for suffix in suffixes)
        self.url = f"{(base_ws or ws).rstrip('/')}/stream?streams={streams}"
        self.rest_url = rest_url or rest
        self.depth_limit = depth_limit
        self.tick_s = tick_s
        self.book_state = book_state
        self.clock = clock
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._fetching: set[int] = set()
        self._sent = [0] * len(self.symbols)  # snapshots queued per instrument
        self.error: BaseException | None = None
        self.messages = 0
        self.snapshots = 0
        self.backoff_s, self.backoff_max_s, self.max_failures = backoff_s, backoff_max_s, max_failures
        self.healthy_s, self.stall_s, self.max_session_s = healthy_s, stall_s, max_session_s
        self.snapshot_interval_s, self.snapshot_retries = snapshot_interval_s, snapshot_retries
        self._last_request = [-1e18] * len(self.symbols)  # monotonic time of the last snapshot request
        self._resync: set[int] = set()  # symbols whose book needs a fresh snapshot (after a reconnect)
        self.connects = 0
        self.drops = 0
        self.rotations = 0
        self.snapshot_requests = 0
        self.funding_updates = 0

    # -- consumer side -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        self.start()
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
            raise ExchangeError(f"Binance feed failed: {self.error}") from self.error

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dea-binance-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(lambda: None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- producer side -----------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to the consumer
            self.error = exc
        finally:
            loop.close()
            self._q.put(_STOP)

    async def _main(self) -> None:
        """Connect, read, reconnect: until :meth:`stop`, or ``max_failures`` failed attempts in a row."""
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_never, wait_random_exponential

        stop = stop_never if self.max_failures is None else stop_after_attempt(self.max_failures + 1)
        while not self._stop.is_set():
            retrying = AsyncRetrying(
                wait=wait_random_exponential(multiplier=self.backoff_s, max=self.backoff_max_s),
                stop=stop, retry=retry_if_exception_type(_recoverable()), reraise=True,
                sleep=self._sleep, before_sleep=self._log_retry,
            )
            async for attempt in retrying:  # a new backoff after every healthy connection
                with attempt:
                    await self._session()

    async def _sleep(self, seconds: float) -> None:
        """Backoff that :meth:`stop` interrupts."""
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.05, max(end - time.monotonic(), 0.0)))

    def _log_retry(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning("Binance websocket: %s; reconnecting in %.2fs (attempt %d)", exc or "closed",
                    state.next_action.sleep if state.next_action else 0.0, state.attempt_number)

    async def _session(self) -> None:
        """One connection. Returns after a healthy connection ended (the caller reconnects at
        once with a fresh backoff); raises when it failed early (the caller backs off)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        if self._stop.is_set():
            return
        t_open = time.monotonic()
        try:
            async with connect(self.url, max_size=None, ping_interval=20, open_timeout=10, proxy=None) as ws:
                self.connects += 1
                if self.connects > 1:  # every book re-syncs from a fresh snapshot
                    self._resync = set(range(len(self.symbols)))
                log.info("connected to %s (connection %d)", self.url.split("?")[0], self.connects)
                last_msg = time.monotonic()
                while not self._stop.is_set():
                    now = time.monotonic()
                    if now - t_open > self.max_session_s:
                        self.rotations += 1
                        log.info("Binance websocket: proactive reconnect after %.0fs (before the 24h cut)", now - t_open)
                        return
                    if now - last_msg > self.stall_s:
                        raise _Rotate(f"no message for {now - last_msg:.1f}s (stalled connection)")
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.25)
                    except TimeoutError:
                        continue
                    last_msg = time.monotonic()
                    self._on_message(raw)
        except _recoverable() as exc:
            if isinstance(exc, ConnectionClosed):
                self.drops += 1
            if self._stop.is_set():
                return
            if time.monotonic() - t_open >= self.healthy_s:
                log.warning("Binance websocket: %s after a healthy connection; reconnecting now", exc)
                return
            raise

    def _on_message(self, raw: Any) -> None:
        now = self.clock()
        if b"markPriceUpdate" in (raw if isinstance(raw, bytes) else raw.encode()):
            self._on_mark_price(raw, now)
            return
        ev = parse_binance_message(raw, now, "binance websocket")
        if ev is None:
            return
        sym = getattr(ev, "symbol", "")
        j = self.index.get(sym.upper())
        if j is None:
            return
        self.messages += 1
        self._put(BookMsg(now, j, ev))
        if isinstance(ev, DepthDiff) and j not in self._fetching:
            if self._sent[j] == 0 or j in self._resync:
                want = True
                self._resync.discard(j)
            elif self.book_state is None:
                want = False
            else:
                needs, applied = self.book_state(j)
                want = needs and applied >= self._sent[j]
            if want:
                self._fetching.add(j)
                assert self._loop is not None
                self._loop.create_task(self._snapshot(j))

    def _on_mark_price(self, raw: Any, now: int) -> None:
        """``markPriceUpdate``: mark, index, funding rate ``r`` and next funding time ``T``."""
        msg = orjson.loads(raw)
        d = msg.get("data", msg) if isinstance(msg, dict) else None
        if not isinstance(d, dict):
            return
        j = self.index.get(str(d.get("s", "")).upper())
        if j is None:
            return
        try:
            rate, nxt = float(d["r"]), int(d["T"]) * _MS
        except (KeyError, TypeError, ValueError):  # e.g. delivery contracts carry no funding
            return
        stamp = int(d.get("E") or 0) * _MS or now
        self.messages += 1
        self.funding_updates += 1
        self._put(FundingRateEvent(now, stamp, j, rate, nxt, _num(d.get("p")), _num(d.get("i"))))

    async def _snapshot(self, j: int) -> None:
        """Fetch one depth snapshot: at least ``snapshot_interval_s`` after the previous request
        for this symbol, failures retried with jittered exponential backoff (``tenacity``)."""
        from tenacity import AsyncRetrying, stop_after_attempt, wait_random_exponential

        sym = self.symbols[j]
        url = f"{self.rest_url}?symbol={sym}&limit={self.depth_limit}"
        try:
            async for attempt in AsyncRetrying(
                wait=wait_random_exponential(multiplier=max(self.snapshot_interval_s, 0.01), max=60.0),
                stop=stop_after_attempt(self.snapshot_retries), sleep=self._sleep, reraise=True,
            ):
                with attempt:
                    await self._sleep(self._last_request[j] + self.snapshot_interval_s - time.monotonic())
                    if self._stop.is_set():
                        return
                    self._last_request[j] = time.monotonic()
                    self.snapshot_requests += 1
                    body = await asyncio.get_running_loop().run_in_executor(None, _http_get, url)
                    now = self.clock()
                    snap = parse_binance_message(body, now, f"REST depth {sym}")
                    if not isinstance(snap, DepthSnapshot):
                        raise DataError(f"REST depth {sym}: not a depth snapshot")
            self.snapshots += 1
            self._sent[j] += 1
            self._put(BookMsg(now, j, snap))
        except Exception as exc:  # given up for now: the next diff that needs it asks again
            log.warning("depth snapshot for %s failed after retries: %s", sym, exc)
        finally:
            self._fetching.discard(j)

    def _put(self, item: Any) -> None:
        try:
            self._q.put_nowait(item)
        except queue.Full:
            raise ExchangeError("Binance feed: the loop is not keeping up (event queue full)") from None


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _http_get(url: str, timeout: float = 10.0) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "dea"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - https/http URL we built
        return resp.read()
