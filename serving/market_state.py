"""The streaming panel: the decision-time row the batch panel would hold, built event by event.

Why: a live model must see exactly the inputs it was trained on. :func:`dea.data.panel.assemble_panel`
aligns whole tables onto the decision clock; this class applies the same rules to events as they
arrive (in ``available_at`` order) and answers, at each decision time t, the row
``(fields [N] per name, series, age)`` that the batch panel has at t. A test holds the two equal
on real data. The rules (see :mod:`dea.data.panel`):

- bars: bucketed to the first clock time at or after their ``available_at``; per bucket open of
  the earliest ``ts_event``, close of the latest, high max, low min, volume sum (NaN propagates);
  the latest bucket is shown, but not past its own interval (age >= max(native step, clock step))
  unless ``max_staleness`` allows it;
- mark / exogenous / funding rate: the finite value with the latest ``ts_event`` among those
  already available; NaN once older than the source's staleness limit;
- ``funding_settled``: the rates whose settlement instant falls in (t - step, t] (accounting); a
  settlement that becomes known only after its decision (a live venue announces it after the
  instant) is settled at the next decision, never dropped;
- ``price``: ``close`` (or ``mark_price``).

Per event O(1); memory independent of the stream's length. numpy + stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dea.data.config import DataConfig, SourceConfig
from dea.errors import DataError
from dea.timeutil import parse_duration, parse_timestamp

BAR_FIELDS = ("open", "high", "low", "close", "volume")
MARK_FIELDS = ("mark_price", "index_price")
RESERVED = frozenset(BAR_FIELDS + MARK_FIELDS + ("price", "funding_rate", "funding_settled"))
NAN = math.nan


def staleness_limit(src: SourceConfig, native: int | None, step: int) -> int:
    """Same as the batch panel: ``max_staleness``, else ``max_gap_steps`` x max(native, step)."""
    if src.max_staleness is not None:
        return parse_duration(src.max_staleness)
    return int(src.max_gap_steps * max(native or step, step))


def median_step(ts: np.ndarray) -> int | None:
    """Median positive spacing of sorted stamps (how the batch panel infers a native step)."""
    if len(ts) < 2:
        return None
    d = np.diff(np.sort(np.asarray(ts, dtype=np.int64)))
    d = d[d > 0]
    return int(np.median(d)) if len(d) else None


class _Asof:
    """Latest-``ts_event`` finite value among the rows seen so far."""

    __slots__ = ("ts", "av", "value", "limit")

    def __init__(self, limit: int) -> None:
        self.ts = -(2**62)
        self.av = 0
        self.value = NAN
        self.limit = limit

    def update(self, ts: int, av: int, value: float) -> None:
        if value == value and ts >= self.ts:  # ties: the later arrival wins (as the batch join)
            self.ts, self.av, self.value = ts, av, value

    def at(self, t: int) -> tuple[float, float]:
        if self.value != self.value:
            return NAN, NAN
        age = float(t - self.av)
        return (self.value if age <= self.limit else NAN), age


class _Bars:
    """The latest bar bucket of one instrument."""

    __slots__ = ("bucket", "o", "h", "l", "c", "_vols", "_v", "ts_open", "ts_close", "av_close", "carry_strict", "limit")

    def __init__(self, limit: int, carry_strict: bool) -> None:
        self.bucket: int | None = None
        self.o = self.h = self.l = self.c = NAN
        self._vols: list[tuple[int, float]] = []
        self._v: float | None = None
        self.ts_open = self.ts_close = 0
        self.av_close = 0
        self.limit = limit
        self.carry_strict = carry_strict  # True: not past its own interval (age >= limit is stale)

    def update(self, bucket: int, ts: int, av: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        if self.bucket is None or bucket > self.bucket:
            self.bucket = bucket
            self.o, self.h, self.l, self.c = o, h, l, c
            self._vols = [(ts, v)]
            self._v = None
            self.ts_open = self.ts_close = ts
            self.av_close = av
            return
        if ts < self.ts_open:
            self.o, self.ts_open = o, ts
        if ts >= self.ts_close:
            self.c, self.ts_close, self.av_close = c, ts, av
        self.h = NAN if (h != h or self.h != self.h) else max(self.h, h)
        self.l = NAN if (l != l or self.l != self.l) else min(self.l, l)
        self._vols.append((ts, v))
        self._v = None

    @property
    def v(self) -> float:
        """Bucket volume in ``ts_event`` order through the same ``np.add.reduceat`` the batch panel
        uses (its summation order differs from both a Python loop and ``np.add.reduce``), so the
        two agree to the last bit."""
        if self._v is None:
            vols = self._vols
            if len(vols) == 1:
                self._v = vols[0][1]
            else:
                arr = np.array([x for _, x in sorted(vols, key=lambda x: x[0])], dtype=np.float64)
                self._v = float(np.add.reduceat(arr, [0])[0])
        return self._v


def _slot(store: dict, name: str, n: int, fill: float) -> np.ndarray:
    """``store[name]``, created as a filled [n] array on first use (``setdefault`` would build
    a throw-away array on every row)."""
    arr = store.get(name)
    if arr is None:
        arr = store[name] = np.full(n, fill)
    return arr


@dataclass
class PanelRow:
    """One decision-time row (arrays are reused between rows: copy what you keep)."""

    t: int
    fields: dict[str, np.ndarray]
    series: dict[str, float]
    age: dict[str, np.ndarray | float] = field(default_factory=dict)


class StreamingPanel:
    """Event-by-event version of :func:`dea.data.panel.assemble_panel` for one data config.

    ``native_steps``: per source name (and optionally ``"name|instrument"`` /
    ``"name|series|entity"``), the native sampling step in ns when the config does not give
    ``step`` (a replay computes it from its table like the batch panel; a live feed should
    configure ``step``).
    """

    def __init__(self, data: DataConfig, *, native_steps: Mapping[str, int | None] | None = None) -> None:
        self.data = data
        self.step = parse_duration(data.clock.step)
        self.origin = parse_timestamp(data.clock.start) % self.step if data.clock.start else 0
        self.instruments = tuple(data.symbols)
        self.n = len(self.instruments)
        self._native = dict(native_steps or {})
        self.sources = list(data.sources)
        self._bars: dict[int, _Bars] = {}
        self._bar_owner: dict[int, str] = {}
        self._mark: dict[tuple[str, int], _Asof] = {}
        self._exog_slots: list[tuple[_Asof, str, tuple[int, ...]]] = []  # (state, name, targets; () = global)
        self._exog_index: dict[tuple[int, str, str], int] = {}
        self._funding_rate: dict[int, _Asof] = {}
        self._settlements: dict[int, list[tuple[int, float]]] = {}
        self._settle_from: int | None = None  # settlements at or before this were before the first decision
        self._has_bars = any(s.kind == "bars" for s in self.sources)
        self._has_mark = any(s.kind == "mark" for s in self.sources)
        self.price_field = "close" if data.price_field == "close" else "mark_price"
        self._funding_kind = []
        for j, inst in enumerate(data.instruments):
            if inst.kind != "perpetual":
                self._funding_kind.append("zero")
            elif not inst.has_funding:
                self._funding_kind.append("none")
            else:
                self._funding_kind.append("source")
        self._fields: dict[str, np.ndarray] = {}
        self._ages: dict[str, np.ndarray | float] = {}
        self._series: dict[str, float] = {}
        self._exog_field_names: list[str] = []
        self._exog_series_names: list[str] = []

    # -- resolution (done once per source / series by the feed) -------------------------------------
    def native(self, src: SourceConfig, *keys: str) -> int | None:
        if src.step is not None:
            return parse_duration(src.step)
        for k in ("|".join((src.name, *keys)), src.name):
            if k in self._native:
                return self._native[k]
        return None

    def bucket_of(self, available_at: int) -> int:
        """First clock time at or after ``available_at``."""
        s = self.step
        return -((-(available_at - self.origin)) // s) * s + self.origin

    def bar_instrument(self, source: int, instrument: int) -> None:
        """Declare that ``source`` carries bars for ``instrument`` (one bar source per instrument)."""
        src = self.sources[source]
        if instrument in self._bar_owner and self._bar_owner[instrument] != src.name:
            raise DataError(
                f"instrument {self.instruments[instrument]!r} has bars from two sources: "
                f"{self._bar_owner[instrument]!r} and {src.name!r}"
            )
        self._bar_owner[instrument] = src.name
        if instrument not in self._bars:
            native = self.native(src, self.instruments[instrument])
            if src.max_staleness is not None:
                self._bars[instrument] = _Bars(parse_duration(src.max_staleness), carry_strict=False)
            else:
                self._bars[instrument] = _Bars(max(native or self.step, self.step), carry_strict=True)

    def mark_instrument(self, source: int, instrument: int) -> None:
        src = self.sources[source]
        limit = staleness_limit(src, self.native(src, self.instruments[instrument]), self.step)
        for f in MARK_FIELDS:
            self._mark.setdefault((f, instrument), _Asof(limit))

    def funding_instrument(self, source: int, instrument: int, interval_ns: int | None) -> None:
        src = self.sources[source]
        inst = self.data.instruments[instrument]
        interval = inst.funding_interval_ns or interval_ns or self.native(src, inst.symbol)
        if instrument not in self._funding_rate:
            self._funding_rate[instrument] = _Asof(staleness_limit(src, interval, self.step))
            self._settlements[instrument] = []

    def exog_slot(self, source: int, series: str, entity: str) -> int | None:
        """Slot id for exogenous ``series`` of ``entity`` from ``source`` (None: matches no instrument)."""
        key = (source, series, entity)
        if key in self._exog_index:
            return self._exog_index[key]
        src = self.sources[source]
        if series in RESERVED:
            raise DataError(f"source {src.name!r}: exogenous series {series!r} clashes with a panel field name")
        if entity == "":
            targets: tuple[int, ...] = ()
            if series in self._exog_field_names:
                raise DataError(f"series {series!r} is both global and per-asset (source {src.name!r})")
            self._exog_series_names.append(series)
        else:
            low = entity.strip().lower()
            hits = tuple(j for j, i in enumerate(self.data.instruments) if i.symbol.lower() == low)
            if not hits:
                hits = tuple(j for j, i in enumerate(self.data.instruments) if i.base and i.base.lower() == low)
            if not hits:
                self._exog_index[key] = -1
                return None
            if series in self._exog_series_names:
                raise DataError(f"series {series!r} is both global and per-asset (source {src.name!r})")
            targets = hits
            if series not in self._exog_field_names:
                self._exog_field_names.append(series)
        limit = staleness_limit(src, self.native(src, series, entity), self.step)
        self._exog_slots.append((_Asof(limit), series, targets))
        self._exog_index[key] = len(self._exog_slots) - 1
        return self._exog_index[key]

    # -- events ------------------------------------------------------------------------------------
    def on_bar(self, ev) -> None:  # noqa: ANN001 - BarEvent
        self._bars[ev.instrument].update(
            self.bucket_of(ev.available_at), ev.ts_event, ev.available_at, ev.open, ev.high, ev.low, ev.close, ev.volume
        )

    def on_mark(self, ev) -> None:  # noqa: ANN001 - MarkEvent
        self._mark[("mark_price", ev.instrument)].update(ev.ts_event, ev.available_at, ev.mark_price)
        self._mark[("index_price", ev.instrument)].update(ev.ts_event, ev.available_at, ev.index_price)

    def on_exog(self, ev) -> None:  # noqa: ANN001 - ExogEvent
        self._exog_slots[ev.slot][0].update(ev.ts_event, ev.available_at, ev.value)

    def on_funding(self, ev) -> None:  # noqa: ANN001 - FundingEvent
        if ev.instrument not in self._funding_rate:  # a live feed: registered by its first event
            self.funding_instrument(ev.source, ev.instrument, None)
        self._funding_rate[ev.instrument].update(ev.ts_event, ev.available_at, ev.rate)
        self._settlements[ev.instrument].append((ev.ts_event, ev.rate))

    # -- the row -----------------------------------------------------------------------------------
    @property
    def has_mark(self) -> bool:
        return self._has_mark

    def row(self, t: int, *, require_price: bool = True) -> PanelRow:
        """The panel row at decision time ``t`` (everything with ``available_at <= t`` applied).

        ``require_price=False``: no error when no source provides the price field (an order-book
        configuration whose price is set from the book by the caller)."""
        n = self.n
        fields, ages = self._fields, self._ages
        if self._has_bars:
            arrs = {f: _slot(fields, f, n, NAN) for f in BAR_FIELDS}
            bar_age = _slot(ages, "close", n, NAN)
            for j in range(n):
                b = self._bars.get(j)
                if b is None or b.bucket is None:
                    for f in BAR_FIELDS:
                        arrs[f][j] = NAN
                    bar_age[j] = NAN
                    continue
                a = t - b.av_close
                bar_age[j] = a
                stale = a >= b.limit if b.carry_strict else a > b.limit
                if stale:
                    for f in BAR_FIELDS:
                        arrs[f][j] = NAN
                else:
                    arrs["open"][j], arrs["high"][j], arrs["low"][j] = b.o, b.h, b.l
                    arrs["close"][j], arrs["volume"][j] = b.c, b.v
            for f in BAR_FIELDS:
                ages[f] = bar_age
        if self._has_mark:
            for f in MARK_FIELDS:
                arr = _slot(fields, f, n, NAN)
                age = _slot(ages, f, n, NAN)
                for j in range(n):
                    st = self._mark.get((f, j))
                    arr[j], age[j] = st.at(t) if st is not None else (NAN, NAN)
        for name in self._exog_field_names:
            _slot(fields, name, n, NAN).fill(NAN)
            _slot(ages, name, n, NAN).fill(NAN)
        series = self._series
        for st, name, targets in self._exog_slots:
            v, a = st.at(t)
            if targets:
                for j in targets:
                    fields[name][j] = v
                    ages[name][j] = a
            else:
                series[name] = v
                ages[name] = a
        rate = _slot(fields, "funding_rate", n, NAN)
        settled = _slot(fields, "funding_settled", n, 0.0)
        rate_age = _slot(ages, "funding_rate", n, NAN)
        lo = t - self.step
        if self._settle_from is None:
            self._settle_from = lo
        for j, kind in enumerate(self._funding_kind):
            if kind == "zero":
                rate[j], settled[j], rate_age[j] = 0.0, 0.0, NAN
            elif kind == "none":
                rate[j], settled[j], rate_age[j] = NAN, 0.0, NAN
            else:
                st = self._funding_rate.get(j)
                if st is None:
                    rate[j], rate_age[j], settled[j] = NAN, NAN, 0.0
                    continue
                rate[j], rate_age[j] = st.at(t)
                settled[j] = self._settled(j, lo, t)
        if self.price_field in fields:
            fields["price"] = fields[self.price_field]
            ages["price"] = ages[self.price_field]
        elif require_price:
            raise DataError(f"data.price_field is {self.data.price_field!r} but no source provides {self.price_field!r}")
        return PanelRow(t, fields, series, ages)

    def _settled(self, j: int, lo: int, hi: int) -> float:
        """Sum of the rates settled at or before ``hi`` not settled yet (normally those in
        (lo, hi]; one that arrived after its own decision is settled now). Settlements before the
        first decision's window are dropped; settled ones are removed."""
        items = self._settlements[j]
        if not items:
            return 0.0
        start = self._settle_from if self._settle_from is not None else lo
        s = 0.0
        rest = []
        for ts, r in items:
            if ts > hi:
                rest.append((ts, r))
            elif ts > start:
                if r != r:
                    s = NAN
                s += r
        items[:] = rest
        return s
