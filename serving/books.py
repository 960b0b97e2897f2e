"""Order books in the live loop: order-book features, book views for paper fills, resync signals.

One :class:`dea.features.orderbook.OrderbookFeatureStream` per instrument (the same streaming
execution the feature parity tests hold to the batch replay) consumes the book messages; at each
decision its snapshot becomes the ``ob.*`` fields of the panel row and its flow interval is reset.
:class:`BookView` lets the paper venue walk the *current* book at fill time without copying the
book on every diff (fills only happen before the next book change, so "current" is "the state at
or before the due time", the backtest's rule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dea.book import sequencing as seq
from dea.book.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from dea.book.l2 import ASK, BID, SyncedBook
from dea.features.orderbook import OrderbookFeatureStream, OrderbookParams
from dea.timeutil import NS_PER_S


class BookView:
    """Duck-typed book for :meth:`dea.execution.fills.PaperFillModel.fill_against_book`:
    ``bid_px``/``bid_sz``/``ask_px``/``ask_sz`` (best first) read from the live book on access."""

    __slots__ = ("_sync", "_levels", "_cache_key", "_cache", "index")

    def __init__(self, sync: SyncedBook, index: int, levels: int) -> None:
        self._sync = sync
        self._levels = levels
        self._cache_key = -1
        self._cache: tuple[np.ndarray, ...] = ()
        self.index = index

    def _arrays(self) -> tuple[np.ndarray, ...]:
        key = self._sync.applied_diffs * 1_000_003 + self._sync.snapshots
        if key != self._cache_key:
            book = self._sync.book
            bids = book.levels(BID, self._levels)
            asks = book.levels(ASK, self._levels)
            self._cache = (
                np.array([p for p, _ in bids]), np.array([q for _, q in bids]),
                np.array([p for p, _ in asks]), np.array([q for _, q in asks]),
            )
            self._cache_key = key
        return self._cache

    def frozen(self, ts: int) -> object:
        """A copy of the current levels (kept when the live book becomes invalid)."""
        from dea.backtest.event import BookEvent

        bp, bs, ap, asz = (a.copy() for a in self._arrays())
        return BookEvent(ts, self.index, bp, bs, ap, asz)

    @property
    def bid_px(self) -> np.ndarray:
        return self._arrays()[0]

    @property
    def bid_sz(self) -> np.ndarray:
        return self._arrays()[1]

    @property
    def ask_px(self) -> np.ndarray:
        return self._arrays()[2]

    @property
    def ask_sz(self) -> np.ndarray:
        return self._arrays()[3]


class OrderBooks:
    """Per-instrument order-book streams and the ``ob.*`` fields of the panel row."""

    def __init__(self, n: int, params: OrderbookParams | None = None, *, fill_levels: int = 200) -> None:
        self.n = n
        self.params = params or OrderbookParams()
        self.names = self.params.field_names()
        self.state_names = self.params.state_names()
        # every instrument gets a stream from the start (as in the batch replay, flow intervals
        # open at the first decision even before the instrument's first message)
        self.streams: list[OrderbookFeatureStream] = [OrderbookFeatureStream(self.params) for _ in range(n)]
        self._syncs: list[SyncedBook] = [s.book for s in self.streams]  # valid() runs on every trade
        self.views: list[BookView] = [BookView(s.book, j, fill_levels) for j, s in enumerate(self.streams)]
        self.fill_levels = fill_levels
        self.tickers: list[BookTicker | None] = [None] * n
        self._fields = {name: np.full(n, math.nan) for name in self.names}
        self._cols = [self._fields[name] for name in self.names]  # in snapshot_values order
        self._age_index = self.names.index("ob.book_age_s")
        self._book_age = np.full(n, math.nan)  # one array: every state field is as old as the book
        self._ages = {name: self._book_age for name in self.state_names}

    def on_book(self, j: int, event: DepthSnapshot | DepthDiff) -> None:
        self.streams[j].on_book(event)

    def on_trade(self, j: int, event: Trade) -> None:
        self.streams[j].on_trade(event)

    def on_ticker(self, j: int, event: BookTicker) -> None:
        self.tickers[j] = event

    def valid(self, j: int) -> bool:
        sync = self._syncs[j]
        if not sync.valid:
            return False
        b = sync.book
        return b.n_bids > 0 and b.n_asks > 0

    def would_break(self, j: int, diff: DepthDiff) -> bool:
        """True when applying ``diff`` would open a sequence gap (the book would be cleared)."""
        sync = self.streams[j].book
        if sync.mode is None:
            return False
        if sync.state == sync.SYNCED:
            return not seq.follows(sync.mode, sync.last_update_id, diff.first_update_id, diff.prev_final_update_id)
        if sync.state == sync.AWAIT_FIRST and not seq.is_stale(sync.mode, sync.snapshot_id, diff.final_update_id):
            return not seq.bridges_snapshot(sync.mode, sync.snapshot_id, diff.first_update_id, diff.final_update_id)
        return False

    def sync_state(self, j: int) -> tuple[bool, int]:
        """(needs a snapshot, snapshots applied so far): what a live feed asks before a resync."""
        sync = self.streams[j].book
        return sync.needs_snapshot, sync.snapshots

    def needs_snapshot(self, j: int) -> bool:
        return self.streams[j].needs_snapshot

    def mid(self, j: int) -> float:
        s = self.streams[j]
        b, a = s.book.book.best_bid(), s.book.book.best_ask()
        return math.nan if b is None or a is None else 0.5 * (b[0] + a[0])

    def fill_row(self, t: int, fields: dict[str, np.ndarray], ages: dict[str, np.ndarray | float]) -> None:
        """Write the ``ob.*`` values at decision time ``t`` into ``fields``/``ages``; start the
        next flow interval (the batch replay's sampling contract)."""
        cols = self._cols
        age_at = self._age_index
        book_age = self._book_age
        for j, s in enumerate(self.streams):  # every instrument has a stream: every cell is written
            vals = s.snapshot_values(t)
            for arr, v in zip(cols, vals):
                arr[j] = v
            book_age[j] = vals[age_at] * NS_PER_S
            s.reset_interval()
        fields.update(self._fields)
        ages.update(self._ages)

    def symbols_needing_snapshot(self, symbols: Sequence[str]) -> list[str]:
        return [s for j, s in enumerate(symbols) if self.needs_snapshot(j)]
