"""Binance capture files -> a validated, sequenced columnar form (the replay cache).

Pipeline: read (gzip by magic bytes) -> :func:`dea.book.scan.scan_capture` (validating byte scan)
-> per-kind arrays -> batch sequencing under the rules of :mod:`dea.book.sequencing` (compiled
with numba from the same source the live :class:`~dea.book.l2.SyncedBook` runs) -> dense level
index. The result, :class:`ParsedCapture`, is what the replay kernel consumes and what is cached
as ``.npz`` keyed by the files' content fingerprint, so a capture is parsed once.

Sequencing (file order = arrival order): diffs before a snapshot are buffered; a snapshot resets
the book and the buffered diffs are applied after it (stale ones dropped), *stamped with the
snapshot's receive time* because only then could the book they produce be known. A gap (a diff
that does not continue the previous one, or a first diff that does not straddle the snapshot)
invalidates the book (a ``GAP`` event) until the next snapshot; if no snapshot follows in the
files, :class:`~dea.errors.SequenceGapError` names the file, line and update ids. Files given
together are one continuous stream (``*_20240809`` continues ``*_20240808`` with no snapshot).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib

try:  # zlib-ng (a faster drop-in, present with aiohttp's speedups) when installed
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - plain zlib is always there
    _zlib = zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numba as nb
import numpy as np

from dea.book import scan
from dea.book import sequencing as seqrules
from dea.book.formulas import SIZE_SCALE
from dea.errors import DataFormatError, SequenceGapError

CACHE_VERSION = 2
EV_GAP = 0
EV_SNAPSHOT = 1
EV_DIFF = 2
DENSE_LIMIT = 1 << 20  # dense tick-indexed book when the price span fits; else rank-compressed

_jit = nb.njit(cache=True, nogil=True)
_is_stale = _jit(seqrules.is_stale)
_bridges = _jit(seqrules.bridges_snapshot)
_follows = _jit(seqrules.follows)

_A_BUFFER = 0
_A_STALE = 1
_A_APPLY = 2
_A_GAP = 3
_S_NEEDS = 0
_S_FIRST = 1
_S_SYNCED = 2


@_jit
def _diff_action(state, mode, snap_id, last, U, u, pu):
    if state == _S_NEEDS:
        return _A_BUFFER
    if state == _S_FIRST:
        if _is_stale(mode, snap_id, u):
            return _A_STALE
        return _A_APPLY if _bridges(mode, snap_id, U, u) else _A_GAP
    return _A_APPLY if _follows(mode, last, U, pu) else _A_GAP


@_jit
def sequence_book(kind, recv, U, u, pu, mode, strict=True):
    """Batch sequencer over book messages in arrival order (kind: scan.K_SNAPSHOT / K_DIFF).

    Returns (ev_kind, ev_msg, ev_time, ev_at, n_ev, gaps, resyncs, stale, err_msg, err_expected,
    err_state) where ``ev_at`` is the message being processed when the event was applied (a
    snapshot, for buffered diffs) and ``err_msg >= 0`` marks a gap with no later snapshot (only
    when ``strict``; otherwise such a gap leaves the book invalid to the end).
    """
    n = kind.shape[0]
    later = np.zeros(n, np.bool_)
    seen = False
    for i in range(n - 1, -1, -1):
        later[i] = seen
        if kind[i] == scan.K_SNAPSHOT:
            seen = True
    cap = 2 * n + 1
    ev_kind = np.empty(cap, np.int8)
    ev_msg = np.empty(cap, np.int64)
    ev_time = np.empty(cap, np.int64)
    ev_at = np.empty(cap, np.int64)
    n_ev = 0
    buf = np.empty(n, np.int64)
    nbuf = 0
    tmp = np.empty(n, np.int64)
    state = _S_NEEDS
    snap_id = -1
    last = -1
    gaps = 0
    resyncs = 0
    stale = 0
    snapshots = 0
    for i in range(n):
        if kind[i] == scan.K_SNAPSHOT:
            if snapshots > 0 and gaps > resyncs:
                resyncs += 1
            snapshots += 1
            snap_id = u[i]
            last = u[i]
            state = _S_FIRST
            ev_kind[n_ev] = EV_SNAPSHOT
            ev_msg[n_ev] = i
            ev_time[n_ev] = recv[i]
            ev_at[n_ev] = i
            n_ev += 1
            ntmp = nbuf
            tmp[:ntmp] = buf[:nbuf]
            nbuf = 0
            work_from_buffer = True
            todo = ntmp
        else:
            work_from_buffer = False
            todo = 1
        for w in range(todo):
            j = tmp[w] if work_from_buffer else i
            t = max(recv[j], recv[i])
            a = _diff_action(state, mode, snap_id, last, U[j], u[j], pu[j])
            if a == _A_BUFFER:
                buf[nbuf] = j
                nbuf += 1
            elif a == _A_STALE:
                stale += 1
            elif a == _A_APPLY:
                last = u[j]
                state = _S_SYNCED
                ev_kind[n_ev] = EV_DIFF
                ev_msg[n_ev] = j
                ev_time[n_ev] = t
                ev_at[n_ev] = i
                n_ev += 1
            else:
                gaps += 1
                if strict and not later[i]:
                    return ev_kind, ev_msg, ev_time, ev_at, n_ev, gaps, resyncs, stale, j, snap_id if state == _S_FIRST else last, state
                state = _S_NEEDS
                ev_kind[n_ev] = EV_GAP
                ev_msg[n_ev] = j
                ev_time[n_ev] = t
                ev_at[n_ev] = i
                n_ev += 1
                buf[nbuf] = j
                nbuf += 1
    return ev_kind, ev_msg, ev_time, ev_at, n_ev, gaps, resyncs, stale, -1, -1, state


@dataclass
class ParsedCapture:
    """A capture (one or more consecutive files of one symbol) in replay-ready columns.

    Book events are in application order: ``ev_kind`` (EV_SNAPSHOT resets the book to its
    levels, EV_DIFF applies its levels, EV_GAP invalidates the book), ``ev_time`` (available_at:
    when the resulting book could be known), ``ev_ts`` (exchange time), ``ev_seq`` (diff ``u`` /
    snapshot ``lastUpdateId``; -1 for gaps), ``ev_lv0:ev_lv1`` (its slice of the level arrays),
    ``ev_file``/``ev_line`` (origin), ``ev_src_file`` (the file being read when it was applied:
    a snapshot's file for diffs buffered before it). Levels: ``lv_px`` int64 price ticks of 1e-9, ``lv_sz``,
    ``lv_side`` (+1 bid, -1 ask), ``lv_idx`` (index into ``level_price``, the dense book axis,
    ascending in price). Tickers (``tk_*``) and trades (``tr_*``) in arrival order.
    """

    ev_kind: np.ndarray
    ev_time: np.ndarray
    ev_ts: np.ndarray
    ev_seq: np.ndarray
    ev_lv0: np.ndarray
    ev_lv1: np.ndarray
    ev_file: np.ndarray
    ev_line: np.ndarray
    ev_src_file: np.ndarray
    lv_px: np.ndarray
    lv_sz: np.ndarray
    lv_szi: np.ndarray
    lv_side: np.ndarray
    lv_idx: np.ndarray
    level_price: np.ndarray
    tk_time: np.ndarray
    tk_ts: np.ndarray
    tk_u: np.ndarray
    tk_bpx: np.ndarray
    tk_bsz: np.ndarray
    tk_apx: np.ndarray
    tk_asz: np.ndarray
    tk_line: np.ndarray
    tk_file: np.ndarray
    tr_time: np.ndarray
    tr_ts: np.ndarray
    tr_id: np.ndarray
    tr_px: np.ndarray
    tr_sz: np.ndarray
    tr_side: np.ndarray
    tr_line: np.ndarray
    tr_file: np.ndarray
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ derived
    @property
    def symbol(self) -> str:
        return str(self.meta.get("symbol", ""))

    @property
    def report(self) -> dict[str, int]:
        """Counts a reader needs: messages by kind, sequence gaps, resyncs, dropped diffs."""
        return dict(self.meta.get("report", {}))

    @property
    def n_level_updates(self) -> int:
        """Levels applied by diffs (snapshot levels not counted)."""
        d = self.ev_kind == EV_DIFF
        return int((self.ev_lv1[d] - self.ev_lv0[d]).sum())

    def price_float(self, ticks: np.ndarray) -> np.ndarray:
        """Ticks of 1e-9 -> float prices (exactly ``float(price_string)``, see :mod:`dea.book.scan`)."""
        return np.asarray(ticks, dtype=np.int64) / float(scan.PRICE_SCALE)

    # ------------------------------------------------------------------ cache
    def save(self, path: Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "meta"}
        meta = np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, __meta__=meta, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "ParsedCapture":
        with np.load(path, allow_pickle=False) as z:
            kw = {f.name: z[f.name] for f in fields(cls) if f.name != "meta"}
            meta = json.loads(bytes(z["__meta__"]).decode())
        return cls(meta=meta, **kw)


def read_bytes(path: Path) -> bytes:
    """File bytes, gunzipped when the file starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read capture ({exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return _zlib.decompress(raw, 31)
        except (zlib.error, _zlib.error):
            try:  # multi-member gzip
                return gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataFormatError(f"{path}: corrupt gzip stream ({exc})") from None
    return raw


def fingerprint(paths: Sequence[Path], market: str = "auto", strict_book: bool = True) -> str:
    """Content fingerprint of a file set (sha256 of the raw bytes, in order) + parser settings."""
    h = hashlib.sha256(f"dea.book.capture v{CACHE_VERSION} {market} {strict_book}\n".encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class _Scanned:
    kind: np.ndarray
    line: np.ndarray
    recv: np.ndarray
    ts: np.ndarray
    id_first: np.ndarray
    id_final: np.ndarray
    id_prev: np.ndarray
    lv0: np.ndarray
    lv1: np.ndarray
    bpx: np.ndarray
    bsz: np.ndarray
    apx: np.ndarray
    asz: np.ndarray
    side: np.ndarray
    lv_px: np.ndarray
    lv_sz: np.ndarray
    lv_side: np.ndarray
    symbol: str
    blank: int


def scan_file(path: Path, data: bytes | None = None) -> _Scanned:
    """Scan one capture file; malformed input raises DataFormatError naming the line."""
    data = read_bytes(path) if data is None else data
    buf = np.frombuffer(data, dtype=np.uint8)
    n_lines = data.count(b"\n") + 1
    r = scan.scan_capture(buf, n_lines, len(data) // 9 + 16)
    err, err_line, err_fields, n_msg = r[0], r[1], r[2], r[3]
    if err:
        raise DataFormatError(_scan_error(path, data, int(err), int(err_line), int(err_fields)))
    per_msg = [a[:n_msg] for a in r[4:18]]
    n_lv = r[18]
    lv = [a[:n_lv] for a in r[19:22]]
    sym_s, sym_n = int(r[22]), int(r[23])
    symbol = data[sym_s : sym_s + sym_n].decode("utf-8", "replace") if sym_s >= 0 else ""
    return _Scanned(*per_msg, *lv, symbol=symbol, blank=int(r[24]))


def _scan_error(path: Path, data: bytes, err: int, line: int, missing: int) -> str:
    text = data.split(b"\n", line)[line - 1] if line >= 1 else b""
    detail = scan.ERROR_TEXT.get(err, f"scanner error {err}")
    if err == scan.E_MISSING:
        names = [name for bit, name in scan.FIELD_NAMES.items() if missing & bit]
        detail = f"message lacks (or has malformed) field(s) {names}"
    elif err == scan.E_SYNTAX:
        import orjson

        body = text.partition(b" ")[2]
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            detail = f"not valid JSON ({exc})"
    snippet = text[:80].decode("utf-8", "replace")
    return f"{path}, line {line}: {detail}: {snippet!r}"


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def parse_capture(paths: Sequence[Path] | Path, market: str = "auto", strict_book: bool = True) -> ParsedCapture:
    """Parse and sequence a capture (files in order form one stream) into a :class:`ParsedCapture`.

    ``market``: ``"auto"`` (futures rules when diffs carry ``pu``), ``"futures"`` or ``"spot"``.
    Raises DataFormatError (malformed line, mixed symbols, receive time going backwards) or, when
    ``strict_book``, SequenceGapError (a gap with no later snapshot); with ``strict_book=False``
    such a gap is counted and the book stays invalid from there (for trades/quotes-only use).
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise DataFormatError("parse_capture: no capture files given")
    if market not in ("auto", "futures", "spot"):
        raise DataFormatError(f"parse_capture: market must be auto, futures or spot, got {market!r}")
    scanned = [scan_file(p) for p in paths]
    symbols = {s.symbol for s in scanned if s.symbol}
    if len(symbols) > 1:
        raise DataFormatError(f"{[str(p) for p in paths]}: files hold different symbols {sorted(symbols)}")
    symbol = symbols.pop() if symbols else ""
    return _assemble(paths, scanned, symbol, market, strict_book)


def _assemble(paths: list[Path], scanned: list[_Scanned], symbol: str, market: str, strict: bool = True) -> ParsedCapture:
    lv_off = 0
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("kind", "line", "recv", "ts", "id_first", "id_final", "id_prev", "lv0", "lv1", "bpx", "bsz", "apx", "asz", "side", "file")}
    lvs: dict[str, list[np.ndarray]] = {"lv_px": [], "lv_sz": [], "lv_side": []}
    for fi, s in enumerate(scanned):
        for k in cols:
            if k == "file":
                cols[k].append(np.full(len(s.kind), fi, dtype=np.int16))
            elif k in ("lv0", "lv1"):
                cols[k].append(getattr(s, k) + lv_off)
            else:
                cols[k].append(getattr(s, k))
        for k in lvs:
            lvs[k].append(getattr(s, k))
        lv_off += len(s.lv_px)
    m = {k: np.concatenate(v) for k, v in cols.items()}
    lv_px = _concat(lvs["lv_px"], np.int64)
    lv_sz = _concat(lvs["lv_sz"], np.float64)
    lv_side = _concat(lvs["lv_side"], np.int8)
    kind = m["kind"]

    back = np.flatnonzero(np.diff(m["recv"]) < 0)
    if back.size:
        j = back[0] + 1
        raise DataFormatError(
            f"{paths[m['file'][j]]}, line {m['line'][j]}: receive time {m['recv'][j]} is earlier than the "
            f"previous message's {m['recv'][j - 1]}; a capture must be in arrival order"
        )

    book = np.flatnonzero((kind == scan.K_DIFF) | (kind == scan.K_SNAPSHOT))
    is_diff = kind[book] == scan.K_DIFF
    pu = m["id_prev"][book]
    if market == "auto":
        with_pu = pu[is_diff] >= 0
        if with_pu.size and with_pu.any() != with_pu.all():
            j = book[is_diff][np.flatnonzero(with_pu != with_pu[0])[0]]
            raise DataFormatError(
                f"{paths[m['file'][j]]}, line {m['line'][j]}: some depth diffs carry 'pu' and some do not; "
                "set options.market to futures or spot"
            )
        mode = seqrules.FUTURES if (with_pu.size and with_pu[0]) else seqrules.SPOT
    else:
        mode = seqrules.FUTURES if market == "futures" else seqrules.SPOT
    r = sequence_book(kind[book], m["recv"][book], m["id_first"][book], m["id_final"][book], pu, mode, strict)
    ev_kind_raw, ev_msg_raw, ev_time_raw, ev_at_raw, n_ev, gaps, resyncs, stale, err_msg, err_expected, err_state = r
    if err_msg >= 0:
        j = book[err_msg]
        rule = (
            f"first diff after snapshot {err_expected} must straddle it"
            if err_state == _S_FIRST
            else f"diff must continue update id {err_expected}"
        )
        raise SequenceGapError(
            f"{paths[m['file'][j]]}, line {m['line'][j]}: depth sequence gap: {rule} "
            f"({'futures: pu == previous u' if mode == seqrules.FUTURES else 'spot: U == previous u + 1'}); "
            f"got U={m['id_first'][j]} u={m['id_final'][j]} pu={m['id_prev'][j]}, and no later snapshot "
            "to resynchronise from"
        )
    ev_kind = ev_kind_raw[:n_ev].copy()
    msg = book[ev_msg_raw[:n_ev]]
    ev_seq = np.where(ev_kind == EV_GAP, -1, m["id_final"][msg])
    ev_lv0 = np.where(ev_kind == EV_GAP, 0, m["lv0"][msg])
    ev_lv1 = np.where(ev_kind == EV_GAP, 0, m["lv1"][msg])

    lv_idx, level_price = level_index(lv_px)

    tk = np.flatnonzero(kind == scan.K_TICKER)
    tr = np.flatnonzero(kind == scan.K_TRADE)
    counts = np.bincount(kind, minlength=5)
    report = {
        "messages": int(len(kind)),
        "snapshots": int(counts[scan.K_SNAPSHOT]),
        "depth_diffs": int(counts[scan.K_DIFF]),
        "book_tickers": int(counts[scan.K_TICKER]),
        "trades": int(counts[scan.K_TRADE]),
        "other_messages": int(counts[scan.K_OTHER]),
        "blank_lines": int(sum(s.blank for s in scanned)),
        "applied_diffs": int((ev_kind == EV_DIFF).sum()),
        "stale_diffs_dropped": int(stale),
        "sequence_gaps": int(gaps),
        "resyncs": int(resyncs),
        "diffs_never_applied": int(counts[scan.K_DIFF] - (ev_kind == EV_DIFF).sum() - stale),
    }
    meta = {
        "symbol": symbol,
        "mode": "futures" if mode == seqrules.FUTURES else "spot",
        "files": [str(p) for p in paths],
        "report": report,
        "book_valid_at_end": bool(err_state != _S_NEEDS),
    }
    return ParsedCapture(
        ev_kind=ev_kind,
        ev_time=ev_time_raw[:n_ev].copy(),
        ev_ts=m["ts"][msg],
        ev_seq=ev_seq,
        ev_lv0=ev_lv0,
        ev_lv1=ev_lv1,
        ev_file=m["file"][msg],
        ev_line=m["line"][msg],
        ev_src_file=m["file"][book[ev_at_raw[:n_ev]]],
        lv_px=lv_px,
        lv_sz=lv_sz,
        lv_szi=np.rint(lv_sz * float(SIZE_SCALE)).astype(np.int64),
        lv_side=lv_side,
        lv_idx=lv_idx,
        level_price=level_price,
        tk_time=m["recv"][tk],
        tk_ts=m["ts"][tk],
        tk_u=m["id_final"][tk],
        tk_bpx=m["bpx"][tk],
        tk_bsz=m["bsz"][tk],
        tk_apx=m["apx"][tk],
        tk_asz=m["asz"][tk],
        tk_line=m["line"][tk],
        tk_file=m["file"][tk],
        tr_time=m["recv"][tr],
        tr_ts=m["ts"][tr],
        tr_id=m["id_first"][tr],
        tr_px=m["bpx"][tr],
        tr_sz=m["bsz"][tr],
        tr_side=m["side"][tr],
        tr_line=m["line"][tr],
        tr_file=m["file"][tr],
        meta=meta,
    )


@_jit
def _distinct(px):
    """Distinct values of px (unordered) and, per element, the slot of its value: an
    open-addressing hash (a capture has ~20k distinct prices among ~450k levels, so this beats
    sorting all of them)."""
    n = px.shape[0]
    bits = 4
    while (1 << bits) < 2 * n + 2:
        bits += 1
    cap = 1 << bits
    mask = cap - 1
    keys = np.empty(cap, np.int64)
    slot_id = np.full(cap, -1, np.int64)
    values = np.empty(n, np.int64)
    which = np.empty(n, np.int64)
    nd = 0
    shift = np.uint64(64 - bits)
    mul = np.uint64(0x9E3779B97F4A7C15)
    for i in range(n):
        k = px[i]
        h = np.int64((np.uint64(k) * mul) >> shift)
        while True:
            d = slot_id[h]
            if d < 0:
                slot_id[h] = nd
                keys[h] = k
                values[nd] = k
                which[i] = nd
                nd += 1
                break
            if keys[h] == k:
                which[i] = d
                break
            h = (h + 1) & mask
    return values[:nd], which


def level_index(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map integer prices (ticks of 1e-9) to a dense book axis: (index per price, float price per index).

    Dense tick indexing ``(p - min) // tick`` when the span fits :data:`DENSE_LIMIT` slots (tick =
    gcd of the price differences), else ranks of the distinct prices (real captures hold stray
    levels far from the touch, e.g. 560 and 621,368 USDT in the BTCUSDT book, so the rank axis is
    the usual case). Either way the axis ascends in price and the replay walks it the same way.
    """
    if prices.size == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float64)
    lo, hi = int(prices.min()), int(prices.max())
    tick = int(np.gcd.reduce(prices - lo)) if hi > lo else 1
    span = (hi - lo) // tick + 1
    if span <= DENSE_LIMIT:
        idx = ((prices - lo) // tick).astype(np.int32)
        level_price = (lo + tick * np.arange(span, dtype=np.int64)) / float(scan.PRICE_SCALE)
        return idx, level_price
    values, which = _distinct(prices)
    order = np.argsort(values)
    rank = np.empty(len(values), np.int32)
    rank[order] = np.arange(len(values), dtype=np.int32)
    return rank[which], values[order] / float(scan.PRICE_SCALE)


def cached_capture(
    paths: Sequence[Path] | Path, cache_dir: Path | None, market: str = "auto", strict_book: bool = True
) -> ParsedCapture:
    """:func:`parse_capture` through an ``.npz`` cache in ``cache_dir`` keyed by content fingerprint."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if cache_dir is None:
        return parse_capture(paths, market, strict_book)
    key = fingerprint(paths, market, strict_book)
    target = Path(cache_dir) / f"binance_capture_{key[:24]}.npz"
    if target.exists():
        try:
            return ParsedCapture.load(target)
        except (OSError, ValueError, KeyError):
            pass  # unreadable/old cache entry: rebuild it below
    parsed = parse_capture(paths, market, strict_book)
    parsed.meta["fingerprint"] = key
    target.parent.mkdir(parents=True, exist_ok=True)
    parsed.save(target)
    return parsed
