"""Hyperliquid websocket captures (``<receive ns> <raw JSON>`` lines) -> canonical tables.

Hyperliquid's ``l2Book`` channel pushes the *whole* aggregated top of book (``levels[0]`` bids,
``levels[1]`` asks, 20 levels each) on every change, so each message is a snapshot block in the
``book`` table (``seq`` = the book's ``time`` in ms; no diff sequencing to validate) and its touch
a ``quotes`` row. ``trades`` messages carry a list of prints; ``side`` names the aggressor
(``"B"`` buy -> +1, ``"A"`` sell -> -1). ``available_at`` is the receive time, ``ts_event`` the
exchange ``time``.

:func:`parse_hyperliquid_message` (orjson/stdlib only) turns one raw message into typed events
for a live feed; the loader uses it too (these captures are small).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from dea.book.events import DepthSnapshot, Event, Trade
from dea.errors import ConfigError, DataFormatError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["load_capture", "parse_hyperliquid_message"]

_MS = 1_000_000
_SIDES = {"B": 1, "A": -1}


def _levels(raw: Any, where: str) -> tuple[tuple[float, float], ...]:
    try:
        return tuple((float(lv["px"]), float(lv["sz"])) for lv in raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise DataFormatError(f"{where}: l2Book level is not {{px, sz}} strings ({exc})") from None


def parse_hyperliquid_message(raw: bytes | str, available_at: int, where: str = "<message>") -> list[Event]:
    """One raw Hyperliquid message -> typed events (an l2Book snapshot, or one Trade per print).

    Subscription acks and other channels give ``[]``; malformed JSON or a recognised message
    lacking a field raises DataFormatError naming ``where``.
    """
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataFormatError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise DataFormatError(f"{where}: expected a JSON object")
    channel, data = msg.get("channel"), msg.get("data")
    try:
        if channel == "l2Book":
            levels, t = data["levels"], int(data["time"])
            if not isinstance(levels, list) or len(levels) != 2:
                raise DataFormatError(f"{where}: l2Book 'levels' must be [bids, asks]")
            return [DepthSnapshot(available_at, t * _MS, t, _levels(levels[0], where), _levels(levels[1], where))]
        if channel == "trades":
            out: list[Event] = []
            for tr in data:
                side = _SIDES.get(tr["side"])
                if side is None:
                    raise DataFormatError(f"{where}: trade side {tr['side']!r} is not 'B' or 'A'")
                out.append(Trade(available_at, int(tr["time"]) * _MS, str(tr.get("coin", "")), int(tr["tid"]), float(tr["px"]), float(tr["sz"]), side))
            return out
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}: {channel} message lacks or has a malformed field ({exc!r})") from None
    return []


def load_capture(path: Path, kind: str, instrument: str | None, options: dict[str, Any] | None = None) -> "pa.Table":
    """Load a Hyperliquid capture as the canonical ``book``, ``quotes`` or ``trades`` table."""
    import pyarrow as pa

    from dea.data.schema import SCHEMAS

    path = Path(path)
    if options:
        raise ConfigError(f"{path}: hyperliquid captures take no options, got {sorted(options)}")
    if kind not in ("book", "quotes", "trades"):
        raise ConfigError(f"{path}: hyperliquid captures hold book, quotes and trades, not {kind!r}")
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    snaps: list[DepthSnapshot] = []
    trades: list[Trade] = []
    coin = ""
    try:
        with opener(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                head, sep, body = line.partition(b" ")
                if not sep or not head.isdigit():
                    raise DataFormatError(f"{path}, line {n}: expected '<receive ns> <json>'")
                for ev in parse_hyperliquid_message(body, int(head), f"{path}, line {n}"):
                    if isinstance(ev, DepthSnapshot):
                        snaps.append(ev)
                        coin = coin or str(orjson.loads(body)["data"].get("coin", ""))
                    else:
                        trades.append(ev)
                        coin = coin or ev.symbol
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: cannot read capture ({exc})") from None
    name = instrument or coin
    if not name:
        raise DataFormatError(f"{path}: no Hyperliquid l2Book or trades messages found")
    if kind == "trades":
        cols = {
            "ts_event": [t.ts_event for t in trades], "available_at": [t.available_at for t in trades],
            "price": [t.price for t in trades], "size": [t.size for t in trades],
            "side": [t.side for t in trades], "trade_id": [t.trade_id for t in trades],
        }
    elif kind == "quotes":
        two = [s for s in snaps if s.bids and s.asks]
        cols = {
            "ts_event": [s.ts_event for s in two], "available_at": [s.available_at for s in two],
            "bid_price": [s.bids[0][0] for s in two], "bid_size": [s.bids[0][1] for s in two],
            "ask_price": [s.asks[0][0] for s in two], "ask_size": [s.asks[0][1] for s in two],
        }
    else:
        rows = [(s, side, p, q) for s in snaps for side, lv in ((1, s.bids), (-1, s.asks)) for p, q in lv]
        cols = {
            "ts_event": [r[0].ts_event for r in rows], "available_at": [r[0].available_at for r in rows],
            "seq": [r[0].last_update_id for r in rows], "side": [r[1] for r in rows],
            "price": [r[2] for r in rows], "size": [r[3] for r in rows], "is_snapshot": [True] * len(rows),
        }
    n = len(next(iter(cols.values())))
    schema = SCHEMAS[kind]
    arrays = [
        pa.repeat(pa.scalar(name, pa.string()), n) if f.name == "instrument" else pa.array(np.asarray(cols[f.name]), type=f.type)
        for f in schema
    ]
    report = {"file": str(path), "l2book_snapshots": len(snaps), "trades": len(trades)}
    meta = {b"dea.capture_report": json.dumps(report).encode()}
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(meta))
