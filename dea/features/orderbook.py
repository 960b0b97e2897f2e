"""Order-book features: defined once, executed streaming (serving) and by replay (batch).

The definition
--------------
:class:`OrderbookParams` fixes the parameters; :meth:`OrderbookParams.field_names` the panel
fields they produce, all per instrument and named ``ob.<feature>``:

==========================  ================================================================
``ob.mid``                  (best bid + best ask) / 2
``ob.spread_bps``           (ask - bid) / mid, bps
``ob.microprice_dev_bps``   (size-weighted touch - mid) / mid, bps
``ob.imbalance_l{k}``       (bid - ask) / (bid + ask) of the cumulative size of the k best levels
``ob.imbalance_{x}bps``     same, of the size priced within x bps of the mid
``ob.depth_{x}bps``         bid + ask size within x bps of the mid (base units)
``ob.slope_l{K}``           mean over sides of ln(cumulative size to level K / touch size) per
                            bp between the touch and level K (K = the largest ``levels``)
``ob.rv_{h}``               sqrt of the sum of squared log mid changes over the last h (event
                            time); NaN until the book has been continuously valid for h
``ob.book_age_s``           seconds since the last book event (staleness)
``ob.ofi``                  order-flow imbalance (Cont, Kukanov & Stoikov 2014) summed over
                            the decision interval, from changes of the best levels
``ob.trade_flow``           signed (aggressor) traded size over the interval
``ob.trade_volume``         traded size over the interval
``ob.trade_imbalance``      trade_flow / trade_volume (NaN when nothing traded)
==========================  ================================================================

Sampling contract: state features are the value after the last book event with
``available_at <= t``; flow features (ofi, trade_*) accumulate over (t_prev, t] and are NaN on
the first decision row (interval start unknown). Book features are NaN while the book is not
valid (before the first snapshot, after a sequence gap until the resync) or one-sided; ``ofi``
is NaN when the book is not valid at t; trade sums are NaN before any data arrived.

Two executions of the definition
--------------------------------
- streaming: :class:`OrderbookFeatureStream` (numpy/stdlib only; serving) keeps a
  :class:`~dea.book.l2.SyncedBook` and O(1)-amortised state per event;
- batch: :func:`orderbook_panel_fields` / :func:`capture_panel_fields` replay the events on a
  dense-array book in numba (:mod:`dea.book.replay`).

Both call the same arithmetic (:mod:`dea.book.formulas`); the parity tests in ``tests/book``
hold them together (relative difference <= 1e-9 at every decision time) on the real captures.
The model-facing features registered at the bottom of this module read these panel fields.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import accumulate
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from dea.book import formulas as fm
from dea.book.events import BookEvent, DepthSnapshot, Trade
from dea.book.l2 import ASK, BID, SyncedBook
from dea.config.base import StrictModel
from dea.errors import DataError, FeatureError, LeakageError
from dea.features.base import ExprFeature, Input
from dea.features.registry import register
from dea.timeutil import NS_PER_S, format_duration, parse_duration

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from dea.book.capture import ParsedCapture
    from dea.data.config import DataConfig

FLOW_FIELDS = ("ob.ofi", "ob.trade_flow", "ob.trade_volume", "ob.trade_imbalance")


class OrderbookParams(StrictModel):
    """Parameters of the order-book feature family (the panel fields depend on them)."""

    levels: tuple[int, ...] = Field(default=(1, 5, 10), description="level depths for imbalance; the largest sets the slope")
    bands_bps: tuple[float, ...] = Field(default=(5.0, 25.0), description="bands around the mid for depth and imbalance")
    rv_horizons: tuple[str, ...] = Field(default=("10s", "1m", "5m"), description="realised-volatility horizons")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(k < 1 for k in v) or list(v) != sorted(set(v)):
            raise ValueError(f"levels must be distinct positive integers in ascending order, got {list(v)}")
        return v

    @field_validator("bands_bps")
    @classmethod
    def _bands(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (0 < x < 10_000) for x in v) or list(v) != sorted(set(v)):
            raise ValueError(f"bands_bps must be distinct, ascending, in (0, 10000), got {list(v)}")
        return v

    @field_validator("rv_horizons")
    @classmethod
    def _horizons(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        ns = [parse_duration(h) for h in v]
        if any(x <= 0 for x in ns) or len(set(ns)) != len(ns):
            raise ValueError(f"rv_horizons must be distinct positive durations, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _names_unique(self) -> "OrderbookParams":
        names = self.field_names()
        if len(set(names)) != len(names):
            raise ValueError(f"parameters give duplicate field names: {names}")
        return self

    # ------------------------------------------------------------------ derived
    @property
    def horizons_ns(self) -> tuple[int, ...]:
        return tuple(parse_duration(h) for h in self.rv_horizons)

    @property
    def band_fracs(self) -> tuple[float, ...]:
        return tuple(x * 1e-4 for x in self.bands_bps)

    def state_names(self) -> tuple[str, ...]:
        """Per-event book-state features, in the replay kernel's column order."""
        names = ["ob.mid", "ob.spread_bps", "ob.microprice_dev_bps"]
        names += [f"ob.imbalance_l{k}" for k in self.levels]
        names += [f"ob.imbalance_{_bps(x)}bps" for x in self.bands_bps]
        names += [f"ob.depth_{_bps(x)}bps" for x in self.bands_bps]
        names.append(f"ob.slope_l{self.levels[-1]}")
        names += [f"ob.rv_{format_duration(h)}" for h in self.horizons_ns]
        return tuple(names)

    def field_names(self) -> tuple[str, ...]:
        """Every panel field, in order: state features, ``ob.book_age_s``, then the flows."""
        return self.state_names() + ("ob.book_age_s",) + FLOW_FIELDS

    def warmup_ns(self, name: str) -> int:
        """Time the book must have been valid before ``name`` can be non-NaN (an rv field's
        horizon; 0 for the others, which need only a valid two-sided book)."""
        rv = dict(zip(self.state_names()[len(self.state_names()) - len(self.horizons_ns) :], self.horizons_ns))
        return rv.get(name, 0)


