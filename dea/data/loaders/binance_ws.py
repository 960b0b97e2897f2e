"""Binance raw websocket captures -> canonical ``book`` / ``quotes`` / ``trades`` tables.

A capture line is ``<local receive ns> <raw JSON>`` (hftbacktest's collector format): REST depth
snapshots (``lastUpdateId``), combined-stream ``depthUpdate`` diffs, ``bookTicker`` and
``trade`` messages, for spot, USDT-M and COIN-M. ``available_at`` is the receive time;
``ts_event`` the exchange's transaction time ``T`` (else event time ``E``, else the receive time
for messages that carry neither, such as spot's bookTicker).

Book rows (application order): a snapshot block (``is_snapshot``, ``seq = lastUpdateId``) resets
the book; diff rows carry ``seq = u``; size 0 deletes a level. Diffs received before their
snapshot are emitted after it, stamped with the snapshot's receive time (only then could the
resulting book be known). Sequence validation (see :mod:`dea.book.capture`): a gap resynchronises
from the next snapshot, and the book is marked unknown in between by a **gap marker row**
(``is_snapshot`` True, ``side`` 0, price/size NaN, ``seq`` -1; the replay clears the book
there); with no later snapshot :class:`~dea.errors.SequenceGapError` names the file, line and
update ids. A file without any snapshot (``*_20240809`` continues ``*_20240808``) cannot start a
book alone: give its predecessors in ``options.previous`` and the book at the boundary is carried
over as a snapshot block stamped with the last earlier event's time (by default the
predecessors are found by file name, see :class:`BinanceWsOptions`).

Trades: ``side`` is the aggressor from ``m`` (buyer is maker -> sell aggressor -> -1).

Counts (messages by kind, gaps, resyncs, dropped diffs, bookTicker cross-check; over the whole
stream read, predecessors included) are attached to the returned table's schema metadata under
``b"dea.capture_report"`` (JSON).

The streaming parser for the live feed is :func:`dea.book.binance.parse_binance_message`
(re-exported here); this module's batch path uses the byte scanner in :mod:`dea.book.scan`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import ValidationError

from dea.book.binance import parse_binance_message, parse_capture_line
from dea.config.base import StrictModel
from dea.errors import ConfigError, DataError, SequenceGapError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["BinanceWsOptions", "load_capture", "parse_binance_message", "parse_capture_line"]

KINDS = ("book", "quotes", "trades")


class BinanceWsOptions(StrictModel):
    """``options`` of a ``binance_ws`` source.

    ``market``: sequencing rules (``auto``: futures when diffs carry ``pu``).
    ``previous`` (book only): capture files that precede this one (oldest first; relative to its
    folder), read as one continuous stream so a file without a snapshot gets its starting book.
    ``auto`` (default): only when this file holds no depth snapshot, the nearest files in the
    same folder whose names share its prefix up to the last ``_`` and sort before it, back to
    the first one that holds a snapshot (``cm_btcusd_perp_20240809.gz`` ->
    ``cm_btcusd_perp_20240808.gz``). ``[]``: never chain (a snapshot-less file is refused).
    ``cache_dir``: keep the parsed columnar form there (keyed by content fingerprint).
    ``ticker_check``: compare the rebuilt touch with bookTicker after every diff and ``report``
    the mismatches, raise on any (``error``) or skip it (``off``).
    """

    market: Literal["auto", "futures", "spot"] = "auto"
    previous: list[str] | Literal["auto"] = "auto"
    cache_dir: str | None = None
    ticker_check: Literal["report", "error", "off"] = "report"


def _options(options: dict[str, Any] | None, path: Path) -> BinanceWsOptions:
    try:
        return BinanceWsOptions.model_validate(dict(options or {}))
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<options>'}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        )
        raise ConfigError(f"{path}: bad binance_ws options: {msgs}") from None


def load_capture(path: Path, kind: str, instrument: str | None, options: dict[str, Any] | None = None) -> "pa.Table":
    """Load one capture file as the canonical ``kind`` table (``book``, ``quotes`` or ``trades``).

    ``instrument`` names the rows (default: the capture's symbol, e.g. ``BTCUSDT``).
    """
    import pyarrow as pa

    from dea.book.capture import EV_DIFF, EV_GAP, EV_SNAPSHOT, cached_capture

    path = Path(path)
    if kind in ("mark", "funding"):
        from dea.data.loaders.binance_mark import mark_stream_table

        return mark_stream_table(path, kind, instrument, options)
    if kind not in KINDS:
        raise ConfigError(f"{path}: binance_ws captures hold {list(KINDS)} (and mark/funding from markPriceUpdate), not {kind!r}")
    opts = _options(options, path)
    files = book_files(path, options) if kind == "book" else [path]
    # trades and quotes do not depend on the book: a depth gap must not refuse them
    parsed = cached_capture(files, Path(opts.cache_dir) if opts.cache_dir else None, opts.market, kind == "book")
    target = len(files) - 1
    name = instrument or parsed.symbol
    if not name:
        raise DataError(f"{path}: the capture names no symbol; set the source's instrument")
    report: dict[str, Any] = dict(parsed.report)
    report["file"] = str(path)

    if kind == "quotes":
        sel = parsed.tk_file == target
        cols = {
            "ts_event": parsed.tk_ts[sel],
            "available_at": parsed.tk_time[sel],
            "bid_price": parsed.price_float(parsed.tk_bpx[sel]),
            "bid_size": parsed.tk_bsz[sel],
            "ask_price": parsed.price_float(parsed.tk_apx[sel]),
            "ask_size": parsed.tk_asz[sel],
        }
        return _table("quotes", cols, name, report)
    if kind == "trades":
        sel = parsed.tr_file == target
        cols = {
            "ts_event": parsed.tr_ts[sel],
            "available_at": parsed.tr_time[sel],
            "price": parsed.price_float(parsed.tr_px[sel]),
            "size": parsed.tr_sz[sel],
            "side": parsed.tr_side[sel].astype(np.int8),
            "trade_id": parsed.tr_id[sel],
        }
        return _table("trades", cols, name, report)

    # ---------------------------------------------------------------- book
    in_target = np.flatnonzero(parsed.ev_src_file == target)
    first = int(in_target[0]) if in_target.size else len(parsed.ev_kind)
    carried = None
    if first > 0:
        carried = _carried_snapshot(parsed, first)
    has_snapshot = bool(np.any(parsed.ev_kind[in_target] == EV_SNAPSHOT)) or carried is not None
    if not has_snapshot and report.get("depth_diffs", 0) > 0:
        raise SequenceGapError(
            f"{path}: no depth snapshot in the file nor in an earlier capture of the same stream: the book "
            "cannot be built from diffs alone; give the preceding capture file(s) in options.previous"
        )
    if opts.ticker_check != "off":
        report.update(_ticker_report(parsed, opts.ticker_check, path))

    ev = in_target
    kinds = parsed.ev_kind[ev]
    counts = np.where(kinds == EV_GAP, 1, parsed.ev_lv1[ev] - parsed.ev_lv0[ev])
    rows_ev = np.repeat(np.arange(len(ev)), counts)
    offset = np.arange(rows_ev.size) - np.repeat(np.cumsum(counts) - counts, counts)
    lv = parsed.ev_lv0[ev][rows_ev] + offset
    is_gap = kinds[rows_ev] == EV_GAP
    lv_safe = np.where(is_gap, 0, lv)
    price = np.where(is_gap, np.nan, parsed.price_float(parsed.lv_px[lv_safe]) if parsed.lv_px.size else np.nan)
    size = np.where(is_gap, np.nan, parsed.lv_sz[lv_safe] if parsed.lv_sz.size else np.nan)
    side = np.where(is_gap, 0, parsed.lv_side[lv_safe] if parsed.lv_side.size else 0).astype(np.int8)
    cols = {
        "ts_event": parsed.ev_ts[ev][rows_ev],
        "available_at": parsed.ev_time[ev][rows_ev],
        "seq": parsed.ev_seq[ev][rows_ev],
        "side": side,
        "price": price,
        "size": size,
        "is_snapshot": kinds[rows_ev] != EV_DIFF,
    }
    if carried is not None:
        cols = {k: np.concatenate([carried[k], v]) for k, v in cols.items()}
        report["carried_snapshot_levels"] = int(len(carried["price"]))
    report["gap_markers"] = int(is_gap.sum())
    return _table("book", cols, name, report)


def book_files(path: Path, options: dict[str, Any] | None = None) -> list[Path]:
    """The files a ``book`` source reads, in order: the earlier captures ``options.previous``
    chains (see :class:`BinanceWsOptions`), then ``path`` (one continuous stream)."""
    path = Path(path)
    return _previous_files(path, _options(options, path).previous) + [path]


def capture_market(path: Path, options: dict[str, Any] | None = None) -> str:
    """The sequencing rules ``options.market`` names for the capture at ``path``."""
    return _options(options, Path(path)).market


def _has_snapshot(path: Path) -> bool:
    from dea.book.capture import read_bytes

    return b'"lastUpdateId"' in read_bytes(path)


def _previous_files(path: Path, previous: list[str] | str) -> list[Path]:
    """The files to read before ``path`` (see :class:`BinanceWsOptions`)."""
    if previous != "auto":
        return [(path.parent / p) if not Path(p).is_absolute() else Path(p) for p in previous]
    if "_" not in path.name or _has_snapshot(path):
        return []
    prefix = path.name.rsplit("_", 1)[0] + "_"
    earlier = sorted(p for p in path.parent.glob(f"{prefix}*") if p.is_file() and p.name < path.name)
    chain: list[Path] = []
    for p in reversed(earlier):
        chain.insert(0, p)
        if _has_snapshot(p):
            return chain
    return []  # nothing to start the book from: the caller reports the missing snapshot


def _carried_snapshot(parsed: Any, upto: int) -> dict[str, np.ndarray] | None:
    """The book after the earlier files' events, as a snapshot block (None if it is not valid)."""
    from dea.book.replay import book_after

    bid, ask, valid = book_after(
        parsed.ev_kind, parsed.ev_lv0, parsed.ev_lv1, parsed.lv_idx, parsed.lv_side, parsed.lv_sz,
        len(parsed.level_price), upto,
    )
    if not valid:
        return None
    bi = np.flatnonzero(bid > 0)[::-1]
    ai = np.flatnonzero(ask > 0)
    n = len(bi) + len(ai)
    seq = int(parsed.ev_seq[:upto][parsed.ev_kind[:upto] != 0][-1])
    t = int(parsed.ev_time[upto - 1])
    return {
        "ts_event": np.full(n, int(parsed.ev_ts[upto - 1]), np.int64),
        "available_at": np.full(n, t, np.int64),
        "seq": np.full(n, seq, np.int64),
        "side": np.concatenate([np.ones(len(bi), np.int8), -np.ones(len(ai), np.int8)]),
        "price": np.concatenate([parsed.level_price[bi], parsed.level_price[ai]]),
        "size": np.concatenate([bid[bi], ask[ai]]),
        "is_snapshot": np.ones(n, bool),
    }


def _ticker_report(parsed: Any, policy: str, path: Path) -> dict[str, Any]:
    from dea.book.checks import check_book_tickers
    from dea.features.orderbook import capture_panel_fields

    clock = np.array([int(parsed.ev_time[-1]) if parsed.ev_time.size else 0], np.int64)
    _, info = capture_panel_fields(parsed, clock)
    chk = check_book_tickers(parsed, info["event_top"])
    if chk.mismatches and policy == "error":
        raise DataError(f"{path}: {chk.mismatches} of {chk.checked} diffs leave a touch that disagrees with bookTicker; first: {chk.first_mismatch}")
    return {
        "ticker_checked_diffs": chk.checked,
        "ticker_mismatches": chk.mismatches,
        "ticker_unchecked_diffs": chk.unchecked,
        "crossed_books": info["crossed_books"],
    }


def _table(kind: str, cols: dict[str, np.ndarray], instrument: str, report: dict[str, Any]) -> "pa.Table":
    import pyarrow as pa

    from dea.data.schema import SCHEMAS

    schema = SCHEMAS[kind]
    n = len(next(iter(cols.values())))
    arrays = []
    for f in schema:
        if f.name == "instrument":
            arrays.append(pa.repeat(pa.scalar(instrument, pa.string()), n))
        else:
            arrays.append(pa.array(np.asarray(cols[f.name]), type=f.type))
    meta = {b"dea.capture_report": json.dumps(report, sort_keys=True).encode()}
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(meta))
