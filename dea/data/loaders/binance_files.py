"""Binance historical files (not live captures; those are :mod:`dea.data.loaders.binance_ws`).

- ``binance_trades``: Parquet/CSV ``timestamp, trade_id, price, quantity, buyer_maker``;
  ``buyer_maker`` true means the seller was the aggressor (side -1).
- ``binance_quotes``: Parquet/CSV ``timestamp, symbol, ask_size, ask, bid_size, bid``.
- ``binance_depth_csv``: depth snapshot / update CSVs (``symbol, timestamp, first_update_id,
  last_update_id, side, update_type, price, qty, pu``): ``update_type`` ``snap`` rows form the
  snapshot block, ``set`` rows are diffs; ``seq`` is ``last_update_id``. Diff messages are checked
  for continuity (futures: ``pu`` = previous ``u``; spot: ``U`` = previous ``u + 1``; first diff
  after a snapshot must cover ``lastUpdateId``). A break is a ``sequence_gap``: refused unless
  ``options.sequence_gap_policy: report``; the book rebuild must then resynchronise from the
  next snapshot.

These files carry no receive time, so ``available_at = timestamp + publication_lag``; configure
a lag that covers the feed latency you expect.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dea.config.base import StrictModel
from dea.data.loaders.build import canonical, file_stem
from dea.data.loaders.coerce import event_time, to_bool, to_float64, to_int64, to_side
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.tabular import column, first_present, read_any
from dea.errors import SequenceGapError

_NAME = re.compile(r"^binance[-_]([a-z0-9]+)[-_]", re.IGNORECASE)


def _instrument(ctx: LoadContext, table: pa.Table) -> str | pa.Array:
    if ctx.src.instrument:
        return ctx.src.instrument
    mapped = ctx.src.columns.get("instrument")
    if mapped:
        col = column(table, mapped, ctx, "instrument")
        if col.null_count:
            ctx.fail(f"instrument column {mapped!r} has empty cells")
        return col.cast(pa.string()).combine_chunks()
    m = _NAME.match(ctx.path.name)
    if m:
        return m.group(1).upper()
    if "symbol" in table.column_names and table["symbol"].null_count == 0:
        return pc.replace_substring(table["symbol"].cast(pa.string()).combine_chunks(), "/", "")
    return file_stem(ctx.path)


def load_binance_trades(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table, "timestamp", "ms")
    p = ctx.src.columns.get("price") or "price"
    q = ctx.src.columns.get("size") or first_present(table, ["quantity", "qty", "size", "amount"]) or "quantity"
    bm = ctx.src.columns.get("buyer_maker") or first_present(table, ["buyer_maker", "is_buyer_maker", "isBuyerMaker"])
    if bm is not None:
        maker = to_bool(column(table, bm, ctx, "buyer_maker"), bm, ctx).to_numpy(zero_copy_only=False)
        side: object = pa.array(np.where(maker, -1, 1).astype(np.int8))
    elif "side" in table.column_names:
        side = to_side(table["side"], "side", ctx)
    else:
        side = 0
    tid = ctx.src.columns.get("trade_id") or first_present(table, ["trade_id", "id", "tradeId"])
    cols = {
        "ts_event": ts,
        "available_at": ts + ctx.lag_ns,
        "instrument": _instrument(ctx, table),
        "price": to_float64(column(table, p, ctx, "price"), p, ctx),
        "size": to_float64(column(table, q, ctx, "size"), q, ctx),
        "side": side,
        "trade_id": to_int64(column(table, tid, ctx), tid, ctx) if tid else pa.nulls(table.num_rows, pa.int64()),
    }
    return canonical("trades", cols, table["_row"])


def load_binance_quotes(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table, "timestamp", "ms")
    cols: dict[str, object] = {"ts_event": ts, "available_at": ts + ctx.lag_ns, "instrument": _instrument(ctx, table)}
    for canon, candidates in (
        ("bid_price", ["bid", "bid_price", "best_bid_price"]),
        ("bid_size", ["bid_size", "bid_qty", "best_bid_qty"]),
        ("ask_price", ["ask", "ask_price", "best_ask_price"]),
        ("ask_size", ["ask_size", "ask_qty", "best_ask_qty"]),
    ):
        name = ctx.src.columns.get(canon) or first_present(table, candidates) or candidates[0]
        cols[canon] = to_float64(column(table, name, ctx, canon), name, ctx)
    return canonical("quotes", cols, table["_row"])


class DepthOptions(StrictModel):
    """``sequence_gap_policy``: ``error`` refuses a broken update-id chain, ``report`` keeps the
    rows and reports each break (the book rebuild resynchronises at the next snapshot)."""

    sequence_gap_policy: Literal["error", "report"] = "error"


def sequence_breaks(first: np.ndarray, last: np.ndarray, prev: np.ndarray, snap: np.ndarray) -> np.ndarray:
    """Per message (arrays are per message, in order): True where the update-id chain breaks.

    A snapshot message resets the chain. A diff right after a snapshot must cover it
    (``U <= lastUpdateId + 1 <= u``, or ``u < lastUpdateId``: stale, harmless); later diffs must
    continue the previous one (``pu == previous u`` where ``pu`` is given, else ``U == previous u + 1``).
    """
    n = len(first)
    breaks = np.zeros(n, dtype=bool)
    if n < 2:
        return breaks
    prev_last = last[:-1]
    after_snap = snap[:-1] & ~snap[1:]
    f, u, pu = first[1:], last[1:], prev[1:]
    has_pu = pu >= 0
    chained = np.where(has_pu, pu == prev_last, f == prev_last + 1)
    covers = ((f <= prev_last + 1) & (u >= prev_last)) | (u < prev_last)
    ok = np.where(after_snap, covers, chained) | snap[1:]
    breaks[1:] = ~ok
    return breaks


def load_binance_depth_csv(ctx: LoadContext) -> pa.Table:
    opts = ctx.options(DepthOptions)
    table = read_any(ctx)
    _, ts = event_time(ctx, table, "timestamp", "ms")
    first = to_int64(column(table, "first_update_id", ctx), "first_update_id", ctx, nullable=False).to_numpy()
    last = to_int64(column(table, "last_update_id", ctx), "last_update_id", ctx, nullable=False).to_numpy()
    if "pu" in table.column_names:
        pu = to_int64(table["pu"], "pu", ctx).fill_null(-1).to_numpy()
    else:
        pu = np.full(len(first), -1, dtype=np.int64)
    utype = pc.utf8_lower(column(table, "update_type", ctx).cast(pa.string())).fill_null("").combine_chunks()
    known = pc.is_in(utype, value_set=pa.array(["snap", "set", "snapshot", "update"])).to_numpy(zero_copy_only=False)
    if not known.all():
        i = int(np.argmax(~known))
        ctx.fail(f"update_type {utype[i].as_py()!r} is not snap/set", row=i)
    snap = pc.is_in(utype, value_set=pa.array(["snap", "snapshot"])).to_numpy(zero_copy_only=False)
    # message boundaries: a change of (first, last, snapshot flag)
    n = len(first)
    start = np.ones(n, dtype=bool)
    if n > 1:
        start[1:] = (first[1:] != first[:-1]) | (last[1:] != last[:-1]) | (snap[1:] != snap[:-1])
    msg = np.flatnonzero(start)
    breaks = sequence_breaks(first[msg], last[msg], pu[msg], snap[msg])
    if breaks.any():
        i = int(msg[np.argmax(breaks)])
        detail = f"{int(breaks.sum())} depth messages do not continue the previous update id"
        if opts.sequence_gap_policy == "error":
            ctx.fail(f"depth sequence gap: {detail} (first_update_id {first[i]}, pu {pu[i]})", row=i, cls=SequenceGapError)
        ctx.report.add("sequence_gap", int(breaks.sum()), ctx.where(i), detail, "reported; resync at next snapshot")
    cols = {
        "ts_event": ts,
        "available_at": ts + ctx.lag_ns,
        "instrument": _instrument(ctx, table),
        "seq": last,
        "side": to_side(column(table, "side", ctx), "side", ctx),
        "price": to_float64(column(table, "price", ctx), "price", ctx),
        "size": to_float64(column(table, "qty", ctx), "qty", ctx),
        "is_snapshot": pa.array(snap),
    }
    return canonical("book", cols, table["_row"])
