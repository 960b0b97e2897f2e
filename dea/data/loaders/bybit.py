"""Bybit ``orderbook.N`` websocket recordings (JSON lines, optionally zipped) -> L2 book rows.

Each line is ``{"topic", "type": "snapshot"|"delta", "ts", "cts", "data": {"s", "b": [[price,
size], ...], "a": [...], "u", "seq"}}``; prices and sizes are strings. ``ts_event`` is ``cts``
(matching-engine time; ``ts`` where absent), ``available_at = ts + publication_lag`` (``ts`` is
when Bybit published the message: no receive time is recorded). ``seq`` is the update id ``u``,
which must grow by exactly one between deltas; a snapshot resets it. A break is a
``sequence_gap`` (refused unless ``options.sequence_gap_policy: report``). Parsing is vectorised
with ``pyarrow.json`` (no Python loop over levels).
"""

from __future__ import annotations

import io
import zipfile
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from dea.config.base import StrictModel
from dea.data.loaders.build import canonical
from dea.data.loaders.coerce import to_float64
from dea.data.loaders.context import LoadContext
from dea.data.loaders.tabular import read_bytes, strip_bom
from dea.errors import SequenceGapError


MAX_MS = 9_000_000_000_000  # year 2255: beyond it a "millisecond" stamp is garbage


class BybitOptions(StrictModel):
    sequence_gap_policy: Literal["error", "report"] = "error"


def _payload(ctx: LoadContext) -> bytes:
    with ctx.path.open("rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"PK":
        try:
            with zipfile.ZipFile(ctx.path) as zf:
                names = sorted(n for n in zf.namelist() if not n.endswith("/"))
                if not names:
                    ctx.fail("zip archive is empty")
                return b"".join(zf.read(n).rstrip(b"\n") + b"\n" for n in names)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            ctx.fail(f"corrupt zip archive: {exc}")
    return read_bytes(ctx.path)


def _levels(data: pa.StructArray, side: str, ctx: LoadContext) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(message index per level, price text, size text) for one side."""
    lists = data.field(side)
    if not pa.types.is_list(lists.type) or not pa.types.is_list(lists.type.value_type):
        ctx.fail(f"data.{side} is not a list of [price, size] pairs")
    counts = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    pairs = pc.list_flatten(lists)
    plen = pc.list_value_length(pairs).to_numpy(zero_copy_only=False)
    if len(plen) and not (plen == 2).all():
        msg = int(np.repeat(np.arange(len(counts)), counts)[np.argmax(plen != 2)])
        ctx.fail(f"data.{side} has a level that is not a [price, size] pair", row=msg)
    flat = pc.list_flatten(pairs)
    msg_idx = np.repeat(np.arange(len(counts)), counts)
    return msg_idx, flat.take(pa.array(np.arange(0, len(flat), 2))), flat.take(pa.array(np.arange(1, len(flat), 2)))


def load_bybit_ob(ctx: LoadContext) -> pa.Table:
    opts = ctx.options(BybitOptions)
    ctx.line_offset = 1
    raw = strip_bom(_payload(ctx), ctx)
    if not raw.strip():
        ctx.fail("file is empty")
    try:
        table = pajson.read_json(io.BytesIO(raw), read_options=pajson.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        ctx.fail(f"not valid JSON lines: {str(exc).splitlines()[0][:200]}")
    for name in ("type", "ts", "data"):
        if name not in table.column_names:
            ctx.fail(f"messages lack the {name!r} field: not a Bybit orderbook recording")
    data = table["data"].combine_chunks()
    if not pa.types.is_struct(data.type) or {"b", "a", "u"} - {data.type.field(i).name for i in range(data.type.num_fields)}:
        ctx.fail("data lacks b / a / u: not a Bybit orderbook recording")
    if data.null_count or table["ts"].null_count or table["type"].null_count:
        ctx.fail("a message lacks data, ts or type")
    n_msg = table.num_rows
    mtype = table["type"].combine_chunks().cast(pa.string())
    known = pc.is_in(mtype, value_set=pa.array(["snapshot", "delta"])).to_numpy(zero_copy_only=False)
    if not known.all():
        i = int(np.argmax(~known))
        ctx.fail(f"message type {mtype[i].as_py()!r} is not snapshot/delta", row=i)
    snap = pc.equal(mtype, "snapshot").to_numpy(zero_copy_only=False)
    try:
        ts_ms = table["ts"].combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        cts = table["cts"].combine_chunks().cast(pa.int64()) if "cts" in table.column_names else None
        u = data.field("u").cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ctx.fail("ts / cts / u are not integers")
    if u.null_count:
        ctx.fail("a message lacks its update id u", row=int(np.argmax(u.is_null().to_numpy(zero_copy_only=False))))
    u_np = u.to_numpy(zero_copy_only=False)
    out_of_range = (ts_ms < 0) | (ts_ms > MAX_MS)
    if out_of_range.any():
        ctx.fail("ts is not a millisecond epoch in range", row=int(np.argmax(out_of_range)))
    ev_ms = ts_ms if cts is None else np.where(cts.is_null().to_numpy(zero_copy_only=False), ts_ms, cts.fill_null(0).to_numpy(zero_copy_only=False))
    if ((ev_ms < 0) | (ev_ms > MAX_MS)).any():
        ctx.fail("cts is not a millisecond epoch in range", row=int(np.argmax((ev_ms < 0) | (ev_ms > MAX_MS))))
    breaks = np.zeros(n_msg, dtype=bool)
    if n_msg > 1:
        breaks[1:] = ~snap[1:] & (u_np[1:] != u_np[:-1] + 1)
    if not snap[0]:
        ctx.report.add("no_initial_snapshot", 1, ctx.where(0), "the recording starts with a delta", "reported")
    if breaks.any():
        i = int(np.argmax(breaks))
        detail = f"{int(breaks.sum())} deltas do not continue the previous update id"
        if opts.sequence_gap_policy == "error":
            ctx.fail(f"order-book sequence gap: {detail} (u {u_np[i]} after {u_np[i - 1]})", row=i, cls=SequenceGapError)
        ctx.report.add("sequence_gap", int(breaks.sum()), ctx.where(i), detail, "reported; resync at next snapshot")
    parts = []
    for side, sign in (("b", 1), ("a", -1)):
        idx, ptxt, stxt = _levels(data, side, ctx)
        parts.append((idx, np.full(len(idx), sign, dtype=np.int8), to_float64(ptxt, f"data.{side}.price", ctx), to_float64(stxt, f"data.{side}.size", ctx)))
    idx = np.concatenate([p[0] for p in parts])
    order = np.argsort(idx, kind="stable")  # message order; bids before asks within a message
    idx = idx[order]
    side_arr = np.concatenate([p[1] for p in parts])[order]
    price = np.concatenate([p[2].to_numpy(zero_copy_only=False) for p in parts])[order]
    size = np.concatenate([p[3].to_numpy(zero_copy_only=False) for p in parts])[order]
    sym = data.field("s").cast(pa.string()) if "s" in {data.type.field(i).name for i in range(data.type.num_fields)} else None
    instrument: object = ctx.src.instrument or (sym.take(pa.array(idx)) if sym is not None and sym.null_count == 0 else ctx.path.name.split("_")[0].upper())
    cols = {
        "ts_event": ev_ms[idx] * 1_000_000,
        "available_at": ts_ms[idx] * 1_000_000 + ctx.lag_ns,
        "instrument": instrument,
        "seq": u_np[idx],
        "side": side_arr,
        "price": price,
        "size": size,
        "is_snapshot": snap[idx],
    }
    return canonical("book", cols, idx.astype(np.int64))
