"""Funding histories (and the mark/index prices that come with them).

Canonical funding rows: ``ts_event`` is the settlement instant, ``rate`` the fraction paid by
longs at that settlement, ``interval_ns`` the accrual period it covers. The rate is known at
settlement at the latest, so ``available_at = ts_event + publication_lag``.

- ``bitmex_funding``: BitMEX ``/funding`` export (``timestamp, symbol, fundingInterval,
  fundingRate, ...``). ``fundingInterval`` is a BitMEX "time since 2000-01-01" stamp:
  ``2000-01-01T08:00:00Z`` = 8h, ``2000-01-02T00:00:00Z`` = 24h (the first 22 XBTUSD rows).
- ``deribit_funding``: Deribit ``get_funding_rate_history`` rows, hourly: ``timestamp`` (ms UTC),
  ``interest_1h`` (the rate accrued over the hour ending at ``timestamp``: the settlement rate),
  ``interest_8h`` (the same rate quoted per 8h, kept out of funding), ``index_price`` (as ``mark``
  kind: ``index_price`` filled, ``mark_price`` missing). The ``time_dt`` text column is London
  local time (it repeats an hour at the October DST change, which is why rows look unsorted) and
  appears twice; DEA reads the UTC ``timestamp``.
- ``bitmex_prices``: BitMEX trades printed at funding times (``price_data.csv``) as a ``mark``
  table (``mark_price`` = traded price) or as ``trades``.
- ``funding``: generic; ``rate`` column (``rate``/``funding_rate``/``fundingRate`` or mapped),
  optional ``interval`` column or option, else the interval is the median spacing (reported).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dea.config.base import StrictModel, duration_field
from dea.data.loaders.build import canonical, file_stem, key_codes, nan_array
from dea.data.loaders.coerce import event_time, to_float64, to_ns, to_side
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.tabular import column, first_present, read_any
from dea.data.validate import infer_step
from dea.timeutil import NS_PER_HOUR, format_duration, parse_duration, parse_timestamp

BITMEX_EPOCH_2000 = parse_timestamp("2000-01-01T00:00:00Z")


def instrument_of(ctx: LoadContext, table: pa.Table, default: str, symbol_col: str | None = "symbol") -> str | pa.Array:
    """The source's ``instrument``, else a mapped or ``symbol`` column, else ``default``."""
    if ctx.src.instrument:
        return ctx.src.instrument
    mapped = ctx.src.columns.get("instrument") or (symbol_col if symbol_col in table.column_names else None)
    if mapped:
        col = column(table, mapped, ctx, "instrument")
        if col.null_count:
            ctx.fail(f"instrument column {mapped!r} has empty cells")
        return col.cast(pa.string()).combine_chunks()
    return default


def funding_table(ctx: LoadContext, table: pa.Table, ts: np.ndarray, rate: pa.Array, interval: np.ndarray | int, instrument: str | pa.Array) -> pa.Table:
    interval_arr = np.full(len(ts), interval, dtype=np.int64) if np.isscalar(interval) else interval
    cols = {
        "ts_event": ts,
        "available_at": ts + ctx.lag_ns,
        "instrument": instrument,
        "rate": rate,
        "interval_ns": interval_arr,
    }
    return canonical("funding", cols, table["_row"])


def load_bitmex_funding(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table, "timestamp")
    rate_col = ctx.column("rate", "fundingRate")
    rate = to_float64(column(table, rate_col, ctx, "rate"), rate_col, ctx)
    icol = ctx.column("interval", "fundingInterval")
    interval = to_ns(column(table, icol, ctx, "funding interval"), icol, "iso", ctx) - BITMEX_EPOCH_2000
    bad = interval <= 0
    if bad.any():
        ctx.fail(f"{icol!r} is not after 2000-01-01 (BitMEX encodes the interval as time since then)", row=int(np.argmax(bad)))
    if len(np.unique(interval)) > 1:
        vals = ", ".join(f"{format_duration(int(v))}: {int((interval == v).sum())}" for v in np.unique(interval))
        ctx.report.add("mixed_interval", len(interval), None, f"funding intervals vary ({vals})", "kept per row")
    return funding_table(ctx, table, ts, rate, interval, instrument_of(ctx, table, "XBTUSD"))


