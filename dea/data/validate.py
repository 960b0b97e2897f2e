"""Validation of loaded tables: detect bad input, apply the source's configured policy, report it.

Why a separate stage: every loader turns its file into the canonical columns plus a ``_row``
column (the row's position in the file); this module then applies the *same* rules to every
source, so "unsorted", "duplicated timestamp", "gap", "NaN" and "non-positive price" mean the same
thing whatever the file format. Each rule either applies the policy configured on the
:class:`~dea.data.config.SourceConfig` (``unsorted_policy``, ``duplicate_policy``, ``gap_policy``
with ``max_gap_steps``, ``nan_policy``) and records what it did in a :class:`ValidationReport`
(rule, count, first offending row, detail, action), or raises a :class:`~dea.errors.DataError`
naming the file, the row and the problem. Nothing is dropped without a report entry.

Parse-level rules (UTF-8 BOM, duplicated column names, non-numeric cells, numbers stored as
strings, unparseable timestamps) are checked while reading, by :mod:`dea.data.loaders.tabular`
and :mod:`dea.data.loaders.coerce`, and recorded in the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dea.data.config import SourceConfig
from dea.data.schema import SCHEMAS, conform
from dea.errors import DataError
from dea.timeutil import format_duration, parse_duration

ROW_COLUMN = "_row"

# Columns that identify a series inside a table of a kind (rows are ordered and de-duplicated
# per key).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "bars": ("instrument",),
    "trades": ("instrument",),
    "quotes": ("instrument",),
    "book": ("instrument",),
    "funding": ("instrument",),
    "mark": ("instrument",),
    "open_interest": ("instrument",),
    "exogenous": ("series", "entity"),
    "option_chain": ("instrument",),
}
# Value columns checked for NaN / missing values.
VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bars": ("open", "high", "low", "close", "volume"),
    "trades": ("price", "size"),
    "quotes": ("bid_price", "bid_size", "ask_price", "ask_size"),
    "book": ("price", "size"),
    "funding": ("rate",),
    "mark": ("mark_price", "index_price"),
    "open_interest": ("open_interest", "open_interest_value"),
    "exogenous": ("value",),
    # a snapshot row without its mark or forward is useless; empty bid/ask sides, IVs and greeks
    # are NaN by construction (the loader reports them)
    "option_chain": ("mark_price", "underlying_price"),
}
# Columns that must be strictly positive where present (a zero or negative price is corrupt).
PRICE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bars": ("open", "high", "low", "close"),
    "trades": ("price",),
    "quotes": ("bid_price", "ask_price"),
    "book": ("price",),
    "mark": ("mark_price", "index_price"),
    "option_chain": ("underlying_price", "strike", "multiplier"),
}
# Columns that must be >= 0 where present.
NONNEGATIVE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bars": ("volume",),
    "trades": ("size",),
    "quotes": ("bid_size", "ask_size"),
    "book": ("size",),
    "open_interest": ("open_interest", "open_interest_value"),
    "option_chain": ("mark_price", "open_interest", "gamma", "vega"),
}
# Event kinds are ordered by arrival (available_at: receive time) because exchange timestamps
# may step back between messages while the feed order is still right; time series by ts_event.
EVENT_KINDS = frozenset({"trades", "quotes", "book"})
# Kinds with one row per (key, ts_event): a second row at the same instant is a duplicate.
UNIQUE_TS_KINDS = frozenset({"bars", "funding", "mark", "open_interest", "exogenous", "option_chain"})


@dataclass(frozen=True)
class Issue:
    """One validation finding.

    ``rule`` is a stable identifier (``unsorted``, ``duplicate``, ``gap``, ``nan``, ``utf8_bom``,
    ``duplicate_column``, ``string_numbers``, ``step_inferred`` ...); ``first_row`` names the
    first offending row as in the file (``"line 17"`` for text, ``"row 16"`` for binary files);
    ``action`` says what the configured policy did (``"sorted"``, ``"kept last"``, ``"dropped"``,
    ``"reported"``, ``"stripped"`` ...).
    """

    rule: str
    count: int
    first_row: str | None
    detail: str
    action: str = "reported"


@dataclass
class ValidationReport:
    """What validation found in one source and what each policy did about it."""

    source: str
    path: str
    rows_in: int = 0
    rows_out: int = 0
    issues: list[Issue] = field(default_factory=list)

    def add(self, rule: str, count: int, first_row: str | None, detail: str, action: str = "reported") -> None:
        self.issues.append(Issue(rule, int(count), first_row, detail, action))

    def get(self, rule: str) -> list[Issue]:
        return [i for i in self.issues if i.rule == rule]

    def count(self, rule: str) -> int:
        return sum(i.count for i in self.issues if i.rule == rule)

    @property
    def rules(self) -> set[str]:
        return {i.rule for i in self.issues}

    def merge(self, other: "ValidationReport") -> None:
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.issues.extend(other.issues)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "issues": [asdict(i) for i in self.issues],
        }

    def format(self) -> str:
        head = f"{self.source}: {self.rows_in} rows read, {self.rows_out} kept"
        if not self.issues:
            return head + "; no issues"
        lines = [head]
        for i in self.issues:
            where = f" (first at {i.first_row})" if i.first_row else ""
            lines.append(f"  - {i.rule}: {i.count}{where}: {i.detail} -> {i.action}")
        return "\n".join(lines)


RowLabel = Callable[[int], str]


def _label(rows: np.ndarray, idx: int, where: RowLabel) -> str:
    return where(int(rows[idx]))


def _fail(file: str, location: str | None, problem: str) -> DataError:
    loc = f", {location}" if location else ""
    return DataError(f"{file}{loc}: {problem}")


def _group_codes(table: pa.Table, kind: str) -> np.ndarray:
    """Integer code per row for its series key (instrument, or series+entity)."""
    cols = KEY_COLUMNS[kind]
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(table.num_rows, dtype=np.int64)
    for name in cols:
        enc = pc.dictionary_encode(table[name]).combine_chunks()
        idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        codes = codes * (len(enc.dictionary) + 1) + idx
    return codes


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    return table.take(pa.array(order, type=pa.int64()))


def _float(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy().astype(np.float64, copy=False) if table.num_rows else np.zeros(0)


def check_order(table: pa.Table, kind: str, src: SourceConfig, report: ValidationReport, file: str, where: RowLabel) -> pa.Table:
    """Rows must be in time order per series; ``unsorted_policy`` sorts (stably) or refuses."""
    n = table.num_rows
    if n < 2:
        return table
    time_col = "available_at" if kind in EVENT_KINDS else "ts_event"
    ts = table[time_col].to_numpy()
    codes = _group_codes(table, kind)
    rows = table[ROW_COLUMN].to_numpy()
    by_group = np.argsort(codes, kind="stable")
    g = codes[by_group]
    t = ts[by_group]
    back = (np.diff(t) < 0) & (g[1:] == g[:-1])
    n_back = int(back.sum())
    if n_back == 0:
        grouped_in_order = bool(np.all(by_group == np.arange(n)))
        return table if grouped_in_order else _take(table, by_group)
    first = by_group[1:][back][0]
    loc = _label(rows, first, where)
    detail = f"{n_back} rows have {time_col} earlier than the row before them"
    if src.unsorted_policy == "error":
        raise _fail(file, loc, f"rows are not sorted by {time_col} ({detail}); set unsorted_policy: sort to sort them")
    order = np.lexsort((ts, codes))  # stable for equal keys: file order kept within an instant
    report.add("unsorted", n_back, loc, detail, "sorted")
    return _take(table, order)


def check_duplicates(table: pa.Table, kind: str, src: SourceConfig, report: ValidationReport, file: str, where: RowLabel) -> pa.Table:
    """One row per (series, ts_event) for time series; one row per trade id for trades."""
    n = table.num_rows
    if n < 2:
        return table
    codes = _group_codes(table, kind)
    rows = table[ROW_COLUMN].to_numpy()
    if kind in UNIQUE_TS_KINDS:
        key2 = table["ts_event"].to_numpy()
        what = "ts_event"
        valid = np.ones(n, dtype=bool)
    elif kind == "trades":
        ids = table["trade_id"]
        valid = ids.is_valid().to_numpy(zero_copy_only=False)
        if not valid.any():
            return table
        key2 = ids.fill_null(0).to_numpy()
        what = "trade_id"
    else:
        return table
    order = np.lexsort((key2, codes))
    kc, k2, vs = codes[order], key2[order], valid[order]
    same_as_prev = np.zeros(n, dtype=bool)
    same_as_prev[1:] = (kc[1:] == kc[:-1]) & (k2[1:] == k2[:-1]) & vs[1:] & vs[:-1]
    n_dup = int(same_as_prev.sum())
    if n_dup == 0:
        return table
    dup_rows = order[same_as_prev]
    first = dup_rows[np.argmin(rows[dup_rows])]
    loc = _label(rows, first, where)
    detail = f"{n_dup} rows repeat the {what} of an earlier row of the same series"
    if src.duplicate_policy == "error":
        raise _fail(
            file, loc, f"duplicated {what} ({detail}); set duplicate_policy: keep_last or keep_first to resolve"
        )
    # Groups of equal keys are contiguous in `order`; keep the last (or first) row of each group
    # in *file order*: order is stable on the original positions, so within a group the original
    # order is preserved.
    if src.duplicate_policy == "keep_last":
        drop = np.zeros(n, dtype=bool)
        drop[:-1] = same_as_prev[1:]
    else:
        drop = same_as_prev
    keep_mask = np.ones(n, dtype=bool)
    keep_mask[order[drop]] = False
    report.add("duplicate", n_dup, loc, detail, "kept last" if src.duplicate_policy == "keep_last" else "kept first")
    return table.filter(pa.array(keep_mask))


def infer_step(ts: np.ndarray, codes: np.ndarray) -> int | None:
    """Median positive step between consecutive rows of the same series (None if unknown)."""
    if len(ts) < 2:
        return None
    same = codes[1:] == codes[:-1]
    d = np.diff(ts)[same]
    d = d[d > 0]
    return int(np.median(d)) if len(d) else None


def source_step(src: SourceConfig) -> int | None:
    return None if src.step is None else parse_duration(src.step)


def check_gaps(table: pa.Table, kind: str, src: SourceConfig, report: ValidationReport, file: str, where: RowLabel) -> None:
    """Gaps longer than ``max_gap_steps`` x step: ``gap_policy`` reports them or refuses."""
    step = source_step(src)
    if step is None and kind in EVENT_KINDS:
        return  # event streams have no native step unless configured
    n = table.num_rows
    if n < 2:
        return
    ts = table["ts_event"].to_numpy()
    codes = _group_codes(table, kind)
    if step is None:
        step = infer_step(ts, codes)
        if step is None:
            return
    same = codes[1:] == codes[:-1]
    d = np.diff(ts)
    big = same & (d > src.max_gap_steps * step)
    n_gap = int(big.sum())
    if n_gap == 0:
        return
    rows = table[ROW_COLUMN].to_numpy()
    first = int(np.argmax(big)) + 1
    loc = _label(rows, first, where)
    detail = (
        f"{n_gap} gaps longer than {src.max_gap_steps:g} x step {format_duration(step)} "
        f"(longest {format_duration(int(d[big].max()))})"
    )
    if src.gap_policy == "error":
        raise _fail(file, loc, f"gap in the data: {detail}; set gap_policy: report to accept it")
    report.add("gap", n_gap, loc, detail, "reported")


def check_nan(
    table: pa.Table,
    kind: str,
    src: SourceConfig,
    report: ValidationReport,
    file: str,
    where: RowLabel,
    exempt: Iterable[str] = (),
) -> pa.Table:
    """Missing values in value columns: ``nan_policy`` keeps (reported), drops (reported) or refuses.

    Infinite values (e.g. a relative change from zero) are no usable number either: they are
    counted separately (``non_finite``) and become NaN under ``keep``. ``exempt`` names columns
    that are missing by construction (``open``/``high``/``low`` of a close-only daily price
    series) and are therefore not a data problem.
    """
    cols = [c for c in VALUE_COLUMNS[kind] if c not in set(exempt)]
    n = table.num_rows
    if n == 0 or not cols:
        return table
    missing = np.zeros(n, dtype=bool)
    infinite = np.zeros(n, dtype=bool)
    per_col: dict[str, int] = {}
    inf_col: dict[str, int] = {}
    for c in cols:
        v = _float(table, c)
        m = np.isnan(v)
        k = np.isinf(v)
        if m.any():
            per_col[c] = int(m.sum())
            missing |= m
        if k.any():
            inf_col[c] = int(k.sum())
            infinite |= k
    markers = book_gap_markers(table, kind)
    if markers.any():  # resync markers carry NaN price/size by design (see dea.book)
        missing &= ~markers
        for c in list(per_col):
            per_col[c] = int((np.isnan(_float(table, c)) & ~markers).sum())
            if not per_col[c]:
                del per_col[c]
    rows = table[ROW_COLUMN].to_numpy()
    for rule, bad, counts, what in (
        ("nan", missing, per_col, "missing values"),
        ("non_finite", infinite, inf_col, "infinite values"),
    ):
        n_bad = int(bad.sum())
        if n_bad == 0:
            continue
        loc = _label(rows, int(np.argmax(bad)), where)
        detail = f"{n_bad} rows with {what} ({', '.join(f'{k}: {v}' for k, v in counts.items())})"
        if src.nan_policy == "error":
            raise _fail(file, loc, f"{what[:-1]}: {detail}; set nan_policy: keep or drop to accept it")
        action = "dropped" if src.nan_policy == "drop" else ("kept as NaN" if rule == "nan" else "set to NaN")
        report.add(rule, n_bad, loc, detail, action)
    if not infinite.any() and not missing.any():
        return table
    if src.nan_policy == "drop":
        return table.filter(pa.array(~(missing | infinite)))
    if infinite.any():
        for c in inf_col:
            v = _float(table, c).copy()
            v[np.isinf(v)] = np.nan
            table = table.set_column(table.schema.get_field_index(c), c, pa.array(v))
    return table


def book_gap_markers(table: pa.Table, kind: str) -> np.ndarray:
    """Rows a capture reader inserts to mark a resync in a book table: ``is_snapshot`` with
    ``side == 0`` and NaN price/size. They are information (the book was reset), not missing data."""
    if kind != "book" or table.num_rows == 0:
        return np.zeros(table.num_rows, dtype=bool)
    side = table["side"].to_numpy(zero_copy_only=False)
    snap = table["is_snapshot"].to_numpy(zero_copy_only=False)
    return (side == 0) & snap.astype(bool)


def check_values(table: pa.Table, kind: str, report: ValidationReport, file: str, where: RowLabel) -> None:
    """Prices must be > 0 and sizes >= 0: a zero or negative price is corrupt, never a policy."""
    rows = table[ROW_COLUMN].to_numpy() if table.num_rows else np.zeros(0, dtype=np.int64)
    for c in PRICE_COLUMNS.get(kind, ()):
        v = _float(table, c)
        bad = v <= 0  # NaN compares False
        if bad.any():
            i = int(np.argmax(bad))
            raise _fail(file, _label(rows, i, where), f"non-positive {c} {v[i]!r} ({int(bad.sum())} rows); prices must be > 0")
    for c in NONNEGATIVE_COLUMNS.get(kind, ()):
        v = _float(table, c)
        bad = v < 0
        if bad.any():
            i = int(np.argmax(bad))
            raise _fail(file, _label(rows, i, where), f"negative {c} {v[i]!r} ({int(bad.sum())} rows); must be >= 0")
    for c in VALUE_COLUMNS[kind]:
        v = _float(table, c)
        bad = np.isinf(v)  # exempt columns (not seen by check_nan) must still be finite
        if bad.any():
            i = int(np.argmax(bad))
            raise _fail(file, _label(rows, i, where), f"infinite {c} ({int(bad.sum())} rows)")
    if kind == "bars" and table.num_rows:
        o, h, lo, c = (_float(table, x) for x in ("open", "high", "low", "close"))
        with np.errstate(invalid="ignore"):
            bad = (h < np.fmax(o, c)) | (lo > np.fmin(o, c)) | (h < lo)
        if bad.any():
            i = int(np.argmax(bad))
            report.add(
                "ohlc_inconsistent", int(bad.sum()), _label(rows, i, where),
                "high below open/close or low above open/close", "reported",
            )


def check_available_at(table: pa.Table, kind: str, file: str, where: RowLabel) -> None:
    """``available_at`` may never precede ``ts_event`` for time series (that would leak)."""
    if table.num_rows == 0 or kind in EVENT_KINDS:
        return
    ts = table["ts_event"].to_numpy()
    av = table["available_at"].to_numpy()
    bad = av < ts
    if bad.any():
        rows = table[ROW_COLUMN].to_numpy()
        i = int(np.argmax(bad))
        raise _fail(file, _label(rows, i, where), "available_at precedes ts_event (a value known before it happened)")


def validate_table(
    table: pa.Table,
    kind: str,
    src: SourceConfig,
    report: ValidationReport,
    file: str,
    where: RowLabel,
    nan_exempt: Iterable[str] = (),
) -> pa.Table:
    """Apply every rule to a loaded table (canonical columns + ``_row``) and conform it.

    Order matters: sort first (so duplicates and gaps are judged in time order), then resolve
    duplicates, then look for gaps, NaNs and impossible values.
    """
    if kind not in SCHEMAS:
        raise DataError(f"{file}: unknown table kind {kind!r}")
    report.rows_in += table.num_rows
    table = check_order(table, kind, src, report, file, where)
    table = check_duplicates(table, kind, src, report, file, where)
    check_gaps(table, kind, src, report, file, where)
    table = check_nan(table, kind, src, report, file, where, nan_exempt)
    check_values(table, kind, report, file, where)
    check_available_at(table, kind, file, where)
    report.rows_out += table.num_rows
    return conform(kind, table.drop_columns([ROW_COLUMN]), file)
