"""Streaming L2 book for serving (numpy/stdlib only).

:class:`L2Book` keeps, per side, a dict price -> size (O(1) lookup and size change) and an
ascending list of the occupied prices (``bisect``: O(log n) search; inserting or deleting a
price shifts the list, a memmove of a few KB for a 1,000-level book). Best bid/ask are the list
ends, so they are O(1); walking the book outward from the touch (top-k levels, depth within x
bps) touches only occupied levels.

Depth within a band (:meth:`L2Book.band_units`) is what the order-book features read at every
decision, and a 25 bps band of a liquid perpetual holds ~1,000 levels per side: summing them on
every read would dominate the live loop. The book therefore keeps, for the bounds last asked
for, running integer sums that each level change updates in O(1) (one comparison for levels
outside every band), and moves them to new bounds by summing only the levels between the old
and the new bound. Sizes are exact integers of 1e-8 units, so the running sums equal a fresh
scan exactly, whatever the order of the updates.

:class:`SyncedBook` adds Binance's sequencing rules (:mod:`dea.book.sequencing`): diffs that
arrive before a snapshot are buffered, stale ones dropped, and a gap invalidates the book until
the next snapshot (``needs_snapshot`` tells the live feed to fetch one). It never applies a diff
across a gap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from operator import mul

from dea.book import sequencing as seq
from dea.book.events import BookEvent, DepthDiff, DepthSnapshot, Level
from dea.book.formulas import SIZE_SCALE

BID = 1
ASK = -1


class _Bands:
    """Running unit sums of one side for a set of tracked bounds.

    ``keys`` are the bounds in "inside when ``sign * price >= key``" form (bids: the bound;
    asks: minus the bound), sorted ascending, so the widest band comes first and a level outside
    it is outside every band (one comparison). ``sums[k]`` is the exact unit total of the levels
    inside ``keys[k]``.
    """

    __slots__ = ("keys", "sums")

    def __init__(self, keys: list[float], sums: list[int]) -> None:
        self.keys = keys
        self.sums = sums


class L2Book:
    """Price-level book: ``apply`` diffs, ``load`` snapshots, read the touch and walk levels.

    Depth sums are exact integers of 1e-8 size units (:func:`dea.book.formulas.size_units`),
    derived from the float sizes where they are summed: a band sum is a ``bisect`` plus a C-level
    map over a slice, or a tracked running sum (:meth:`band_units`).
    """

    __slots__ = ("_bids", "_asks", "_bid_px", "_ask_px", "_bid_bands", "_ask_bands")

    def __init__(self) -> None:
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_px: list[float] = []  # ascending; best bid is the last
        self._ask_px: list[float] = []  # ascending; best ask is the first
        self._bid_bands: _Bands | None = None  # tracked band sums (see band_units)
        self._ask_bands: _Bands | None = None

    def clear(self) -> None:
        for c in (self._bids, self._asks, self._bid_px, self._ask_px):
            c.clear()
        self._bid_bands = self._ask_bands = None

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the book with a snapshot (zero sizes are ignored)."""
        self.clear()
        _apply_side(self._bids, self._bid_px, bids)
        _apply_side(self._asks, self._ask_px, asks)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply diff levels in order: size 0 deletes the level, otherwise sets it."""
        if self._bid_bands is None:
            _apply_side(self._bids, self._bid_px, bids)
        else:
            _apply_side_tracked(self._bids, self._bid_px, bids, 1.0, self._bid_bands)
        if self._ask_bands is None:
            _apply_side(self._asks, self._ask_px, asks)
        else:
            _apply_side_tracked(self._asks, self._ask_px, asks, -1.0, self._ask_bands)

    # ------------------------------------------------------------------ reads
    def best_bid(self) -> Level | None:
        if not self._bid_px:
            return None
        p = self._bid_px[-1]
        return p, self._bids[p]

    def best_ask(self) -> Level | None:
        if not self._ask_px:
            return None
        p = self._ask_px[0]
        return p, self._asks[p]

    def walk(self, side: int) -> Iterator[Level]:
        """Occupied levels of ``side`` (+1 bids, -1 asks) from the touch outward."""
        if side == BID:
            sizes, prices = self._bids, reversed(self._bid_px)
        else:
            sizes, prices = self._asks, iter(self._ask_px)
        for p in prices:
            yield p, sizes[p]

    def levels(self, side: int, n: int) -> list[Level]:
        """The ``n`` best levels of ``side``, best first (fewer if the side is shallower)."""
        if side == BID:
            px = self._bid_px[-n:][::-1] if n > 0 else []
            return [(p, self._bids[p]) for p in px]
        return [(p, self._asks[p]) for p in self._ask_px[:n]]

    def level_units(self, side: int, n: int) -> list[int]:
        """Integer sizes (1e-8 units) of the ``n`` best levels of ``side``, best first."""
        return self.top(side, n)[2]

    def top(self, side: int, n: int) -> tuple[list[float], list[float], list[int]]:
        """Prices, sizes and integer units of the ``n`` best levels of ``side``, best first (one
        slice for what :meth:`levels` and :meth:`level_units` give separately)."""
        if side == BID:
            px = self._bid_px[-n:][::-1] if n > 0 else []
            sizes = self._bids
        else:
            px = self._ask_px[:n] if n > 0 else []
            sizes = self._asks
        qs = list(map(sizes.__getitem__, px))
        return px, qs, list(map(round, map(mul, qs, repeat(1e8))))

    def units_within(self, side: int, bound: float) -> int:
        """Total integer size (1e-8 units) of bids priced >= ``bound`` or asks priced <= ``bound``."""
        if side == BID:
            return _units(self._bids, self._bid_px[bisect_left(self._bid_px, bound) :])
        return _units(self._asks, self._ask_px[: bisect_right(self._ask_px, bound)])

    def band_units(self, side: int, bounds: Sequence[float]) -> list[int]:
        """``[units_within(side, b) for b in bounds]``, from running sums kept for these bounds.

        The first call (and any call after ``load``/``clear`` or with a different number of
        bounds) scans; later calls move each tracked bound to its new value by summing only the
        levels in between, and every diff keeps the sums current in O(1) per level. Exact
        (integer units): the result is always equal to a fresh :meth:`units_within`.
        """
        sign = 1.0 if side == BID else -1.0
        keys = [sign * b for b in bounds]
        for k in keys:
            if k != k:  # NaN bound: nothing sensible to track
                return [self.units_within(side, b) for b in bounds]
        pairs = sorted(zip(keys, range(len(keys))))
        new_keys = [k for k, _ in pairs]
        bands = self._bid_bands if side == BID else self._ask_bands
        if bands is None or len(bands.keys) != len(new_keys):
            sums = [self.units_within(side, sign * k) for k in new_keys]
            bands = _Bands(new_keys, sums)
            if side == BID:
                self._bid_bands = bands
            else:
                self._ask_bands = bands
        else:
            sums = bands.sums
            for k, old in enumerate(bands.keys):
                new = new_keys[k]
                if new != old:
                    sums[k] += self._units_between(side, old, new)
            bands.keys = new_keys
        out = [0] * len(keys)
        for (_, i), v in zip(pairs, sums):
            out[i] = v
        return out

    def _units_between(self, side: int, old_key: float, new_key: float) -> int:
        """Change of the units inside a band when its key moves from ``old_key`` to ``new_key``."""
        if side == BID:  # inside: price >= key
            px, sizes = self._bid_px, self._bids
            i, j = bisect_left(px, new_key), bisect_left(px, old_key)
        else:  # inside: price <= -key
            px, sizes = self._ask_px, self._asks
            i, j = bisect_right(px, -old_key), bisect_right(px, -new_key)
        return _units(sizes, px[i:j]) if i < j else -_units(sizes, px[j:i])

    def depth_within_bps(self, bps: float) -> tuple[float, float]:
        """Total (bid, ask) size priced within ``bps`` basis points of the mid (NaN if one-sided)."""
        bb, ba = self.best_bid(), self.best_ask()
        if bb is None or ba is None:
            return float("nan"), float("nan")
        mid = 0.5 * (bb[0] + ba[0])
        lo, hi = mid * (1.0 - bps * 1e-4), mid * (1.0 + bps * 1e-4)
        return self.units_within(BID, lo) / SIZE_SCALE, self.units_within(ASK, hi) / SIZE_SCALE

    def __len__(self) -> int:
        return len(self._bid_px) + len(self._ask_px)

    @property
    def n_bids(self) -> int:
        return len(self._bid_px)

    @property
    def n_asks(self) -> int:
        return len(self._ask_px)


# Integer units are ``formulas.size_units`` (``round(size * 1e8)``), inlined: a Python call per
# level would be a measurable share of a diff's cost. tests/book holds them to size_units.
def _units(sizes: dict[float, float], prices: list[float]) -> int:
    """Total integer units of the levels at ``prices`` (C-level iteration)."""
    return sum(map(round, map(mul, map(sizes.__getitem__, prices), repeat(1e8))))


def _apply_side(sizes: dict[float, float], prices: list[float], levels: Iterable[Level]) -> None:
    for p, q in levels:
        if q > 0:
            if p not in sizes:
                insort(prices, p)
            sizes[p] = q
        elif sizes.pop(p, None) is not None:
            del prices[bisect_left(prices, p)]


def _apply_side_tracked(
    sizes: dict[float, float], prices: list[float], levels: Iterable[Level], sign: float, bands: _Bands
) -> None:
    """:func:`_apply_side` that also keeps the tracked band sums of this side current."""
    keys, sums = bands.keys, bands.sums
    widest = keys[0]
    nk = len(keys)
    for p, q in levels:
        x = sign * p
        if q > 0:
            old = sizes.get(p)
            sizes[p] = q
            if old is None:
                insort(prices, p)
                if not x >= widest:
                    continue
                d = round(q * 1e8)
            else:
                if not x >= widest or q == old:
                    continue
                d = round(q * 1e8) - round(old * 1e8)
        else:
            old = sizes.pop(p, None)
            if old is None:
                continue
            del prices[bisect_left(prices, p)]
            if not x >= widest:
                continue
            d = -round(old * 1e8)
        if d:
            sums[0] += d
            k = 1
            while k < nk and x >= keys[k]:
                sums[k] += d
                k += 1


AppliedCallback = Callable[[BookEvent | None, int], None]
"""Called after each change of book state: ``(event, time)`` with the snapshot or diff just
applied, or ``(None, time)`` when a gap invalidated the book. ``time`` is when the new state
became knowable: the event's receive time, or the snapshot's for diffs buffered before it."""


class SyncedBook:
    """An :class:`L2Book` fed raw snapshot/diff events under Binance's sequencing rules.

    ``mode``: :data:`~dea.book.sequencing.FUTURES` / :data:`~dea.book.sequencing.SPOT`, or None
    to infer it from the first diff (futures diffs carry ``pu``). ``max_buffer`` bounds the diffs
    kept while waiting for a snapshot (the oldest are dropped; if they were needed the first-diff
    rule then reports a gap, so nothing is applied across a hole).
    """

    NEEDS_SNAPSHOT = 0
    AWAIT_FIRST = 1
    SYNCED = 2

    def __init__(self, mode: int | None = None, max_buffer: int = 100_000) -> None:
        self.book = L2Book()
        self.mode = mode
        self.state = self.NEEDS_SNAPSHOT
        self.last_update_id = -1  # u of the last applied diff (or L of the snapshot)
        self.snapshot_id = -1
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self.snapshots = 0
        self.gaps = 0
        self.resyncs = 0
        self.stale_dropped = 0
        self.applied_diffs = 0
        self.last_gap: str | None = None

    @property
    def valid(self) -> bool:
        """True when the book reflects a snapshot plus every diff since (no open gap)."""
        return self.state != self.NEEDS_SNAPSHOT

    @property
    def needs_snapshot(self) -> bool:
        return self.state == self.NEEDS_SNAPSHOT

    def feed(self, event: BookEvent, on_applied: AppliedCallback | None = None) -> None:
        """Process one snapshot or diff in arrival order; ``on_applied`` sees every state change."""
        if isinstance(event, DepthSnapshot):
            self._on_snapshot(event, on_applied)
        else:
            self._on_diff(event, event.available_at, on_applied)

    def _on_snapshot(self, snap: DepthSnapshot, cb: AppliedCallback | None) -> None:
        if self.snapshots and self.gaps > self.resyncs:
            self.resyncs += 1
        self.snapshots += 1
        self.book.load(snap.bids, snap.asks)
        self.snapshot_id = self.last_update_id = snap.last_update_id
        self.state = self.AWAIT_FIRST
        if cb is not None:
            cb(snap, snap.available_at)
        pending = list(self._buffer)
        self._buffer.clear()
        for diff in pending:
            self._on_diff(diff, max(diff.available_at, snap.available_at), cb)

    def _on_diff(self, diff: DepthDiff, time: int, cb: AppliedCallback | None) -> None:
        if self.mode is None:
            self.mode = seq.market_mode(diff.prev_final_update_id)
        if self.state == self.NEEDS_SNAPSHOT:
            self._buffer.append(diff)
            return
        if self.state == self.AWAIT_FIRST:
            if seq.is_stale(self.mode, self.snapshot_id, diff.final_update_id):
                self.stale_dropped += 1
                return
            ok = seq.bridges_snapshot(self.mode, self.snapshot_id, diff.first_update_id, diff.final_update_id)
        else:
            ok = seq.follows(self.mode, self.last_update_id, diff.first_update_id, diff.prev_final_update_id)
        if not ok:
            if self.state == self.AWAIT_FIRST:
                rule = f"first diff after snapshot {self.snapshot_id} must straddle it"
            else:
                rule = f"diff must continue update id {self.last_update_id}"
            self.gaps += 1
            self.last_gap = (
                f"{rule}; got U={diff.first_update_id} u={diff.final_update_id} "
                f"pu={diff.prev_final_update_id}"
            )
            self.book.clear()
            self.state = self.NEEDS_SNAPSHOT
            self._buffer.append(diff)
            if cb is not None:
                cb(None, time)
            return
        self.book.apply(diff.bids, diff.asks)
        self.last_update_id = diff.final_update_id
        self.state = self.SYNCED
        self.applied_diffs += 1
        if cb is not None:
            cb(diff, time)