def _bps(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x).replace(".", "p")


# =========================================================================== streaming execution
class OrderbookFeatureStream:
    """Streaming execution: feed events in arrival order, read features at decision times.

    ``on_book`` takes raw snapshots/diffs (sequencing included: a gap invalidates the book until
    the next snapshot and ``needs_snapshot`` turns True so the live feed can fetch one);
    ``on_trade`` takes trades. At a decision time t call ``snapshot_features(t)`` (or
    ``snapshot_values(t)``) then ``reset_interval()`` (flows accumulate between resets).
    numpy/stdlib only; memory is bounded by the book size and the longest volatility horizon.

    Cost model: what must see every event is done per event (validity, the touch for the flows
    and the crossed-book count, the OFI increment and the realised-volatility windows, all O(1)).
    The book-state fields (depths, imbalances, slope) are a function of the book after the last
    event alone, so they are computed when a decision reads them, once per changed book, from
    running band sums (:meth:`dea.book.l2.L2Book.band_units`): the same values, without walking
    ~1,000 levels on every diff.
    """

    def __init__(self, params: OrderbookParams | None = None, mode: int | None = None) -> None:
        self.params = params or OrderbookParams()
        self._sync = SyncedBook(mode)
        p = self.params
        self._levels = p.levels
        self._max_level = p.levels[-1]
        self._fracs = p.band_fracs
        self._horizons = p.horizons_ns
        self._names = p.field_names()
        self._n_state = len(p.state_names())
        self._n_rv = len(self._horizons)
        self._state = [math.nan] * self._n_state
        self._nan_state = [math.nan] * self._n_state
        self._dirty = False  # the book changed since _state was computed
        self._ok = False  # after the last book event: valid and two-sided
        self._state_t = 0  # time of the last book event (for the rv warm-up)
        self._valid = False
        self._valid_since = 0
        self._have_prev = False
        self._prev = (0.0, 0.0, 0.0, 0.0, 0.0)  # bid, bid size, ask, ask size, mid
        self._rv: list[deque[tuple[int, float]]] = [deque() for _ in self._horizons]
        self._rv_sum = [0.0] * len(self._horizons)
        self._ofi = 0.0
        self._flow = 0.0
        self._volume = 0.0
        self._interval_open = False
        self._started = False
        self._last_book_t = -1
        self._last_t = -(2**63)
        self.crossed = 0

    # ------------------------------------------------------------------ inputs
    @property
    def book(self) -> SyncedBook:
        return self._sync

    @property
    def needs_snapshot(self) -> bool:
        return self._sync.needs_snapshot

    def on_book(self, event: BookEvent) -> None:
        """A depth snapshot or diff, in arrival order."""
        self._sync.feed(event, self._applied)

    def on_trade(self, event: Trade) -> None:
        """A trade (``side`` +1 buy aggressor, -1 sell)."""
        self._flow += event.side * event.size
        self._volume += event.size
        self._started = True
        if event.available_at > self._last_t:
            self._last_t = event.available_at

    def reset_interval(self) -> None:
        """Start a new flow interval (call right after ``snapshot_features`` at each decision)."""
        self._ofi = 0.0
        self._flow = 0.0
        self._volume = 0.0
        self._interval_open = True

    def snapshot_features(self, t: int) -> dict[str, float]:
        """Feature values at decision time ``t`` (int ns): every field of ``params.field_names()``.

        Raises LeakageError if an event with ``available_at > t`` was already fed (the values would
        include the future).
        """
        return dict(zip(self._names, self.snapshot_values(t)))

    def snapshot_values(self, t: int) -> list[float]:
        """:meth:`snapshot_features` as a list in ``params.field_names()`` order (no dict: the
        live loop's decision path)."""
        if self._last_t > t:
            raise LeakageError(
                f"order-book features asked at {t} after an event available at {self._last_t} was fed"
            )
        if self._dirty:
            self._state = self._book_state() if self._ok else self._nan_state
            self._dirty = False
        out = self._state + [(t - self._last_book_t) / 1e9 if self._last_book_t >= 0 else math.nan]
        if not self._interval_open:
            out += (math.nan, math.nan, math.nan, math.nan)
        else:
            started = self._started
            out += (
                self._ofi if self._valid else math.nan,
                self._flow if started else math.nan,
                self._volume if started else math.nan,
                fm.trade_imbalance(self._flow, self._volume),
            )
        return out

    # ------------------------------------------------------------------ per book event
    def _applied(self, event: BookEvent | None, time: int) -> None:
        self._last_book_t = time
        if time > self._last_t:
            self._last_t = time
        self._started = True
        self._dirty = True
        self._state_t = time
        was_valid = self._valid
        if event is None:
            self._valid = False
        elif isinstance(event, DepthSnapshot):
            self._valid = True
            if not was_valid:
                self._valid_since = time
                for h in range(self._n_rv):
                    self._rv[h].clear()
                    self._rv_sum[h] = 0.0
        book = self._sync.book
        top_b, top_a = book.best_bid(), book.best_ask()
        if not (self._valid and top_b is not None and top_a is not None):
            self._ok = False
            self._have_prev = False
            return
        self._ok = True
        pb, qb = top_b
        pa, qa = top_a
        if pb >= pa:
            self.crossed += 1
        mid = fm.mid_price(pb, pa)
        push = None
        if self._have_prev:
            p = self._prev
            self._ofi += fm.ofi_increment(p[0], p[1], p[2], p[3], pb, qb, pa, qa)
            if mid != p[4]:
                push = fm.log_return_sq(p[4], mid)
        rv_sum = self._rv_sum
        for h, horizon in enumerate(self._horizons):
            dq = self._rv[h]
            if push is not None:
                dq.append((time, push))
                rv_sum[h] += push
            cut = time - horizon
            while dq and dq[0][0] <= cut:
                rv_sum[h] -= dq.popleft()[1]
            if not dq:
                rv_sum[h] = 0.0
        self._have_prev = True
        self._prev = (pb, qb, pa, qa, mid)

    def _book_state(self) -> list[float]:
        """The state fields of the book after the last event (valid and two-sided)."""
        book = self._sync.book
        pb, qb, pa, qa, mid = self._prev
        st = [fm.mid_price(pb, pa), fm.spread_bps(pb, pa, mid), fm.microprice_dev_bps(pb, qb, pa, qa, mid)]
        band_b = book.band_units(BID, [fm.band_low(mid, f) for f in self._fracs])
        band_a = book.band_units(ASK, [fm.band_high(mid, f) for f in self._fracs])
        kmax = self._max_level
        bpx, bsz, bu = book.top(BID, kmax)
        apx, asz, au = book.top(ASK, kmax)
        cum_b, cum_a = self._cumulative(bu), self._cumulative(au)
        imbalance = fm.imbalance
        st += [imbalance(b, a) for b, a in zip(cum_b, cum_a)]
        st += [imbalance(b, a) for b, a in zip(band_b, band_a)]
        scale = fm.SIZE_SCALE
        st += [(b + a) / scale for b, a in zip(band_b, band_a)]
        slope_b = fm.slope_side(bsz[0], cum_b[-1] / scale, bpx[0], bpx[-1], mid) if len(bpx) >= kmax else math.nan
        slope_a = fm.slope_side(asz[0], cum_a[-1] / scale, apx[0], apx[-1], mid) if len(apx) >= kmax else math.nan
        st.append(0.5 * (slope_b + slope_a))
        time, since, rv_sum = self._state_t, self._valid_since, self._rv_sum
        for h, horizon in enumerate(self._horizons):
            st.append(fm.realised_vol(rv_sum[h]) if time - since >= horizon else math.nan)
        return st

    def _cumulative(self, units: list[int]) -> list[int]:
        """Integer size of the k best levels for each requested k (the whole side when shallower)."""
        cum = list(accumulate(units))
        n = len(cum)
        total = cum[-1] if n else 0
        return [cum[k - 1] if k <= n else total for k in self._levels]

    def _slope(self, top: list[tuple[float, float]], cum: list[int], mid: float) -> float:
        """Slope of one side from the touch to the deepest requested level (NaN when shallower)."""
        if len(top) < self._max_level:
            return math.nan
        return fm.slope_side(top[0][1], cum[-1] / fm.SIZE_SCALE, top[0][0], top[-1][0], mid)


