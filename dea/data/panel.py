"""The decision-clock panel: every source as-of joined onto one clock using ``available_at``.

A value is visible at decision time t only if ``available_at <= t`` (DESIGN.md). The panel is
what the feature engine, the backtester and training consume; serving feeds the streaming
feature set the same rows, one at a time (:meth:`Panel.row`).

Alignment rules (all vectorised numpy; pyarrow is only touched through the loaded tables):

- **Clock**: ``data.clock.step`` from ``start`` to ``end`` inclusive. Without ``start``/``end``
  the clock spans the price sources' availability, on the epoch-aligned grid of the step.
- **Bars** are bucketed to the first clock time at or after their ``available_at`` and
  aggregated per bucket (open first, high max, low min, close last, volume sum; a NaN anywhere
  in a bucket stays NaN), so a coarser clock gets proper OHLCV bars and an equal clock gets the
  bar that closed at t. Without ``max_staleness`` a bar is not carried into a later interval
  (a missing bar is NaN, not a repeated bar); with it, it is carried while age <= the limit.
  ``price`` is ``close`` (or ``mark_price`` when ``data.price_field: mark``).
- **Exogenous** series: entity ``""`` -> ``panel.series[name]`` [T]; an asset's series ->
  ``panel.fields[name]`` [T, N] for every instrument whose symbol or base equals the entity
  (case-insensitive). NaN observations are not observations (a FRED holiday keeps the previous
  value). Default forward-fill limit: ``max_gap_steps`` x max(source step, clock step).
- **Mark/index**: ``mark_price`` / ``index_price`` fields, as-of like exogenous values.
- **Open interest**: ``open_interest`` / ``open_interest_value`` fields, as-of the same way.
- **Funding**: ``funding_rate`` = last settled rate known at t; ``funding_settled`` = sum of
  rates whose settlement instant falls in (t - step, t] (accounting for the backtest: event
  time, not publication time; no feature may read it). Spot/futures: 0 (no funding exists).
  A perpetual declared ``funding: none``: rate NaN, settled 0. A perpetual with a funding
  source must have a settlement at every instant of its interval grid on the clock: otherwise :class:`~dea.errors.MissingFundingError`, never a
  silent zero -- unless the instrument's ``funding_missing`` policy says how to fill the missing
  settlements (:mod:`dea.data.coverage`; what it filled is in ``report["coverage"]``).
- **Coverage**: ``report["coverage"]`` = ``{"funding": {symbol: ...}, "exogenous": {series: ...}}``;
  read it with :func:`dea.data.coverage.coverage_report`.
- ``age[name]``: t - ``available_at`` of the value shown (ns; NaN where nothing was ever known;
  it stays finite where the value went stale, so risk checks can see how old the feed is).
- ``fingerprint``: SHA-256 of the sources' content fingerprints, the clock, the instruments and
  the alignment settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.errors import DataError, MissingFundingError
from dea.timeutil import format_duration, iso, parse_duration, parse_timestamp

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from dea.guards import GuardsConfig

    from dea.config.experiment import ExperimentConfig
    from dea.data.config import DataConfig, SourceConfig
    from dea.instruments import Instrument

PANEL_VERSION = 1
BAR_FIELDS = ("open", "high", "low", "close", "volume")
MARK_FIELDS = ("mark_price", "index_price")
OI_FIELDS = ("open_interest", "open_interest_value")
RESERVED_FIELDS = frozenset(BAR_FIELDS + MARK_FIELDS + OI_FIELDS + ("price", "funding_rate", "funding_settled"))
# Kinds aligned by the order-book code (``ob.<name>`` fields), not by the generic as-of join.
EVENT_KINDS = frozenset({"book", "quotes", "trades"})


@dataclass(frozen=True)
class Panel:
    """Typed, aligned arrays that the feature engine, the backtester and training consume.

    ``fields`` are per-instrument float64 arrays of shape [T, N] (``open``, ``high``, ``low``,
    ``close``, ``volume`` of the bar that closed at or before t; ``price`` the execution price;
    ``funding_rate`` the latest known rate; ``funding_settled`` the sum of rates settled in
    (t-1, t]; per-asset exogenous series under ``"<series>"``). ``series`` are global float64
    arrays of shape [T]. ``age`` gives, per field/series name, how old (ns) the as-of value
    is at t (same shape as the values; NaN where nothing is known).
    ``report`` records what alignment did per source (rows used, stale rows, dropped entities).
    """

    clock: np.ndarray
    step_ns: int
    instruments: tuple[str, ...]
    fields: Mapping[str, np.ndarray]
    series: Mapping[str, np.ndarray] = field(default_factory=dict)
    age: Mapping[str, np.ndarray] = field(default_factory=dict)
    fingerprint: str = ""
    report: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clock)

    def row(self, i: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Row ``i`` as the streaming feature set consumes it: fields name -> [N], series name -> float."""
        return (
            {k: v[i] for k, v in self.fields.items()},
            {k: float(v[i]) for k, v in self.series.items()},
        )

    def head(self, n: int) -> "Panel":
        """The first ``n`` rows (what was knowable at ``clock[n-1]``); fingerprint marks the cut."""
        cut = lambda m: {k: v[:n] for k, v in m.items()}  # noqa: E731
        return Panel(
            clock=self.clock[:n],
            step_ns=self.step_ns,
            instruments=self.instruments,
            fields=cut(self.fields),
            series=cut(self.series),
            age=cut(self.age),
            fingerprint=hashlib.sha256(f"{self.fingerprint}|head{n}".encode()).hexdigest(),
            report=self.report,
        )


