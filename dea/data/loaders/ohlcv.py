"""OHLCV bars from feather, Parquet or CSV with configurable columns and timestamp convention.

Canonical bars are stamped by the bar **open**; a bar's values become known at its close, so
``available_at = open + step + publication_lag``. A file stamped by close (``timestamp.stamp:
close``) is shifted back by one step. Formats:

- ``ohlcv``: generic; time column from ``timestamp.column`` or the first of date/timestamp/time...;
  price columns by canonical name unless mapped in ``columns`` (``{"close": "Close"}``); the
  instrument from ``instrument``, a mapped ``instrument`` column (``{"instrument": "symbol"}``)
  or the file name.
- ``freqtrade``: the freqtrade layout (``date`` = bar open UTC; ``<BASE>_<QUOTE>[_<SETTLE>]-<tf>
  [-futures].feather``); the pair (``BTC/USDT:USDT``) and the step come from the file name.
  Read by :mod:`dea.data.loaders.futures`, which tells trade bars from funding / mark / index
  candles and calls :func:`load_bars` for trade bars.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dea.data.loaders.build import canonical, file_stem, nan_array, resolve_step, step_from_name
from dea.data.loaders.coerce import event_time, to_float64
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.tabular import column, first_present, read_any

KINDS = frozenset({"bars"})


def _instrument(ctx: LoadContext, table: pa.Table, default: str) -> str | pa.Array:
    mapped = ctx.src.columns.get("instrument")
    if mapped is not None:
        col = column(table, mapped, ctx, "instrument")
        if col.null_count:
            ctx.fail(f"instrument column {mapped!r} has empty cells")
        return col.cast(pa.string()).combine_chunks()
    return ctx.src.instrument or default


def load_bars(
    ctx: LoadContext, *, default_time: str | None, default_instrument: str, step_hint: int | None,
    table: pa.Table | None = None, ts: np.ndarray | None = None,
) -> pa.Table:
    """Bars from ``table`` (read from ``ctx.path`` when not given); ``ts``: the row times when the
    caller has already read them (in int64 ns UTC)."""
    if table is None:
        ctx.options(NoOptions)
        table = read_any(ctx)
    if ts is None:
        _, ts = event_time(ctx, table, default_time)
    n = table.num_rows
    values: dict[str, pa.Array] = {}
    for name in ("open", "high", "low", "close", "volume"):
        fcol = ctx.src.columns.get(name) or first_present(table, [name])
        if fcol is None:
            if name == "volume":
                ctx.nan_exempt.add("volume")
                ctx.report.add("no_volume", n, None, "the file has no volume column", "volume set to NaN")
                values[name] = nan_array(n)
                continue
            ctx.fail(f"no {name!r} column; map it with columns: {{{name}: <file column>}}")
        values[name] = to_float64(column(table, fcol, ctx, name), fcol, ctx)
    instrument = _instrument(ctx, table, default_instrument)
    codes = None
    if not isinstance(instrument, str):
        codes = instrument.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    step = resolve_step(ctx, ts, codes, step_hint)
    if ctx.src.timestamp.stamp == "close":
        ts = ts - step
    cols = {"ts_event": ts, "available_at": ts + step + ctx.lag_ns, "instrument": instrument, **values}
    return canonical("bars", cols, table["_row"])


def load_ohlcv(ctx: LoadContext) -> pa.Table:
    """Generic OHLCV file (CSV / feather / Parquet)."""
    return load_bars(ctx, default_time=None, default_instrument=file_stem(ctx.path), step_hint=step_from_name(ctx.path))
