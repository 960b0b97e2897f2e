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

from dea.book.binance import parse_binance_message
from dea.book.events import DepthDiff, DepthSnapshot
from dea.errors import DataError, ExchangeError
from serving.events import BookMsg, Tick

log = logging.getLogger("dea.serving.feeds.binance")

MARKETS = {
    # market: (websocket base, REST depth path, depth stream suffix)
    "usdm": ("wss://fstream.binance.com", "https://fapi.binance.com/fapi/v1/depth", "@depth@0ms"),
    "coinm": ("wss://dstream.binance.com", "https://dapi.binance.com/dapi/v1/depth", "@depth@0ms"),
    "spot": ("wss://stream.binance.com:9443", "https://api.binance.com/api/v3/depth", "@depth@100ms"),
}

_STOP = object()


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
    ) -> None:
        if market not in MARKETS:
            raise DataError(f"unknown Binance market {market!r}; known: {sorted(MARKETS)}")
        ws, rest, depth = MARKETS[market]
        self.symbols = [s.upper() for s in symbols]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        streams = "/".join(f"{s.lower()}{suffix}" for s in self.symbols for suffix in (depth, "@bookTicker", "@trade"))
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
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(self.url, max_size=None, ping_interval=20, open_timeout=10, proxy=None) as ws:
            log.info("connected to %s", self.url.split("?")[0])
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.25)
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    log.warning("Binance websocket closed by the server")
                    return
                self._on_message(raw)

    def _on_message(self, raw: Any) -> None:
        now = self.clock()
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
            if self._sent[j] == 0:
                want = True
            elif self.book_state is None:
                want = False
            else:
                needs, applied = self.book_state(j)
                want = needs and applied >= self._sent[j]
            if want:
                self._fetching.add(j)
                assert self._loop is not None
                self._loop.create_task(self._snapshot(j))

    async def _snapshot(self, j: int) -> None:
        sym = self.symbols[j]
        url = f"{self.rest_url}?symbol={sym}&limit={self.depth_limit}"
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, _http_get, url)
            now = self.clock()
            snap = parse_binance_message(body, now, f"REST depth {sym}")
            if not isinstance(snap, DepthSnapshot):
                raise DataError(f"REST depth {sym}: not a depth snapshot")
            self.snapshots += 1
            self._sent[j] += 1
            self._put(BookMsg(now, j, snap))
        except Exception as exc:  # retried at the next diff
            log.warning("depth snapshot for %s failed: %s", sym, exc)
        finally:
            self._fetching.discard(j)

    def _put(self, item: Any) -> None:
        try:
            self._q.put_nowait(item)
        except queue.Full:
            raise ExchangeError("Binance feed: the loop is not keeping up (event queue full)") from None


def _http_get(url: str, timeout: float = 10.0) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "dea"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - https/http URL we built
        return resp.read()