# ----------------------------------------------------------------------------------- entry points
def build_panel(cfg: "ExperimentConfig") -> Panel:
    """Load every source of ``cfg.data`` (``dea.data.sources.load_source``) and align it."""
    from dea.data.sources import load_source

    tables: dict[str, Any] = {}
    fingerprints: dict[str, str] = {}
    for src in cfg.data.sources:
        res = load_source(src, cfg.base_dir)
        tables[src.name] = res.table
        fingerprints[src.name] = res.fingerprint
    return assemble_panel(cfg.data, tables, fingerprints, guards=cfg.guards)


def assemble_panel(
    data: "DataConfig", tables: Mapping[str, "pa.Table"], fingerprints: Mapping[str, str] | None = None,
    *, guards: "GuardsConfig | None" = None,
) -> Panel:
    """Align already-loaded canonical tables (one per ``data.sources`` name) onto the clock.

    Split from :func:`build_panel` so tests can perturb tables and rebuild (point-in-time test).
    Bar and mark rows go through the market-data guards first (:mod:`dea.guards.batch`, the
    live loop's rules; ``guards`` None = the default settings): a quarantined row is not used, so
    the age of the price counts from its last good value.
    """
    from dea.guards import GuardsConfig
    from dea.guards.batch import quarantine_masks

    missing = [s.name for s in data.sources if s.name not in tables]
    if missing:
        raise DataError(f"panel: no table for sources {missing}")
    fingerprints = dict(fingerprints or {n: _table_hash(t) for n, t in tables.items()})
    step = parse_duration(data.clock.step)
    if step <= 0:
        raise DataError(f"data.clock.step must be positive, got {data.clock.step!r}")
    instruments = tuple(data.symbols)
    clock = _make_clock(data, tables, step)
    T, N = len(clock), len(instruments)
    fields: dict[str, np.ndarray] = {}
    series: dict[str, np.ndarray] = {}
    age: dict[str, np.ndarray] = {}
    report: dict[str, Any] = {"clock": {"start": iso(clock[0]), "end": iso(clock[-1]), "step": data.clock.step, "rows": T}}

    keep, guard_counts = quarantine_masks(data, tables, guards or GuardsConfig(), _rows_for)
    if guard_counts:
        report["guards"] = guard_counts
    _align_bars(data, tables, clock, step, fields, age, report, keep)
    _align_asof_kind("mark", MARK_FIELDS, data, tables, clock, step, fields, age, report, keep)
    _align_asof_kind("open_interest", OI_FIELDS, data, tables, clock, step, fields, age, report)
    _align_exogenous(data, tables, clock, step, fields, series, age, report)
    _align_funding(data, tables, clock, step, fields, age, report)
    _align_event_sources(data, tables, clock, fields, age, report)
    for src in data.sources:  # said, not silently dropped: the panel holds linear instruments only
        if src.kind == "option_chain":
            report.setdefault(src.name, {})["not_joined"] = (
                "option chain snapshots are stored by dea data ingest and read by the options overlay "
                "(dea.backtest.options_overlay.SnapshotMarks); the decision panel holds linear instruments only")

    price_src = {"close": "close", "mark": "mark_price", "mid": "ob.mid"}[data.price_field]
    if price_src not in fields:
        raise DataError(f"data.price_field is {data.price_field!r} but no source provides {price_src!r}")
    fields["price"] = fields[price_src]
    age["price"] = age[price_src]
    no_price = [instruments[j] for j in range(N) if not np.isfinite(fields["price"][:, j]).any()]
    if no_price:
        raise DataError(
            f"instruments {no_price} have no {price_src!r} value on the clock {iso(clock[0])}..{iso(clock[-1])}: "
            "add a price source for them or move the clock"
        )
    fp = _fingerprint(data, fingerprints, clock, step)
    return Panel(
        clock=clock,
        step_ns=step,
        instruments=instruments,
        fields=fields,
        series=series,
        age=age,
        fingerprint=fp,
        report=report,
    )


