"""The mark-price stream of a Binance futures websocket capture -> ``mark`` and ``funding``.

Capture lines are ``<local receive ns> <raw JSON>`` (see :mod:`dea.data.loaders.binance_ws`);
``markPriceUpdate`` messages (``<symbol>@markPrice[@1s]``, plain or wrapped in a combined-stream
``{"stream": ..., "data": {...}}``) carry ``E`` (event ms), ``s`` (symbol), ``p`` (mark price),
``i`` (index price), ``r`` (the funding rate that will settle at ``T``) and ``T`` (next funding
time, ms). Other messages are ignored here.

- ``mark``: one row per message: ``ts_event = E``, ``available_at`` = the receive time (never
  before ``E``), ``mark_price = p``, ``index_price = i``.
- ``funding``: one row per settlement instant ``T`` seen in the stream, with the last rate
  received before ``T`` (the rate that settled); ``available_at`` = ``max(T, that message's
  receive time)``. A ``T`` the capture ends before reaching is not settled yet and is left out
  (reported as ``unsettled``). ``options.interval`` (default ``8h``) is the accrual period.

Format ``binance_mark_stream``; ``binance_ws`` sources of kind ``mark`` / ``funding`` are read
here too (:func:`mark_stream_table`).
"""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pyarrow as pa

from pathlib import Path
from typing import Any

from dea.config.base import StrictModel, duration_field
from dea.data.loaders.build import canonical
from dea.data.loaders.context import LoadContext
from dea.data.loaders.tabular import read_bytes
from dea.timeutil import NS_PER_MS, parse_duration


class MarkStreamOptions(StrictModel):
    interval: str = "8h"
    _dur = duration_field("interval")

_TAG = b"markPriceUpdate"


def _messages(ctx: LoadContext) -> list[tuple[int, int, dict]]:
    """(line number, receive ns, message) of every markPriceUpdate line."""
    try:
        data = read_bytes(ctx.path)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:  # pragma: no cover - read_bytes wraps
        ctx.fail(f"cannot read capture: {exc}")
    out = []
    for n, line in enumerate(data.splitlines(), start=1):
        if _TAG not in line:
            continue
        head, _, body = line.partition(b" ")
        if not head.isdigit():
            ctx.fail(f"line {n}: expected '<receive ns> <json>', got {line[:40]!r}")
        try:
            msg = json.loads(body)
        except ValueError as exc:
            ctx.fail(f"line {n}: not JSON: {exc}")
        if isinstance(msg, dict) and isinstance(msg.get("data"), dict):
            msg = msg["data"]
        if isinstance(msg, dict) and msg.get("e") == "markPriceUpdate":
            out.append((n, int(head), msg))
    if not out:
        ctx.fail("no markPriceUpdate messages in this capture (subscribe to <symbol>@markPrice)")
    return out


def _num(ctx: LoadContext, msg: dict, key: str, line: int) -> float:
    try:
        return float(msg[key])
    except (KeyError, TypeError, ValueError):
        ctx.fail(f"line {line}: markPriceUpdate field {key!r} is missing or not a number ({msg.get(key)!r})")


def _int(ctx: LoadContext, msg: dict, key: str, line: int) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.fail(f"line {line}: markPriceUpdate field {key!r} is missing or not an integer ({v!r})")
    return v


def mark_stream_table(path: Path, kind: str, instrument: str | None, options: dict[str, Any] | None = None) -> pa.Table:
    """The same table for the ``binance_ws`` reader's calling convention; findings travel as
    ``dea.report.<rule>`` schema metadata."""
    from dea.data.config import SourceConfig
    from dea.data.validate import ValidationReport

    src = SourceConfig(name="capture", kind=kind, format="binance_mark_stream", path=str(path), instrument=instrument, options=dict(options or {}))
    ctx = LoadContext(path=path, src=src, report=ValidationReport("capture", str(path)), kind=kind)
    table = load_mark_stream(ctx)
    meta = {f"dea.report.{i.rule}".encode(): str(i.count).encode() for i in ctx.report.issues}
    return table.replace_schema_metadata(meta) if meta else table


def load_mark_stream(ctx: LoadContext) -> pa.Table:
    opts = ctx.options(MarkStreamOptions)
    ctx.line_offset = 1
    msgs = _messages(ctx)
    if ctx.src.instrument:
        msgs = [m for m in msgs if str(m[2].get("s", "")).lower() == ctx.src.instrument.lower()] or msgs
    lines = np.array([m[0] - 1 for m in msgs], dtype=np.int64)
    recv = np.array([m[1] for m in msgs], dtype=np.int64)
    sym = pa.array([ctx.src.instrument or str(m[2].get("s", "")) for m in msgs], pa.string())
    if ctx.kind == "mark":
        ev = np.array([_int(ctx, m[2], "E", m[0]) for m in msgs], dtype=np.int64) * NS_PER_MS
        cols = {
            "ts_event": ev,
            "available_at": np.maximum(recv, ev) + ctx.lag_ns,
            "instrument": sym,
            "mark_price": np.array([_num(ctx, m[2], "p", m[0]) for m in msgs]),
            "index_price": np.array([_num(ctx, m[2], "i", m[0]) for m in msgs]),
        }
        return canonical("mark", cols, lines)
    nxt = np.array([_int(ctx, m[2], "T", m[0]) for m in msgs], dtype=np.int64) * NS_PER_MS
    rate = np.array([_num(ctx, m[2], "r", m[0]) for m in msgs])
    ev = np.array([_int(ctx, m[2], "E", m[0]) for m in msgs], dtype=np.int64) * NS_PER_MS
    last_seen = int(ev.max())
    keys = np.char.add(np.asarray(sym.to_pylist(), dtype=str), np.char.mod("|%d", nxt))
    # last message per (symbol, T) in arrival order
    order = np.lexsort((recv, keys))
    last = np.r_[keys[order][1:] != keys[order][:-1], True]
    pick = order[last]
    settled = nxt[pick] <= last_seen
    if (~settled).any():
        ctx.report.add("unsettled", int((~settled).sum()), None, "next funding time after the capture's end", "not loaded")
    pick = np.sort(pick[settled])
    if len(pick) == 0:
        ctx.fail("the capture ends before any funding settlement (T) it announces; no settled rate to load")
    t = nxt[pick]
    cols = {
        "ts_event": t,
        "available_at": np.maximum(t, recv[pick]) + ctx.lag_ns,
        "instrument": sym.take(pa.array(pick)),
        "rate": rate[pick],
        "interval_ns": np.full(len(pick), parse_duration(opts.interval), dtype=np.int64),
    }
    return canonical("funding", cols, lines[pick])