# =========================================================================== batch execution
def _run_replay(
    ev: tuple[np.ndarray, ...],
    trades: tuple[np.ndarray, np.ndarray, np.ndarray],
    clock: np.ndarray,
    params: OrderbookParams,
    per_event: bool = False,
    top: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from dea.book import replay as rp

    ev_kind, ev_time, ev_lv0, ev_lv1, lv_idx, lv_side, lv_sz, lv_szi, level_price = ev
    tr_time, tr_sz, tr_side = trades
    clock = np.ascontiguousarray(clock, dtype=np.int64)
    if clock.ndim != 1 or (clock.size > 1 and np.any(np.diff(clock) <= 0)):
        raise FeatureError("order-book features: the decision clock must be a strictly increasing 1-d int64 array")
    names = params.field_names()
    fs = len(params.state_names())
    panel = np.empty((len(clock), len(names)), np.float64)
    ev_out, ev_top = rp.empty_outputs(len(ev_kind), fs, per_event, top)
    crossed, updates, processed = rp.replay_kernel(
        ev_kind, ev_time, ev_lv0, ev_lv1, lv_idx, lv_side, lv_sz, lv_szi, level_price,
        tr_time, tr_sz, tr_side,
        clock,
        np.asarray(params.levels, np.int64),
        np.asarray(params.band_fracs, np.float64),
        np.asarray(params.horizons_ns, np.int64),
        panel, ev_out, ev_top,
    )
    fields = {n: panel[:, j] for j, n in enumerate(names)}
    info: dict[str, Any] = {"crossed_books": int(crossed), "level_updates": int(updates), "events": int(processed)}
    if per_event:
        info["event_features"] = ev_out
    if top:
        info["event_top"] = ev_top
    return fields, info


def capture_panel_fields(
    parsed: "ParsedCapture",
    clock: np.ndarray,
    params: OrderbookParams | None = None,
    per_event: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Batch execution straight from a parsed/cached capture (:mod:`dea.book.capture`).

    Returns (fields name -> [T], info) where info holds ``crossed_books``, ``level_updates``,
    ``events``, ``event_top`` ([n_events, 4] best bid, size, best ask, size after each book
    event) and, with ``per_event``, ``event_features`` ([n_events, n_state]).
    """
    params = params or OrderbookParams()
    ev = (
        parsed.ev_kind, parsed.ev_time, parsed.ev_lv0, parsed.ev_lv1,
        parsed.lv_idx, parsed.lv_side, parsed.lv_sz, parsed.lv_szi, parsed.level_price,
    )
    trades = (parsed.tr_time, parsed.tr_sz, parsed.tr_side)
    return _run_replay(ev, trades, clock, params, per_event=per_event, top=True)


def _col(table: "pa.Table", name: str, dtype: Any) -> np.ndarray:
    return np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=dtype)


def _book_events_from_table(book: "pa.Table") -> tuple[np.ndarray, ...]:
    """Canonical book rows (application order) -> kernel event arrays.

    A message is a run of rows with the same (available_at, seq, is_snapshot); a snapshot run
    resets the book; a row with ``is_snapshot`` and ``side == 0`` is a gap marker (book unknown
    until the next snapshot, see :mod:`dea.data.loaders.binance_ws`).
    """
    from dea.book import replay as rp

    n = book.num_rows
    at = _col(book, "available_at", np.int64)
    seqn = _col(book, "seq", np.float64) if n else np.zeros(0)
    side = _col(book, "side", np.int8)
    price = _col(book, "price", np.float64)
    size = _col(book, "size", np.float64)
    snap = _col(book, "is_snapshot", bool)
    if n == 0:
        z = np.zeros(0, np.int64)
        return np.zeros(0, np.int8), z, z, z, np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0), z, np.zeros(0)
    marker = snap & (side == 0)
    bad = ~marker & ~(np.isfinite(price) & (price > 0) & np.isfinite(size) & (size >= 0) & ((side == 1) | (side == -1)))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"book table row {r}: price {price[r]}, size {size[r]}, side {side[r]} is not a valid level")
    if np.any(np.diff(at) < 0):
        r = int(np.flatnonzero(np.diff(at) < 0)[0]) + 1
        raise DataError(f"book table row {r}: available_at goes backwards; rows must be in application order")
    start = np.ones(n, bool)
    start[1:] = (at[1:] != at[:-1]) | (seqn[1:] != seqn[:-1]) | (snap[1:] != snap[:-1]) | marker[1:] | marker[:-1]
    ev_lv0 = np.flatnonzero(start).astype(np.int64)
    ev_lv1 = np.append(ev_lv0[1:], n).astype(np.int64)
    ev_kind = np.where(snap[ev_lv0], np.where(marker[ev_lv0], rp.EV_GAP, rp.EV_SNAPSHOT), rp.EV_DIFF).astype(np.int8)
    ev_lv1 = np.where(ev_kind == rp.EV_GAP, ev_lv0, ev_lv1)
    real = ~marker
    uniq, inv = np.unique(price[real], return_inverse=True)
    lv_idx = np.zeros(n, np.int32)
    lv_idx[real] = inv.astype(np.int32)
    szi = np.rint(np.where(marker, 0.0, size) * float(fm.SIZE_SCALE)).astype(np.int64)
    return ev_kind, at[ev_lv0].copy(), ev_lv0, ev_lv1, lv_idx, side.astype(np.int8), size, szi, uniq


def _trade_arrays(trades: "pa.Table | None") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if trades is None or trades.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)
    at = _col(trades, "available_at", np.int64)
    sz = _col(trades, "size", np.float64)
    side = _col(trades, "side", np.float64)
    if np.any(np.diff(at) < 0):
        raise DataError("trades table: available_at goes backwards; rows must be in arrival order")
    bad = ~(np.isfinite(sz) & (sz >= 0) & np.isfinite(side))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"trades table row {r}: size {sz[r]} / side {side[r]} is not usable for trade flow")
    return at, sz, side.astype(np.int8)


def orderbook_panel_fields(*args: Any, **kwargs: Any) -> Any:
    """Batch execution onto a decision clock. Two call forms:

    ``orderbook_panel_fields(book_table, trades_table, quotes_table, clock, params=None)``
        one instrument's canonical tables -> ``{"ob.<feature>": [T] float64}``. ``quotes_table``
        is accepted for symmetry with the capture's tables but not needed (the L2 book carries
        the touch); ``trades_table`` may be None (trade flows then stay NaN).

    ``orderbook_panel_fields(clock, data_config, tables_by_source)``
        the form :func:`dea.data.panel.assemble_panel` uses: groups the book/trades sources of
        ``data_config`` by instrument and returns ``(fields, age)`` with [T, N] arrays (NaN for
        instruments without a book); ``age`` holds, for the state fields, ns since the last book
        event. Parameters are the defaults of :class:`OrderbookParams`.
    """
    if args and isinstance(args[0], np.ndarray):
        return _panel_form(*args, **kwargs)
    return _instrument_fields(*args, **kwargs)


def _instrument_fields(
    book_table: "pa.Table | None",
    trades_table: "pa.Table | None",
    quotes_table: "pa.Table | None",
    clock: np.ndarray,
    params: OrderbookParams | None = None,
) -> dict[str, np.ndarray]:
    params = params or OrderbookParams()
    if book_table is None:
        raise FeatureError("order-book features need an L2 book table (kind 'book'); got none")
    for name, t in (("book", book_table), ("trades", trades_table), ("quotes", quotes_table)):
        if t is not None and t.num_rows and "instrument" in t.column_names:
            insts = set(t["instrument"].unique().to_pylist())
            if len(insts) > 1:
                raise FeatureError(f"order-book features: {name} table holds several instruments {sorted(insts)}; pass one")
    ev = _book_events_from_table(book_table)
    fields, _ = _run_replay(ev, _trade_arrays(trades_table), clock, params)
    return fields


def _panel_form(
    clock: np.ndarray, data: "DataConfig", tables: Mapping[str, "pa.Table"], params: OrderbookParams | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    params = params or OrderbookParams()
    symbols = list(data.symbols)
    per: dict[str, dict[str, "pa.Table"]] = {}
    for src in data.sources:
        if src.kind not in ("book", "trades", "quotes") or src.name not in tables:
            continue
        table = tables[src.name]
        inst = src.instrument
        if inst is None:
            found = set(table["instrument"].unique().to_pylist()) if table.num_rows else set()
            if len(found) != 1:
                raise FeatureError(f"source {src.name!r}: set 'instrument' (its rows name {sorted(found)})")
            inst = found.pop()
        slot = per.setdefault(inst, {})
        if src.kind in slot:
            raise FeatureError(f"instrument {inst!r} has two {src.kind} sources; order-book features take one of each")
        slot[src.kind] = table
    T, N = len(clock), len(symbols)
    names = params.field_names()
    fields = {n: np.full((T, N), np.nan) for n in names}
    age = {n: np.full((T, N), np.nan) for n in params.state_names()}
    for inst, slot in per.items():
        if inst not in symbols:
            raise FeatureError(f"order-book source names instrument {inst!r}, which is not in data.instruments")
        if "book" not in slot:
            continue  # trades/quotes alone give no book features; reported by the panel as aligned
        j = symbols.index(inst)
        out = _instrument_fields(slot["book"], slot.get("trades"), slot.get("quotes"), clock, params)
        for n in names:
            fields[n][:, j] = out[n]
        book_age_ns = out["ob.book_age_s"] * NS_PER_S
        for n in age:
            age[n][:, j] = book_age_ns
    return fields, age


# =========================================================================== registered features
class _Empty(StrictModel):
    pass


class _ImbalanceParams(StrictModel):
    level: int | None = Field(default=1, ge=1, description="cumulative depth in levels (or give bps)")
    bps: float | None = Field(default=None, gt=0, description="band around the mid in bps (instead of level)")

    @model_validator(mode="after")
    def _one(self) -> "_ImbalanceParams":
        if (self.level is None) == (self.bps is None):
            raise ValueError("give exactly one of level or bps")
        return self


class _BandParams(StrictModel):
    bps: float = Field(default=5.0, gt=0)


class _LevelParams(StrictModel):
    level: int = Field(default=10, ge=2)


class _HorizonParams(StrictModel):
    horizon: str = "1m"

    @field_validator("horizon")
    @classmethod
    def _h(cls, v: str) -> str:
        parse_duration(v)
        return v


class _ObField(ExprFeature):
    """A model-facing order-book feature: the panel field ``ob.<...>`` of each instrument.

    The value itself is computed by the order-book executions above when the panel is
    assembled (state as of t, flows over the interval); this declaration selects it.
    """

    family = "orderbook"
    version = 1
    scope = "instrument"
    Params = _Empty

    def field_name(self) -> str:
        return f"ob.{self.name[3:]}"

    def stems(self) -> tuple[str, ...]:
        return (self.field_name().replace(".", "_", 1),)

    def inputs(self) -> tuple[Input, ...]:
        return (Input("field", self.field_name()),)

    def warmup(self) -> int:
        return 0

    def compute(self, ops: Any, x: Any) -> Any:
        return x.field(self.field_name())


def _simple(name: str, doc: str) -> type[_ObField]:
    cls = type(name.title().replace("_", ""), (_ObField,), {"name": name, "description": doc, "__doc__": doc})
    cls.__qualname__ = cls.__name__
    cls.__module__ = __name__
    return register(cls)


ObMid = _simple("ob_mid", "Mid price (best bid + best ask) / 2.")
ObSpreadBps = _simple("ob_spread_bps", "Bid-ask spread in bps of the mid.")
ObMicropriceDevBps = _simple("ob_microprice_dev_bps", "Microprice minus mid, bps of the mid.")
ObOfi = _simple("ob_ofi", "Order-flow imbalance (Cont, Kukanov & Stoikov 2014) over the decision interval.")
ObTradeFlow = _simple("ob_trade_flow", "Signed aggressor volume over the decision interval.")
ObTradeVolume = _simple("ob_trade_volume", "Traded volume over the decision interval.")
ObTradeImbalance = _simple("ob_trade_imbalance", "Signed / total traded volume over the decision interval.")
ObBookAge = _simple("ob_book_age_s", "Seconds since the last order-book event (staleness).")


@register
class ObImbalance(_ObField):
    """Depth imbalance (bid - ask) / (bid + ask) over the ``level`` best levels or within ``bps``."""

    name = "ob_imbalance"
    Params = _ImbalanceParams

    def field_name(self) -> str:
        p = self.params
        return f"ob.imbalance_l{p.level}" if p.level is not None else f"ob.imbalance_{_bps(p.bps)}bps"


@register
class ObDepth(_ObField):
    """Bid + ask size within ``bps`` of the mid."""

    name = "ob_depth"
    Params = _BandParams

    def field_name(self) -> str:
        return f"ob.depth_{_bps(self.params.bps)}bps"


@register
class ObSlope(_ObField):
    """Book slope to ``level`` (log cumulative size per bp)."""

    name = "ob_slope"
    Params = _LevelParams

    def field_name(self) -> str:
        return f"ob.slope_l{self.params.level}"


@register
class ObRealisedVol(_ObField):
    """Realised volatility of the mid over ``horizon`` (event time)."""

    name = "ob_rv"
    Params = _HorizonParams

    def field_name(self) -> str:
        return f"ob.rv_{format_duration(parse_duration(self.params.horizon))}"


def stream_capture(
    events: Sequence[Any], clock: np.ndarray, params: OrderbookParams | None = None
) -> dict[str, np.ndarray]:
    """Run the streaming execution over arrival-ordered events and sample it on ``clock`` exactly
    as a live runner would (snapshot at t, then reset). For parity tests and replays of small
    captures; ``events`` are :mod:`dea.book.events` objects (book tickers are ignored)."""
    from dea.book.events import BookTicker, DepthDiff

    stream = OrderbookFeatureStream(params)
    names = stream.params.field_names()
    out = {n: np.full(len(clock), np.nan) for n in names}
    i = 0
    n_ev = len(events)
    for k, t in enumerate(np.asarray(clock, dtype=np.int64).tolist()):
        while i < n_ev and events[i].available_at <= t:
            ev = events[i]
            if isinstance(ev, Trade):
                stream.on_trade(ev)
            elif isinstance(ev, (DepthSnapshot, DepthDiff)):
                stream.on_book(ev)
            elif not isinstance(ev, BookTicker):
                raise FeatureError(f"stream_capture: unexpected event {type(ev).__name__}")
            i += 1
        row = stream.snapshot_features(t)
        for n in names:
            out[n][k] = row[n]
        stream.reset_interval()
    return out