# ----------------------------------------------------------------------------------- clock
def _make_clock(data: "DataConfig", tables: Mapping[str, "pa.Table"], step: int) -> np.ndarray:
    priced = [s for s in data.sources if s.kind in ("bars", "mark")] or list(data.sources)
    avail = [tables[s.name]["available_at"].to_numpy() for s in priced if tables[s.name].num_rows]
    if data.clock.start is not None:
        start = parse_timestamp(data.clock.start)
    else:
        if not avail:
            raise DataError("panel: no rows in any price source, and data.clock.start is not set")
        first = min(int(a.min()) for a in avail)
        start = -(-first // step) * step
    if data.clock.end is not None:
        end = parse_timestamp(data.clock.end)
    else:
        if not avail:
            raise DataError("panel: no rows in any price source, and data.clock.end is not set")
        end = max(int(a.max()) for a in avail)
    if end < start:
        raise DataError(f"panel: clock end {iso(end)} is before start {iso(start)}")
    n = (end - start) // step + 1
    return start + np.arange(n, dtype=np.int64) * step


# ----------------------------------------------------------------------------------- as-of core
def asof_index(clock: np.ndarray, ts_event: np.ndarray, available_at: np.ndarray) -> np.ndarray:
    """For each clock time t, the row with the latest ``ts_event`` among rows with
    ``available_at <= t`` (-1 where none). A late-published old row never hides a newer one."""
    if len(ts_event) == 0:
        return np.full(len(clock), -1, dtype=np.int64)
    ev_order = np.lexsort((available_at, ts_event))
    rank = np.empty(len(ts_event), dtype=np.int64)
    rank[ev_order] = np.arange(len(ts_event))
    av_order = np.argsort(available_at, kind="stable")
    best = np.maximum.accumulate(rank[av_order])
    p = np.searchsorted(available_at[av_order], clock, side="right") - 1
    out = np.full(len(clock), -1, dtype=np.int64)
    ok = p >= 0
    out[ok] = ev_order[best[p[ok]]]
    return out


def _asof_values(
    clock: np.ndarray, ts: np.ndarray, avail: np.ndarray, values: np.ndarray, limit_ns: int, strict: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """As-of join of finite ``values`` -> (values [T], age [T], number of stale rows)."""
    fin = np.isfinite(values)
    ts, avail, values = ts[fin], avail[fin], values[fin]
    idx = asof_index(clock, ts, avail)
    have = idx >= 0
    out = np.full(len(clock), np.nan)
    age = np.full(len(clock), np.nan)
    out[have] = values[idx[have]]
    age[have] = (clock[have] - avail[idx[have]]).astype(np.float64)
    stale = have & ((age >= limit_ns) if strict else (age > limit_ns))
    out[stale] = np.nan
    return out, age, int(stale.sum())


def _median_step(ts: np.ndarray) -> int | None:
    if len(ts) < 2:
        return None
    d = np.diff(np.sort(ts))
    d = d[d > 0]
    return int(np.median(d)) if len(d) else None


def _staleness(src: "SourceConfig", native: int | None, step: int) -> int:
    if src.max_staleness is not None:
        return parse_duration(src.max_staleness)
    base = max(native or step, step)
    return int(src.max_gap_steps * base)


def _native_step(src: "SourceConfig", ts: np.ndarray) -> int | None:
    return parse_duration(src.step) if src.step is not None else _median_step(ts)


# ----------------------------------------------------------------------------------- instruments
def _match_instruments(label: str, instruments: list["Instrument"], use_base: bool) -> list[int]:
    low = label.strip().lower()
    hits = [j for j, inst in enumerate(instruments) if inst.symbol.lower() == low]
    if hits or not use_base:
        return hits
    return [j for j, inst in enumerate(instruments) if inst.base and inst.base.lower() == low]


def _rows_for(
    src: "SourceConfig", table: "pa.Table", data: "DataConfig", report: dict[str, Any] | None = None
) -> dict[int, np.ndarray]:
    """Instrument index -> row indices of a per-instrument table (bars, mark, funding)."""
    labels = np.asarray(table["instrument"].to_numpy(zero_copy_only=False), dtype=object)
    uniq = list(dict.fromkeys(labels.tolist()))
    insts = list(data.instruments)
    out: dict[int, np.ndarray] = {}
    if src.instrument is not None:
        j = data.symbols.index(src.instrument)
        hit = [u for u in uniq if str(u).lower() == src.instrument.lower()]
        if hit:
            out[j] = np.nonzero(labels == hit[0])[0]
        elif len(uniq) == 1:
            out[j] = np.arange(len(labels))  # the loader named it differently; the source names it
        elif len(uniq) > 1:
            raise DataError(
                f"source {src.name!r} is for instrument {src.instrument!r} but its table holds {uniq[:10]} "
                "and none matches"
            )
        return out
    unmatched = []
    for u in uniq:
        hits = _match_instruments(str(u), insts, use_base=False)
        if not hits:
            unmatched.append(str(u))
        for j in hits:
            if j in out:
                raise DataError(f"source {src.name!r}: instrument {insts[j].symbol!r} matched by several labels")
            out[j] = np.nonzero(labels == u)[0]
    if unmatched and report is not None:
        report.setdefault(src.name, {})["unmatched_instruments"] = sorted(unmatched)[:20]
    return out


# ----------------------------------------------------------------------------------- bars
def _align_bars(data, tables, clock, step, fields, age, report, keep=None) -> None:
    T, N = len(clock), len(data.instruments)
    arrays = {f: np.full((T, N), np.nan) for f in BAR_FIELDS}
    bar_age = np.full((T, N), np.nan)
    owner: dict[int, str] = {}
    for src in data.sources:
        if src.kind != "bars":
            continue
        table = tables[src.name]
        rep = report.setdefault(src.name, {})
        rows_by_inst = _rows_for(src, table, data, report)
        ts_all = table["ts_event"].to_numpy()
        av_all = table["available_at"].to_numpy()
        cols = {f: table[f].to_numpy() for f in BAR_FIELDS}
        for j, rows in rows_by_inst.items():
            sym = data.instruments[j].symbol
            if j in owner:
                raise DataError(f"instrument {sym!r} has bars from two sources: {owner[j]!r} and {src.name!r}")
            owner[j] = src.name
            native = _native_step(src, ts_all[rows])
            good = keep.get((src.name, j)) if keep else None
            n_rows = len(rows)
            if good is not None:
                rows = rows[good]
            ts, av = ts_all[rows], av_all[rows]
            k = -(-(av - clock[0]) // step)  # first clock index with clock >= available_at
            order = np.lexsort((ts, k))
            k, av = k[order], av[order]
            starts = np.r_[0, np.nonzero(np.diff(k))[0] + 1] if len(k) else np.zeros(0, dtype=np.int64)
            ends = np.r_[starts[1:], len(k)] - 1 if len(k) else starts
            bk = k[starts] if len(k) else k
            agg = {}
            if len(k):
                vals = {f: cols[f][rows][order] for f in BAR_FIELDS}
                agg["open"] = vals["open"][starts]
                agg["close"] = vals["close"][ends]
                agg["high"] = np.maximum.reduceat(vals["high"], starts)
                agg["low"] = np.minimum.reduceat(vals["low"], starts)
                agg["volume"] = np.add.reduceat(vals["volume"], starts)
                b_av = av[ends]
            else:
                agg = {f: np.zeros(0) for f in BAR_FIELDS}
                b_av = np.zeros(0, dtype=np.int64)
            # as-of over buckets: clock index i sees the latest bucket with index <= i
            p = np.searchsorted(bk, np.arange(T), side="right") - 1
            have = p >= 0
            a = np.full(T, np.nan)
            a[have] = (clock[have] - b_av[p[have]]).astype(np.float64)
            if src.max_staleness is not None:
                stale = have & (a > parse_duration(src.max_staleness))
            else:  # a bar is not carried past its own interval
                stale = have & (a >= max(native or step, step))
            use = have & ~stale
            for f in BAR_FIELDS:
                col = np.full(T, np.nan)
                col[use] = agg[f][p[use]]
                arrays[f][:, j] = col
            bar_age[:, j] = a
            counts = np.diff(np.r_[starts, len(k)]) if len(k) else np.zeros(0, dtype=np.int64)
            in_clock = (bk >= 0) & (bk < T)
            expected = max(step // native, 1) if native else 1
            rep[sym] = {
                "rows": int(n_rows),
                "quarantined": int(n_rows - len(rows)),
                "native_step": format_duration(native) if native else None,
                "stale_rows": int(stale.sum()),
                "missing_rows": int((~use).sum()),
                "partial_buckets": int((in_clock & (counts < expected)).sum()),
            }
    if owner:
        for f in BAR_FIELDS:
            fields[f] = arrays[f]
            age[f] = bar_age


# ----------------------------------------------------------------------------------- mark / index
def _align_asof_kind(kind, names, data, tables, clock, step, fields, age, report, keep=None) -> None:
    """Per-instrument snapshot kinds (mark/index, open interest): each column as-of onto the clock;
    ``keep`` drops rows the market-data guards quarantined."""
    T, N = len(clock), len(data.instruments)
    out = {f: np.full((T, N), np.nan) for f in names}
    ages = {f: np.full((T, N), np.nan) for f in names}
    seen = False
    for src in data.sources:
        if src.kind != kind:
            continue
        seen = True
        table = tables[src.name]
        rep = report.setdefault(src.name, {})
        ts_all = table["ts_event"].to_numpy()
        av_all = table["available_at"].to_numpy()
        for j, rows in _rows_for(src, table, data, report).items():
            limit = _staleness(src, _native_step(src, ts_all[rows]), step)
            good = keep.get((src.name, j)) if keep else None
            if good is not None:
                rows = rows[good]
            ts, av = ts_all[rows], av_all[rows]
            stale_n = 0
            for f in names:
                v = table[f].to_numpy()[rows]
                if np.isfinite(out[f][:, j]).any() and np.isfinite(v).any():
                    raise DataError(f"instrument {data.instruments[j].symbol!r} gets {f!r} from two {kind} sources")
                if not np.isfinite(v).any():
                    continue
                vals, a, stale = _asof_values(clock, ts, av, v, limit)
                out[f][:, j], ages[f][:, j] = vals, a
                stale_n += stale
            rep[data.instruments[j].symbol] = {"rows": int(len(rows)), "stale_rows": stale_n}
    if seen:
        for f in names:
            if np.isfinite(out[f]).any():
                fields[f] = out[f]
                age[f] = ages[f]


# ----------------------------------------------------------------------------------- exogenous
def _align_exogenous(data, tables, clock, step, fields, series, age, report) -> None:
    from dea.data.loaders.daily import lookahead_series

    T, N = len(clock), len(data.instruments)
    insts = list(data.instruments)
    origin: dict[tuple[str, str], str] = {}
    cov = report.setdefault("coverage", {}).setdefault("exogenous", {})
    for src in data.sources:
        if src.kind != "exogenous":
            continue
        table = tables[src.name]
        lookahead = set(lookahead_series(src))
        rep = report.setdefault(src.name, {"series": {}, "unmatched_entities": []})
        if table.num_rows == 0:
            continue
        names = np.asarray(table["series"].to_numpy(zero_copy_only=False), dtype=object)
        ents = np.asarray(table["entity"].to_numpy(zero_copy_only=False), dtype=object)
        ts_all = table["ts_event"].to_numpy()
        av_all = table["available_at"].to_numpy()
        val_all = table["value"].to_numpy()
        key = np.char.add(np.char.add(names.astype(str), "\x1f"), ents.astype(str))
        uniq, inverse = np.unique(key, return_inverse=True)
        for u_i, u in enumerate(uniq):
            name, ent = str(u).split("\x1f", 1)
            rows = np.nonzero(inverse == u_i)[0]
            if name in RESERVED_FIELDS:
                raise DataError(f"source {src.name!r}: exogenous series {name!r} clashes with a panel field name")
            ts, av, v = ts_all[rows], av_all[rows], val_all[rows]
            limit = _staleness(src, _native_step(src, ts), step)
            vals, a, stale = _asof_values(clock, ts, av, v, limit)
            if ent == "":
                if name in fields:
                    raise DataError(f"series {name!r} is both global and per-asset (source {src.name!r})")
                if (name, "") in origin:
                    raise DataError(f"series {name!r} comes from two sources: {origin[(name, '')]!r} and {src.name!r}")
                origin[(name, "")] = src.name
                series[name], age[name] = vals, a
            else:
                targets = _match_instruments(ent, insts, use_base=True)
                if not targets:
                    rep["unmatched_entities"].append(ent)
                    continue
                if name in series:
                    raise DataError(f"series {name!r} is both global and per-asset (source {src.name!r})")
                if name not in fields:
                    fields[name] = np.full((T, N), np.nan)
                    age[name] = np.full((T, N), np.nan)
                for j in targets:
                    k = (name, insts[j].symbol)
                    if k in origin:
                        raise DataError(
                            f"series {name!r} for {insts[j].symbol!r} comes from two sources: {origin[k]!r} and {src.name!r}"
                        )
                    origin[k] = src.name
                    fields[name][:, j], age[name][:, j] = vals, a
            label = f"{name}@{ent}" if ent else name
            rep["series"][label] = {"rows": int(len(rows)), "stale_rows": stale}
            cov[label] = _series_coverage(label, src.name, clock, ts, av, v, vals)
            if name in lookahead:
                report.setdefault("lookahead", {})[label] = src.name
        rep["unmatched_entities"] = sorted(set(rep["unmatched_entities"]))


def _series_coverage(label: str, source: str, clock: np.ndarray, ts: np.ndarray, av: np.ndarray, v: np.ndarray, vals: np.ndarray) -> dict[str, Any]:
    """Clock rows without a value, and how many of them lie before the series starts / after it ends."""
    fin = np.isfinite(v)
    missing = ~np.isfinite(vals)
    first_av = int(av[fin].min()) if fin.any() else None
    last_av = int(av[fin].max()) if fin.any() else None
    before = int((missing & (clock < first_av)).sum()) if first_av is not None else int(missing.sum())
    after = int((missing & (clock > last_av)).sum()) if last_av is not None else 0
    return {
        "series": label,
        "source": source,
        "rows": int(len(clock)),
        "filled_rows": int(missing.sum()),
        "before_start": before,
        "after_end": after,
        "first": iso(int(ts[fin].min())) if fin.any() else None,
        "last": iso(int(ts[fin].max())) if fin.any() else None,
    }


# ----------------------------------------------------------------------------------- funding
def _align_funding(data, tables, clock, step, fields, age, report) -> None:
    from dea.data.coverage import impute_rates, missing_settlements

    T, N = len(clock), len(data.instruments)
    rate = np.full((T, N), np.nan)
    settled = np.zeros((T, N))
    rate_age = np.full((T, N), np.nan)
    kinds = {s.name: s for s in data.sources}
    real: dict[int, tuple[Any, np.ndarray, np.ndarray, np.ndarray, int]] = {}
    for j, inst in enumerate(data.instruments):
        if inst.kind != "perpetual":
            rate[:, j] = 0.0  # no funding exists: a true zero, not a missing value
            continue
        if not inst.has_funding:  # declared 'funding: none': rate unknown (NaN), nothing charged
            report.setdefault("coverage", {}).setdefault("funding", {})[inst.symbol] = {
                "instrument": inst.symbol, "source": "", "policy": "none", "settlements": 0, "imputed": 0,
                "uncharged_rows": T, "first_real": None, "last_real": None,
            }
            continue
        real[j] = _real_funding(inst, kinds[inst.funding], tables[inst.funding], data, j)
    coverage = report.setdefault("coverage", {}).setdefault("funding", {})
    for j, (src, ts, av, r, interval) in real.items():
        inst = data.instruments[j]
        policy = inst.funding_missing
        uncharged = 0
        imputed = np.zeros(0, dtype=np.int64)
        if policy == "error":
            _check_coverage(inst.symbol, src, ts, interval, clock, step)
        else:
            fin = np.isfinite(r)
            ts, av, r = ts[fin], av[fin], r[fin]
            if len(ts) == 0:
                raise MissingFundingError(f"instrument {inst.symbol!r}: funding source {src.name!r} has no finite rate")
            if policy == "from_first":
                after = clock >= ts[0]
                uncharged = int((~after).sum())
                if after.any():
                    _check_coverage(inst.symbol, src, ts, interval, clock[after], step)
            else:
                imputed = missing_settlements(ts, clock, step, interval)
                others = [(o[1][np.isfinite(o[3])], o[3][np.isfinite(o[3])], o[4]) for k, o in real.items() if k != j]
                values = impute_rates(inst.symbol, policy, imputed, others)
                ts = np.r_[ts, imputed]
                av = np.r_[av, imputed + parse_duration(src.publication_lag)]
                r = np.r_[r, values]
                order = np.lexsort((av, ts))
                ts, av, r = ts[order], av[order], r[order]
        # settled in (t - step, t] by settlement instant: row index ceil((ts - start) / step);
        # bincount adds each row's own settlements exactly and keeps a NaN rate NaN (unknown, not 0)
        row = -(-(ts - clock[0]) // step)
        inside = (row >= 0) & (row < T)
        settled[:, j] = np.bincount(row[inside], weights=r[inside], minlength=T)
        limit = _staleness(src, interval, step)
        vals, a, stale = _asof_values(clock, ts, av, r, limit)
        rate[:, j], rate_age[:, j] = vals, a
        report.setdefault(src.name, {})[inst.symbol] = {
            "settlements": int(len(ts)),
            "interval": format_duration(int(interval)),
            "stale_rows": stale,
        }
        on_clock = (ts > clock[0] - step) & (ts <= clock[-1])
        real_ts = np.setdiff1d(ts, imputed)
        coverage[inst.symbol] = {
            "instrument": inst.symbol,
            "source": src.name,
            "policy": policy if isinstance(policy, str) else f"rate: {policy.rate:g}",
            "settlements": int(on_clock.sum()) - int(len(imputed)),
            "imputed": int(len(imputed)),
            "uncharged_rows": uncharged,
            "first_real": iso(int(real_ts[0])) if len(real_ts) else None,
            "last_real": iso(int(real_ts[-1])) if len(real_ts) else None,
        }
    fields["funding_rate"] = rate
    fields["funding_settled"] = settled
    age["funding_rate"] = rate_age


def _real_funding(inst, src, table, data, j: int):
    """(source, ts, available_at, rate, interval) of the instrument's real settlements, sorted."""
    if src.kind != "funding":
        raise MissingFundingError(
            f"instrument {inst.symbol!r} takes funding from source {src.name!r}, which is a {src.kind!r} source"
        )
    rows = _funding_rows(src, table, data, j)
    if len(rows) == 0:
        raise MissingFundingError(
            f"instrument {inst.symbol!r}: funding source {src.name!r} has no rows for it "
            f"(instruments in the table: {sorted(set(table['instrument'].to_pylist()))[:10]})"
        )
    ts = table["ts_event"].to_numpy()[rows]
    av = table["available_at"].to_numpy()[rows]
    r = table["rate"].to_numpy()[rows]
    order = np.lexsort((av, ts))
    ts, av, r = ts[order], av[order], r[order]
    interval = inst.funding_interval_ns or _table_interval(table, rows) or _median_step(ts)
    if not interval:
        raise MissingFundingError(f"instrument {inst.symbol!r}: cannot tell the funding interval of {src.name!r}")
    return src, ts, av, r, int(interval)


def _funding_rows(src, table, data, j: int) -> np.ndarray:
    by_inst = _rows_for(src, table, data)
    if j in by_inst:
        return by_inst[j]
    labels = np.asarray(table["instrument"].to_numpy(zero_copy_only=False), dtype=object)
    uniq = list(dict.fromkeys(labels.tolist()))
    inst = data.instruments[j]
    if len(uniq) == 1:
        return np.arange(len(labels))  # instrument.funding names this source explicitly
    for u in uniq:
        if inst.base and str(u).lower() == inst.base.lower():
            return np.nonzero(labels == u)[0]
    return np.zeros(0, dtype=np.int64)


def _table_interval(table, rows) -> int | None:
    iv = table["interval_ns"].to_numpy()[rows]
    iv = iv[iv > 0]
    return int(np.median(iv)) if len(iv) else None


def _check_coverage(symbol: str, src, ts: np.ndarray, interval: int, clock: np.ndarray, step: int) -> None:
    first, last = int(ts[0]), int(ts[-1])
    lo_ok = clock - step >= first - interval
    hi_ok = clock < last + interval
    bad = ~(lo_ok & hi_ok)
    if bad.any():
        raise MissingFundingError(
            f"instrument {symbol!r}: funding source {src.name!r} covers settlements {iso(first)} .. {iso(last)} "
            f"but the clock runs {iso(int(clock[0]))} .. {iso(int(clock[-1]))} ({int(bad.sum())} rows outside); "
            "move data.clock.start/end inside the funding history, set the instrument's funding_missing "
            "(impute_median | {rate: X} | from_first) or declare 'funding: none'"
        )
    from dea.data.coverage import missing_settlements

    # every settlement instant on the clock must have its rate: even one missing settlement
    # charged as 0 would be a silent zero (a tolerated "short gap" used to be exactly that)
    missing = missing_settlements(ts, clock, step, interval)
    if len(missing):
        raise MissingFundingError(
            f"instrument {symbol!r}: funding source {src.name!r} has no settlement at {iso(int(missing[0]))}"
            + (f" and {len(missing) - 1} more settlement instants on the clock" if len(missing) > 1 else "")
            + f" (interval {format_duration(int(interval))}); funding there is unknown, not zero "
            "(funding_missing: impute_median or {rate: X} fills missing settlements explicitly and reports them)"
        )


# ----------------------------------------------------------------------------------- order book
def _align_event_sources(data, tables, clock, fields, age, report) -> None:
    """Book/quote/trade sources become ``ob.<name>`` fields through the order-book code when it is
    installed (``dea.features.orderbook.orderbook_panel_fields``); otherwise they are reported
    as not aligned (never silently half-used)."""
    srcs = [s for s in data.sources if s.kind in EVENT_KINDS]
    if not srcs:
        return
    try:
        from dea.features.orderbook import orderbook_panel_fields  # type: ignore[attr-defined]
    except ImportError:
        for s in srcs:
            report.setdefault(s.name, {})["aligned"] = "no (order-book panel fields unavailable)"
        return
    extra = orderbook_panel_fields(clock, data, {s.name: tables[s.name] for s in srcs})
    ob_fields, ob_age = extra if isinstance(extra, tuple) else (extra, {})
    for name, arr in ob_fields.items():
        if name in fields:
            raise DataError(f"order-book field {name!r} clashes with an existing panel field")
        fields[name] = np.asarray(arr, dtype=np.float64)
        if name in ob_age:
            age[name] = np.asarray(ob_age[name], dtype=np.float64)
    for s in srcs:
        report.setdefault(s.name, {})["aligned"] = "order-book fields"


# ----------------------------------------------------------------------------------- fingerprint
def _fingerprint(data: "DataConfig", fingerprints: Mapping[str, str], clock: np.ndarray, step: int) -> str:
    payload = {
        "panel_version": PANEL_VERSION,
        "sources": sorted((s.name, fingerprints.get(s.name, ""), s.max_staleness) for s in data.sources),
        "clock": [int(clock[0]), int(clock[-1]), int(step)],
        "instruments": [i.model_dump(mode="json") for i in data.instruments],
        "price_field": data.price_field,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _table_hash(table: "pa.Table") -> str:
    """Content hash of an in-memory table (when no loader fingerprint is given)."""
    h = hashlib.sha256()
    for name in table.column_names:
        col = table[name]
        h.update(name.encode())
        arr = col.to_numpy(zero_copy_only=False)
        h.update(np.ascontiguousarray(arr).tobytes() if arr.dtype != object else "\x00".join(map(str, arr)).encode())
    return h.hexdigest()
