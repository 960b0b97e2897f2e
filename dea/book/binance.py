"""One raw Binance message -> one typed event (the live websocket feed and the reference parser).

Handles the combined-stream envelope (``{"stream": ..., "data": {...}}``) and bare payloads, for
spot, USDT-M and COIN-M: ``depthUpdate`` diffs, ``bookTicker`` (spot's has no ``e``), ``trade``
and REST depth snapshots (``lastUpdateId``). Anything else (subscription acks, other streams)
returns ``None``: it carries no book information. Malformed JSON or a recognised message that
lacks a required field raises :class:`~dea.errors.DataFormatError` naming what is wrong.

numpy/stdlib/orjson only: serving imports this. The batch loader uses the much faster byte
scanner in :mod:`dea.book.scan`; tests hold the two to the same output on the real captures.
"""

from __future__ import annotations

from typing import Any

import orjson

from dea.book.events import BookTicker, DepthDiff, DepthSnapshot, Event, Level, Trade
from dea.errors import DataFormatError

_MS = 1_000_000


def _levels(raw: Any, where: str, name: str) -> tuple[Level, ...]:
    try:
        return tuple([(float(p), float(q)) for p, q in raw])
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}: field {name!r} is not a list of [price, size] strings ({exc})") from None


def _need(d: dict[str, Any], keys: tuple[str, ...], what: str, where: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise DataFormatError(f"{where}: {what} message lacks field(s) {missing}")


def _stamp(d: dict[str, Any], available_at: int) -> int:
    """Exchange time in ns: transaction time T, else event time E, else the receive time."""
    ms = d.get("T", d.get("E"))
    return available_at if ms is None else int(ms) * _MS


_TICKER_KEYS = ("u", "b", "B", "a", "A")
_DIFF_KEYS = ("U", "u", "b", "a")
_TRADE_KEYS = ("t", "p", "q", "m")


def parse_binance_message(raw: bytes | str, available_at: int, where: str = "<message>") -> Event | None:
    """Decode one Binance message received at ``available_at`` (int ns) into a typed event.

    ``where`` names the message in errors (the loader passes ``"file, line N"``).
    """
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataFormatError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(msg).__name__}")
    if "lastUpdateId" in msg:
        _need(msg, ("bids", "asks"), "depth snapshot", where)
        return DepthSnapshot(
            available_at,
            _stamp(msg, available_at),
            int(msg["lastUpdateId"]),
            _levels(msg["bids"], where, "bids"),
            _levels(msg["asks"], where, "asks"),
        )
    d = msg.get("data", msg)
    if not isinstance(d, dict):
        return None
    kind = d.get("e")
    # Required fields are read directly (a KeyError falls back to _need, which names every
    # missing field); the exchange stamp is _stamp inlined. This runs for every market message.
    try:
        if kind == "bookTicker" or (kind is None and "B" in d and "A" in d and "u" in d):
            try:
                u, b, bq, a, aq = d["u"], d["b"], d["B"], d["a"], d["A"]
            except KeyError:
                _need(d, _TICKER_KEYS, "bookTicker", where)
                raise
            ms = d.get("T", d.get("E"))
            return BookTicker(
                available_at,
                available_at if ms is None else int(ms) * _MS,
                str(d.get("s", "")),
                int(u),
                float(b),
                float(bq),
                float(a),
                float(aq),
            )
        if kind == "trade":
            try:
                tid, price, qty, maker = d["t"], d["p"], d["q"], d["m"]
            except KeyError:
                _need(d, _TRADE_KEYS, "trade", where)
                raise
            ms = d.get("T", d.get("E"))
            if ms is None and "T" not in d and "E" not in d:
                raise DataFormatError(f"{where}: trade message has neither T nor E")
            return Trade(
                available_at,
                available_at if ms is None else int(ms) * _MS,
                str(d.get("s", "")),
                int(tid),
                float(price),
                float(qty),
                -1 if maker else 1,
            )
        if kind == "depthUpdate":
            try:
                first, final, bids, asks = d["U"], d["u"], d["b"], d["a"]
            except KeyError:
                _need(d, _DIFF_KEYS, "depthUpdate", where)
                raise
            ms = d.get("T", d.get("E"))
            return DepthDiff(
                available_at,
                available_at if ms is None else int(ms) * _MS,
                str(d.get("s", "")),
                int(first),
                int(final),
                int(d.get("pu", -1)),
                _levels(bids, where, "b"),
                _levels(asks, where, "a"),
            )
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}: {kind or 'bookTicker'} message has a malformed field ({exc})") from None
    return None


def parse_capture_line(line: bytes, where: str = "<line>") -> Event | None:
    """Decode one capture line ``b"<receive ns> <raw JSON>"`` (hftbacktest's collector format)."""
    head, sep, body = line.partition(b" ")
    if not sep or not head.isdigit():
        raise DataFormatError(f"{where}: expected '<receive ns> <json>', got {line[:40]!r}")
    return parse_binance_message(body, int(head), where)