def load_deribit_funding(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table, "timestamp", "ms")
    instrument = instrument_of(ctx, table, "BTC-PERPETUAL", symbol_col=None)
    if ctx.kind == "mark":
        icol = ctx.column("index_price", "index_price")
        mcol = ctx.src.columns.get("mark_price")
        mark = to_float64(column(table, mcol, ctx), mcol, ctx) if mcol else nan_array(table.num_rows)
        if not mcol:
            ctx.nan_exempt.add("mark_price")
        cols = {
            "ts_event": ts,
            "available_at": ts + ctx.lag_ns,
            "instrument": instrument,
            "mark_price": mark,
            "index_price": to_float64(column(table, icol, ctx, "index price"), icol, ctx),
        }
        return canonical("mark", cols, table["_row"])
    rcol = ctx.column("rate", "interest_1h")
    rate = to_float64(column(table, rcol, ctx, "rate"), rcol, ctx)
    return funding_table(ctx, table, ts, rate, NS_PER_HOUR, instrument)


class FundingOptions(StrictModel):
    """``interval``: accrual period of each rate (e.g. ``8h``) when the file has no interval column."""

    interval: str | None = None
    _dur = duration_field("interval")


def load_funding(ctx: LoadContext) -> pa.Table:
    opts = ctx.options(FundingOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table)
    rate_col = ctx.src.columns.get("rate") or first_present(table, ["rate", "funding_rate", "fundingRate"])
    if rate_col is None:
        ctx.fail("no funding rate column (rate / funding_rate / fundingRate); map it with columns: {rate: <column>}")
    rate = to_float64(column(table, rate_col, ctx, "rate"), rate_col, ctx)
    instrument = instrument_of(ctx, table, file_stem(ctx.path))
    icol = ctx.src.columns.get("interval")
    if icol:
        v = to_float64(column(table, icol, ctx, "interval"), icol, ctx).to_numpy(zero_copy_only=False)
        if not np.isfinite(v).all() or (v <= 0).any():
            ctx.fail(f"interval column {icol!r} must hold positive numbers of hours")
        interval: np.ndarray | int = np.round(v * NS_PER_HOUR).astype(np.int64)
    elif opts.interval:
        interval = parse_duration(opts.interval)
    else:
        codes = key_codes({"instrument": instrument if not isinstance(instrument, str) else pa.array([instrument] * len(ts))}, "funding")
        order = np.lexsort((ts, codes))
        step = infer_step(ts[order], codes[order])
        if step is None:
            if len(ts) == 0:
                ctx.fail("the file has no data rows (a header only); nothing to load")
            ctx.fail("cannot infer the funding interval from fewer than two settlements; set options.interval")
        interval = step
        ctx.report.add("interval_inferred", 1, None, f"funding interval {format_duration(step)} from the median spacing", "used")
    return funding_table(ctx, table, ts, rate, interval, instrument)


def load_bitmex_prices(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table, "timestamp")
    instrument = instrument_of(ctx, table, "XBTUSD")
    pcol = ctx.column("price", "price")
    price = to_float64(column(table, pcol, ctx, "price"), pcol, ctx)
    if ctx.kind == "trades":
        scol = ctx.column("size", "size")
        cols = {
            "ts_event": ts,
            "available_at": ts + ctx.lag_ns,
            "instrument": instrument,
            "price": price,
            "size": to_float64(column(table, scol, ctx, "size"), scol, ctx),
            "side": to_side(column(table, "side", ctx), "side", ctx) if "side" in table.column_names else 0,
            "trade_id": pa.nulls(table.num_rows, pa.int64()),
        }
        return canonical("trades", cols, table["_row"])
    ctx.nan_exempt.add("index_price")
    cols = {
        "ts_event": ts,
        "available_at": ts + ctx.lag_ns,
        "instrument": instrument,
        "mark_price": price,
        "index_price": nan_array(table.num_rows),
    }
    return canonical("mark", cols, table["_row"])
