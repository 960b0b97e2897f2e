"""Tardis.dev CSV datasets: trades, quotes, book_snapshot_N, incremental_book_L2.

Every Tardis row has ``timestamp`` (exchange time, µs) and ``local_timestamp`` (Tardis receive
time, µs): ``ts_event = timestamp``, ``available_at = local_timestamp + publication_lag`` (a
decision could not have seen a message before it arrived). The instrument is the ``symbol``
column unless the source names one.

- ``tardis_trades``: ``id, side, price, amount``; ``side`` buy/sell is the aggressor; ids that
  are not integers (BitMEX UUIDs) are hashed to a stable int64 (reported ``trade_id_hashed``).
- ``tardis_quotes``: top of book ``ask_amount, ask_price, bid_price, bid_amount``.
- ``tardis_book_snapshot``: ``book_snapshot_5`` / ``book_snapshot_25`` wide rows
  (``asks[i].price``, ``bids[i].amount`` ...) become one ``is_snapshot`` block per row, ``seq`` =
  the row's position; empty levels (thin books) are left out and reported (``empty_levels``).
- ``tardis_incremental_l2``: ``is_snapshot, side, price, amount`` rows; rows of one message
  (same timestamps and snapshot flag) share ``seq``; ``amount == 0`` deletes the level.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from dea.config.base import StrictModel
from dea.data.loaders.build import canonical, file_stem
from dea.data.loaders.coerce import to_bool, to_float64, to_int64, to_ns, to_side
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.tabular import column, read_any

_LEVEL = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")


def _times(ctx: LoadContext, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    conv = ctx.src.timestamp
    tcol = conv.column or "timestamp"
    unit = conv.unit if conv.column or "unit" in conv.model_fields_set else "us"
    ts = to_ns(column(table, tcol, ctx, "exchange time"), tcol, unit, ctx)
    lcol = ctx.column("local_timestamp", "local_timestamp")
    if lcol in table.column_names:
        local = to_ns(column(table, lcol, ctx, "receive time"), lcol, unit, ctx)
    else:
        ctx.report.add("no_receive_time", table.num_rows, None, "no local_timestamp column", "available_at from exchange time")
        local = ts
    return ts, local + ctx.lag_ns


def _instrument(ctx: LoadContext, table: pa.Table) -> str | pa.Array:
    if ctx.src.instrument:
        return ctx.src.instrument
    scol = ctx.column("instrument", "symbol")
    if scol in table.column_names:
        col = column(table, scol, ctx, "instrument")
        if col.null_count:
            ctx.fail(f"instrument column {scol!r} has empty cells")
        return col.cast(pa.string()).combine_chunks()
    return file_stem(ctx.path)


def trade_ids(col: pa.ChunkedArray, name: str, ctx: LoadContext) -> pa.Array:
    """Integer trade ids as int64; other ids (UUIDs) hashed to a stable int64, reported."""
    arr = col.combine_chunks()
    if pa.types.is_integer(arr.type) or pa.types.is_null(arr.type):
        return to_int64(arr, name, ctx)
    if pa.types.is_floating(arr.type):
        return to_int64(arr, name, ctx)
    import pandas as pd

    text = arr.cast(pa.string())
    values = text.to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(values.astype(object), categorize=False).view(np.int64)
    ctx.report.add("trade_id_hashed", len(arr), None, f"column {name!r} holds non-integer ids", "hashed to int64")
    mask = text.is_null().to_numpy(zero_copy_only=False)
    return pa.array(hashed, mask=mask)


def load_tardis_trades(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    ts, avail = _times(ctx, table)
    p, s, side, tid = (ctx.column(k, d) for k, d in (("price", "price"), ("size", "amount"), ("side", "side"), ("trade_id", "id")))
    cols = {
        "ts_event": ts,
        "available_at": avail,
        "instrument": _instrument(ctx, table),
        "price": to_float64(column(table, p, ctx, "price"), p, ctx),
        "size": to_float64(column(table, s, ctx, "size"), s, ctx),
        "side": to_side(column(table, side, ctx, "side"), side, ctx),
        "trade_id": trade_ids(column(table, tid, ctx, "trade id"), tid, ctx) if tid in table.column_names else pa.nulls(table.num_rows, pa.int64()),
    }
    return canonical("trades", cols, table["_row"])


def load_tardis_quotes(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    ts, avail = _times(ctx, table)
    cols: dict[str, object] = {"ts_event": ts, "available_at": avail, "instrument": _instrument(ctx, table)}
    for canon, default in (("bid_price", "bid_price"), ("bid_size", "bid_amount"), ("ask_price", "ask_price"), ("ask_size", "ask_amount")):
        name = ctx.column(canon, default)
        cols[canon] = to_float64(column(table, name, ctx, canon), name, ctx)
    return canonical("quotes", cols, table["_row"])


class SnapshotOptions(StrictModel):
    """``depth``: keep only the best ``depth`` levels per side (default: all in the file)."""

    depth: int | None = None


def load_tardis_book_snapshot(ctx: LoadContext) -> pa.Table:
    opts = ctx.options(SnapshotOptions)
    table = read_any(ctx)
    ts, avail = _times(ctx, table)
    levels: dict[tuple[int, int], dict[str, str]] = {}
    for name in table.column_names:
        m = _LEVEL.match(name)
        if m:
            side = 1 if m.group(1) == "bids" else -1
            levels.setdefault((side, int(m.group(2))), {})[m.group(3)] = name
    if not levels:
        ctx.fail("no asks[i].price / bids[i].amount columns: not a Tardis book_snapshot file")
    keys = sorted(k for k in levels if opts.depth is None or k[1] < opts.depth)
    keys = sorted(keys, key=lambda k: (-k[0], k[1]))  # bids best..worst, then asks best..worst
    n = table.num_rows
    price = np.empty((n, len(keys)))
    size = np.empty((n, len(keys)))
    for j, key in enumerate(keys):
        names = levels[key]
        if set(names) != {"price", "amount"}:
            ctx.fail(f"level {key} lacks its price or amount column")
        price[:, j] = to_float64(column(table, names["price"], ctx), names["price"], ctx).to_numpy(zero_copy_only=False)
        size[:, j] = to_float64(column(table, names["amount"], ctx), names["amount"], ctx).to_numpy(zero_copy_only=False)
    sides = np.tile(np.array([k[0] for k in keys], dtype=np.int8), n)
    row_idx = np.repeat(np.arange(n), len(keys))
    p, s = price.ravel(), size.ravel()
    present = ~np.isnan(p)
    half_empty = present & np.isnan(s)
    if half_empty.any():
        i = int(row_idx[np.argmax(half_empty)])
        ctx.fail("a book level has a price but no amount", row=i)
    empty = int((~present).sum())
    if empty:
        first = int(row_idx[np.argmax(~present)])
        ctx.report.add("empty_levels", empty, ctx.where(first), "book levels without a price (thin book)", "left out")
    rows = table["_row"].to_numpy()[row_idx[present]]
    inst = _instrument(ctx, table)
    cols = {
        "ts_event": ts[row_idx[present]],
        "available_at": avail[row_idx[present]],
        "instrument": inst if isinstance(inst, str) else inst.take(pa.array(row_idx[present])),
        "seq": rows.astype(np.int64),
        "side": sides[present],
        "price": p[present],
        "size": s[present],
        "is_snapshot": True,
    }
    return canonical("book", cols, rows)


def message_seq(keys: list[np.ndarray]) -> np.ndarray:
    """Counter that increments whenever any key differs from the previous row's."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.cumsum(change).astype(np.int64) - 1


def load_tardis_incremental_l2(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    ts, avail = _times(ctx, table)
    snap = to_bool(column(table, ctx.column("is_snapshot", "is_snapshot"), ctx, "is_snapshot"), "is_snapshot", ctx)
    snap_np = snap.to_numpy(zero_copy_only=False)
    p, s, sd = ctx.column("price", "price"), ctx.column("size", "amount"), ctx.column("side", "side")
    cols = {
        "ts_event": ts,
        "available_at": avail,
        "instrument": _instrument(ctx, table),
        "seq": message_seq([ts, avail, snap_np]),
        "side": to_side(column(table, sd, ctx, "side"), sd, ctx),
        "price": to_float64(column(table, p, ctx, "price"), p, ctx),
        "size": to_float64(column(table, s, ctx, "size"), s, ctx),
        "is_snapshot": snap,
    }
    return canonical("book", cols, table["_row"])
