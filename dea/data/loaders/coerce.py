"""Turn file columns into canonical typed arrays, naming the first bad cell when they cannot be.

- numbers: numeric columns are cast; text columns (numbers stored as strings, e.g. prices in
  JSON) are parsed when every non-empty cell is a number (reported as ``string_numbers``), and
  refused naming the first non-numeric cell otherwise. Missing cells become NaN, never 0.
- timestamps: text dates in every common style (:mod:`dea.data.loaders.timeparse`; naive means
  UTC) or integers in s/ms/us/ns -> int64 ns UTC.
- sides: exchange spellings (buy/sell, bid/ask, b/a, true/false for buyer-is-maker) -> +1/-1.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dea.data.loaders.context import LoadContext
from dea.data.loaders.timeparse import check_one_unit, epoch_unit, parse_text_times
from dea.timeutil import NS_PER_DAY, NS_PER_MS, NS_PER_S, NS_PER_US

NUMBER_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_INTEGER = r"^\s*[+-]?\d+\s*$"
UNIT_NS = {"s": NS_PER_S, "ms": NS_PER_MS, "us": NS_PER_US, "ns": 1}


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _combine(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def to_float64(col: pa.ChunkedArray | pa.Array, name: str, ctx: LoadContext) -> pa.Array:
    """float64 array with NaN for missing cells; refuses non-numeric text naming the row."""
    arr = _combine(col)
    t = arr.type
    if pa.types.is_null(t):
        return pa.array(np.full(len(arr), np.nan))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        out = pc.cast(arr, pa.float64(), safe=False)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        ok = pc.match_substring_regex(arr, NUMBER_PATTERN)
        bad = pc.and_(pc.is_valid(arr), pc.invert(ok.fill_null(False))).to_numpy(zero_copy_only=False)
        if bad.any():
            i = _first_bad(bad)
            value = arr[i].as_py()
            ctx.fail(
                f"column {name!r} holds non-numeric value {value[:40]!r} ({int(bad.sum())} cells); "
                "expected a number or an empty cell",
                row=i,
            )
        n_text = int(pc.sum(pc.is_valid(arr)).as_py() or 0)
        if n_text:
            ctx.report.add(
                "string_numbers", n_text, None, f"column {name!r} stores numbers as text", "parsed as float64"
            )
        out = pc.cast(pc.utf8_trim_whitespace(arr), pa.float64())
    elif pa.types.is_boolean(t):
        ctx.fail(f"column {name!r} holds true/false values, expected numbers")
    else:
        ctx.fail(f"column {name!r} has type {t}, expected numbers")
    return pc.fill_null(out, np.nan)


def to_int64(col: pa.ChunkedArray | pa.Array, name: str, ctx: LoadContext, nullable: bool = True) -> pa.Array:
    """int64 array (null where missing); text must be integers; floats must be whole."""
    arr = _combine(col)
    t = arr.type
    if pa.types.is_null(t):
        out = pa.nulls(len(arr), pa.int64())
    elif pa.types.is_integer(t):
        out = pc.cast(arr, pa.int64())
    elif pa.types.is_floating(t):
        v = arr.to_numpy(zero_copy_only=False)
        bad = np.isfinite(v) & (v != np.round(v))
        bad |= np.isinf(v)
        if bad.any():
            i = _first_bad(bad)
            ctx.fail(f"column {name!r} holds non-integer value {v[i]!r}", row=i)
        out = pc.cast(arr, pa.int64(), safe=False)
        out = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.int64()), out)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        ok = pc.match_substring_regex(arr, _INTEGER)
        bad = pc.and_(pc.is_valid(arr), pc.invert(ok.fill_null(False))).to_numpy(zero_copy_only=False)
        if bad.any():
            i = _first_bad(bad)
            ctx.fail(f"column {name!r} holds non-integer value {str(arr[i].as_py())[:40]!r}", row=i)
        try:
            out = pc.cast(pc.utf8_trim_whitespace(arr), pa.int64())
        except pa.ArrowInvalid:
            ctx.fail(f"column {name!r} holds an integer out of the int64 range")
    else:
        ctx.fail(f"column {name!r} has type {t}, expected integers")
    if not nullable and out.null_count:
        i = _first_bad(out.is_null().to_numpy(zero_copy_only=False))
        ctx.fail(f"column {name!r} is empty", row=i)
    return out


def to_ns(col: pa.ChunkedArray | pa.Array, name: str, unit: str, ctx: LoadContext) -> np.ndarray:
    """int64 ns UTC from ISO text/dates (``unit='iso'``) or integer epochs in ``unit``.

    A missing or unparseable timestamp is refused naming the row: a row that cannot be placed in
    time cannot be used, and dropping it quietly would lose data.
    """
    arr = _combine(col)
    t = arr.type
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.null_count:
        i = _first_bad(arr.is_null().to_numpy(zero_copy_only=False))
        ctx.fail(f"timestamp column {name!r} is empty ({arr.null_count} rows)", row=i)
    if pa.types.is_timestamp(t):
        try:
            ns = pc.cast(arr, pa.timestamp("ns", tz=t.tz)).cast(pa.int64())
        except pa.ArrowInvalid:
            ctx.fail(f"timestamp column {name!r} is out of the representable range (years 1678-2261)")
        return ns.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if pa.types.is_date32(t):
        return arr.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64) * NS_PER_DAY
    if pa.types.is_date64(t):
        return arr.cast(pa.int64()).to_numpy(zero_copy_only=False) * NS_PER_MS
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        if unit == "iso" and (ctx.src.timestamp.format or _yyyymmdd(arr)):
            return parse_text_times(arr.cast(pa.int64()).cast(pa.string()).to_numpy(zero_copy_only=False), name, ctx, ctx.src.timestamp.format or "%Y%m%d")
        if unit == "iso":
            ctx.fail(
                f"timestamp column {name!r} holds numbers; set the source's timestamp.unit "
                "to s, ms, us or ns"
            )
        v = arr.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(t):
            if not np.isfinite(v).all():
                i = _first_bad(~np.isfinite(v))
                ctx.fail(f"timestamp column {name!r} holds a non-finite value", row=i)
            lim = np.iinfo(np.int64).max / UNIT_NS[unit]
            if (np.abs(v) >= lim).any():
                ctx.fail(f"timestamp column {name!r} is out of range for unit {unit}")
            return np.round(v * UNIT_NS[unit]).astype(np.int64)
        v = v.astype(np.int64)
        lim = np.iinfo(np.int64).max // UNIT_NS[unit]
        if (np.abs(v) > lim).any():
            i = _first_bad(np.abs(v) > lim)
            ctx.fail(f"timestamp column {name!r}: value out of range for unit {unit}", row=i)
        return v * UNIT_NS[unit]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if unit != "iso":
            return to_ns(to_int64(arr, name, ctx, nullable=False), name, unit, ctx)
        return parse_text_times(arr.to_numpy(zero_copy_only=False), name, ctx, ctx.src.timestamp.format)
    ctx.fail(f"timestamp column {name!r} has type {t}, expected ISO text or integer epochs")


def infer_epoch_unit(col: pa.ChunkedArray | pa.Array) -> str | None:
    """Guess s/ms/us/ns for integer epochs from their magnitude (dates 1973..2286)."""
    arr = _combine(col)
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)) or len(arr) == 0:
        return None
    v = np.abs(arr.to_numpy(zero_copy_only=False).astype(np.float64))
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    return epoch_unit(float(np.median(v)))


def _yyyymmdd(arr: pa.Array) -> bool:
    """Whole numbers that all read as dates ``YYYYMMDD`` (19000101 .. 22611231)."""
    if len(arr) == 0 or arr.null_count:
        return False
    v = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    return bool(np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.all((v >= 19000101) & (v <= 22611231)))


def time_ns(table: pa.Table, name: str, unit: str, ctx: LoadContext, explicit: bool) -> np.ndarray:
    """Timestamps of column ``name``; when the unit was not configured (``explicit`` False) and
    the column holds integers, the epoch unit is inferred from magnitude and reported."""
    from dea.data.loaders.tabular import column

    col = column(table, name, ctx, "time")
    if not explicit and unit == "iso":
        guess = infer_epoch_unit(col)
        if guess is not None:
            check_one_unit(_combine(col).to_numpy(zero_copy_only=False), guess, name, ctx)
            ctx.report.add(
                "timestamp_unit_inferred", 1, None, f"column {name!r} read as epoch {guess} from its magnitude", "used"
            )
            unit = guess
    return to_ns(col, name, unit, ctx)


TIME_CANDIDATES = ["date", "timestamp", "time", "datetime", "observation_date", "open_time", "ts"]


def event_time(
    ctx: LoadContext,
    table: pa.Table,
    preset: str | None = None,
    preset_unit: str = "iso",
    candidates: list[str] | None = None,
) -> tuple[str, np.ndarray]:
    """The row time in int64 ns UTC and the column it came from.

    A configured ``timestamp.column`` (with its ``unit``) wins; otherwise the loader's preset
    column and unit when the file has it; otherwise the first usual time column, its epoch unit
    inferred from magnitude when it holds integers.
    """
    from dea.data.loaders.tabular import first_present

    conv = ctx.src.timestamp
    if conv.column:
        return conv.column, time_ns(table, conv.column, conv.unit, ctx, explicit=True)
    explicit_unit = "unit" in conv.model_fields_set
    if preset is not None and preset in table.column_names:
        unit = conv.unit if explicit_unit else preset_unit
        return preset, time_ns(table, preset, unit, ctx, explicit=True)
    name = first_present(table, candidates or TIME_CANDIDATES)
    if name is None:
        shown = [c for c in table.column_names if c != "_row"]
        ctx.fail(f"no time column found among {shown}; set the source's timestamp.column")
    return name, time_ns(table, name, conv.unit, ctx, explicit=explicit_unit)


_SIDES = {
    "buy": 1, "b": 1, "bid": 1, "bids": 1, "long": 1, "1": 1, "+1": 1,
    "sell": -1, "s": -1, "a": -1, "ask": -1, "asks": -1, "short": -1, "-1": -1,
    "": 0, "unknown": 0, "0": 0,
}


def to_side(col: pa.ChunkedArray | pa.Array, name: str, ctx: LoadContext) -> pa.Array:
    """int8 side (+1 buy/bid, -1 sell/ask, 0 unknown) from the usual exchange spellings."""
    arr = _combine(col)
    if pa.types.is_integer(arr.type):
        v = arr.fill_null(0).to_numpy(zero_copy_only=False)
        bad = ~np.isin(v, (-1, 0, 1))
        if bad.any():
            ctx.fail(f"column {name!r}: side {v[_first_bad(bad)]!r} is not -1, 0 or +1", row=_first_bad(bad))
        return pa.array(v.astype(np.int8))
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)):
        ctx.fail(f"column {name!r} has type {arr.type}, expected a side such as buy/sell")
    low = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string()))).fill_null("")
    keys = pa.array(list(_SIDES))
    idx = pc.index_in(low, value_set=keys)
    if idx.null_count:
        i = _first_bad(idx.is_null().to_numpy(zero_copy_only=False))
        ctx.fail(f"column {name!r}: unknown side {low[i].as_py()!r}; expected buy/sell, bid/ask or b/a", row=i)
    lut = np.array(list(_SIDES.values()), dtype=np.int8)
    return pa.array(lut[idx.to_numpy(zero_copy_only=False)])


def to_bool(col: pa.ChunkedArray | pa.Array, name: str, ctx: LoadContext) -> pa.Array:
    """bool array from true/false text or booleans; anything else is refused naming the row."""
    arr = _combine(col)
    if pa.types.is_boolean(arr.type):
        if arr.null_count:
            ctx.fail(f"column {name!r} is empty", row=_first_bad(arr.is_null().to_numpy(zero_copy_only=False)))
        return arr
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        low = pc.utf8_lower(pc.utf8_trim_whitespace(arr)).fill_null("")
        t = pc.is_in(low, value_set=pa.array(["true", "1", "t", "yes"]))
        f = pc.is_in(low, value_set=pa.array(["false", "0", "f", "no"]))
        bad = pc.invert(pc.or_(t, f)).to_numpy(zero_copy_only=False)
        if bad.any():
            i = _first_bad(bad)
            ctx.fail(f"column {name!r}: {low[i].as_py()!r} is not true/false", row=i)
        return t
    if pa.types.is_integer(arr.type):
        v = arr.to_numpy(zero_copy_only=False)
        if not np.isin(v, (0, 1)).all():
            ctx.fail(f"column {name!r}: expected true/false")
        return pa.array(v.astype(bool))
    ctx.fail(f"column {name!r} has type {arr.type}, expected true/false")
