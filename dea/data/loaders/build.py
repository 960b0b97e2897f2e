"""Small shared pieces for loaders: assembling a canonical table, steps, names from file names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from dea.data.loaders.context import LoadContext
from dea.data.schema import SCHEMAS
from dea.data.validate import KEY_COLUMNS, ROW_COLUMN, infer_step
from dea.timeutil import format_duration, parse_duration

_STEP_IN_NAME = re.compile(r"(?:^|[-_.])(\d+)(s|m|h|d|w)(?:[-_.]|$)", re.IGNORECASE)


def canonical(kind: str, cols: Mapping[str, object], rows: np.ndarray | pa.Array) -> pa.Table:
    """Table with exactly the canonical columns of ``kind`` (in order) plus ``_row``.

    Scalars in ``cols`` (a string instrument, a bool flag) are broadcast to every row.
    """
    n = len(rows)
    arrays: list[pa.Array] = []
    names: list[str] = []
    for field in SCHEMAS[kind]:
        v = cols[field.name]
        if isinstance(v, (str, bool, int, float)) or v is None:
            arr = pa.array(np.full(n, np.nan)) if v is None and pa.types.is_floating(field.type) else pa.repeat(pa.scalar(v, field.type), n)
        else:
            arr = v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v)
            if arr.type != field.type:
                arr = arr.cast(field.type)
        arrays.append(arr)
        names.append(field.name)
    arrays.append(rows if isinstance(rows, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(rows, dtype=np.int64)))
    names.append(ROW_COLUMN)
    return pa.table(arrays, names=names)


def nan_array(n: int) -> pa.Array:
    return pa.array(np.full(n, np.nan))


def step_from_name(path: Path) -> int | None:
    """``BTC_USDT_USDT-5m-futures.feather`` -> 5 minutes (freqtrade and similar naming)."""
    m = _STEP_IN_NAME.search(path.name.split(".")[0])
    return None if m is None else parse_duration(f"{m.group(1)}{m.group(2).lower()}")


def resolve_step(ctx: LoadContext, ts: np.ndarray, codes: np.ndarray | None = None, hint: int | None = None) -> int:
    """The bar step: configured ``step`` wins; otherwise a hint (file name) or the median spacing
    (reported as ``step_inferred`` so a reader knows it was not declared)."""
    if ctx.src.step is not None:
        return parse_duration(ctx.src.step)
    if hint is not None:
        ctx.report.add("step_inferred", 1, None, f"bar step {format_duration(hint)} taken from the file name", "used")
        return hint
    order = np.argsort(ts, kind="stable") if codes is None else np.lexsort((ts, codes))
    step = infer_step(ts[order], (np.zeros(len(ts), dtype=np.int64) if codes is None else codes)[order])
    if step is None:
        if len(ts) == 0:
            ctx.fail("the file has no data rows (a header only); nothing to load")
        ctx.fail("cannot infer the bar step from fewer than two distinct timestamps; set the source's step")
    ctx.report.add("step_inferred", 1, None, f"bar step {format_duration(step)} inferred from the median spacing", "used")
    return step


def freqtrade_pair(path: Path) -> str:
    """``BTC_USDT_USDT-5m-futures.feather`` -> ``BTC/USDT:USDT``; ``ETH_USDT-1h.feather`` -> ``ETH/USDT``."""
    stem = path.name.split("-")[0].split(".")[0]
    parts = stem.split("_")
    if len(parts) == 3:
        return f"{parts[0]}/{parts[1]}:{parts[2]}"
    if len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    return stem


def file_stem(path: Path) -> str:
    """File name without any of its suffixes (``btc.csv.gz`` -> ``btc``)."""
    return path.name.split(".")[0]


def key_codes(table_cols: Mapping[str, pa.Array], kind: str) -> np.ndarray:
    """Integer code per row for the series key columns (used before a table exists)."""
    n = len(next(iter(table_cols.values())))
    codes = np.zeros(n, dtype=np.int64)
    for name in KEY_COLUMNS[kind]:
        v = table_cols[name]
        if isinstance(v, str):
            continue
        enc = pa.array(v).dictionary_encode()
        codes = codes * (len(enc.dictionary) + 1) + enc.indices.to_numpy(zero_copy_only=False)
    return codes
