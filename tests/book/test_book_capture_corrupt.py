"""Corrupted captures: every problem is refused with a DeaError naming the file and line, or
handled by the documented policy (resync from a later snapshot), never silently."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest
from book_testdata import SPOT, USDM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dea.book.capture import EV_DIFF, EV_GAP, parse_capture
from dea.book.replay import book_after
from dea.errors import DataFormatError, DeaError, SequenceGapError
from dea.data.loaders.binance_ws import load_capture
from dea.features.orderbook import capture_panel_fields, orderbook_panel_fields


def _lines(ws_dir: Path, name: str, n: int | None = None) -> list[bytes]:
    with gzip.open(ws_dir / name, "rb") as fh:
        out = [line.rstrip(b"\n") for line in fh]
    return out[:n] if n else out


def _write(tmp_path: Path, lines: list[bytes], name: str = "cap.gz") -> Path:
    p = tmp_path / name
    with gzip.open(p, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    return p


def _depth_lines(lines: list[bytes]) -> list[int]:
    return [i for i, ln in enumerate(lines) if b"depthUpdate" in ln]


def _snapshot_index(lines: list[bytes]) -> int:
    return next(i for i, ln in enumerate(lines) if b"lastUpdateId" in ln)


@pytest.mark.parametrize("name", [USDM, SPOT])
def test_dropped_diff_without_later_snapshot_raises_naming_line_and_ids(ws_dir: Path, tmp_path: Path, name: str) -> None:
    lines = _lines(ws_dir, name, 3000)
    snap = _snapshot_index(lines)
    after = [i for i in _depth_lines(lines) if i > snap]
    drop = after[20]
    nxt = after[21]
    corrupted = lines[:drop] + lines[drop + 1 :]
    path = _write(tmp_path, corrupted)
    with pytest.raises(SequenceGapError) as err:
        parse_capture(path)
    msg = str(err.value)
    prev_u = orjson.loads(lines[after[19]].split(b" ", 1)[1])["data"]["u"]
    got_u = orjson.loads(lines[nxt].split(b" ", 1)[1])["data"]["u"]
    assert str(path) in msg
    assert f"line {nxt}:" in msg  # 1-based line of the next diff in the corrupted file (one line removed)
    assert f"continue update id {prev_u}" in msg  # the last applied diff, before the hole
    assert f"u={got_u}" in msg and "no later snapshot" in msg
    # trades and quotes do not need the book: they still load, the gap is counted
    from dea.data.loaders.binance_ws import load_capture as load

    trades = load(path, "trades", None, {})
    assert trades.num_rows == sum(1 for ln in corrupted if b'"e":"trade"' in ln)
    lenient = parse_capture(path, strict_book=False)
    assert lenient.report["sequence_gaps"] == 1 and not lenient.meta["book_valid_at_end"]


def _snapshot_line(p, upto: int, recv: int) -> bytes:
    """A REST-style snapshot of the true book after the first ``upto`` events of ``p``."""
    bid, ask, valid = book_after(p.ev_kind, p.ev_lv0, p.ev_lv1, p.lv_idx, p.lv_side, p.lv_sz, len(p.level_price), upto)
    assert valid
    bi, ai = np.flatnonzero(bid > 0)[::-1], np.flatnonzero(ask > 0)
    body = {
        "lastUpdateId": int(p.ev_seq[upto - 1]),
        "E": 0,
        "T": 0,
        "bids": [[repr(float(p.level_price[i])), f"{bid[i]:.8f}"] for i in bi],
        "asks": [[repr(float(p.level_price[i])), f"{ask[i]:.8f}"] for i in ai],
    }
    return str(recv).encode() + b" " + orjson.dumps(body)


def test_dropped_diff_resyncs_from_a_later_snapshot(ws_dir: Path, tmp_path: Path) -> None:
    """A gap invalidates the book (features NaN) until a later snapshot; afterwards the book and
    every feature equal those of the intact capture."""
    lines = _lines(ws_dir, USDM, 4000)
    intact = parse_capture(_write(tmp_path, lines, "intact.gz"))
    diff_events = np.flatnonzero(intact.ev_kind == EV_DIFF)
    e_drop, e_resync = int(diff_events[30]), int(diff_events[60])
    line_drop = int(intact.ev_line[e_drop]) - 1  # 0-based index into ``lines``
    line_resync = int(intact.ev_line[e_resync]) - 1
    recv = int(lines[line_resync].split(b" ")[0]) + 1
    snap = _snapshot_line(intact, e_resync + 1, recv)
    corrupted = lines[: line_resync + 1] + [snap] + lines[line_resync + 1 :]
    del corrupted[line_drop]
    gap_path = _write(tmp_path, corrupted, "gap.gz")
    p = parse_capture(gap_path)
    assert p.report["sequence_gaps"] == 1 and p.report["resyncs"] == 1
    # the diffs buffered during the gap are covered by the new snapshot and dropped as stale
    assert p.report["stale_diffs_dropped"] > intact.report["stale_diffs_dropped"]
    assert p.report["applied_diffs"] < intact.report["applied_diffs"]
    gap_e = int(np.flatnonzero(p.ev_kind == EV_GAP)[0])
    t_gap = int(p.ev_time[gap_e])

    clock = np.arange(int(intact.ev_time[0]), int(intact.ev_time[-1]) + 1, 50_000_000, dtype=np.int64)
    a, _ = capture_panel_fields(intact, clock)
    b, _ = capture_panel_fields(p, clock)
    inside = (clock >= t_gap) & (clock < recv)
    after = clock >= recv
    assert inside.any() and after.any()
    assert np.isnan(b["ob.mid"][inside]).all() and np.isnan(b["ob.ofi"][inside]).all()
    for name in ("ob.mid", "ob.spread_bps", "ob.imbalance_l10", "ob.depth_25bps", "ob.slope_l10"):
        np.testing.assert_array_equal(a[name][after], b[name][after], err_msg=name)
    before = clock < int(p.ev_time[gap_e - 1]) if gap_e else clock < 0
    np.testing.assert_array_equal(a["ob.mid"][before], b["ob.mid"][before])
    # the canonical book table marks the gap with one marker row; replaying the table agrees
    table = load_capture(gap_path, "book", None, {})
    markers = (table["side"].to_numpy() == 0)
    assert markers.sum() == 1 and table["is_snapshot"].to_numpy()[markers].all()
    from_table = orderbook_panel_fields(table, None, None, clock)
    for name in ("ob.mid", "ob.imbalance_5bps", "ob.rv_10s", "ob.ofi"):
        np.testing.assert_array_equal(from_table[name], b[name], err_msg=name)


def test_bad_json_line_is_named(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir, USDM, 300)
    lines[120] = lines[120][: len(lines[120]) // 2]
    path = _write(tmp_path, lines)
    with pytest.raises(DataFormatError, match=rf"{path.name}, line 121: not valid JSON"):
        parse_capture(path)


def test_missing_field_and_bad_prefix_and_bad_decimal(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir, USDM, 300)
    i = _depth_lines(lines)[5]
    bad = lines.copy()
    bad[i] = bad[i].replace(b'"u":', b'"uu":', 1)
    with pytest.raises(DataFormatError, match=rf"line {i + 1}: message lacks .*'u'"):
        parse_capture(_write(tmp_path, bad, "a.gz"))
    bad = lines.copy()
    bad[7] = b"x" + bad[7]
    with pytest.raises(DataFormatError, match="line 8: expected '<receive ns> <json>'"):
        parse_capture(_write(tmp_path, bad, "b.gz"))
    bad = lines.copy()
    j = next(k for k, ln in enumerate(lines) if b'"trade"' in ln)
    bad[j] = bad[j].replace(b'"p":"', b'"p":"-', 1)
    with pytest.raises(DataFormatError, match=rf"line {j + 1}: .*'p'"):
        parse_capture(_write(tmp_path, bad, "c.gz"))


def test_receive_time_going_back_and_mixed_symbols(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir, USDM, 200)
    swapped = lines.copy()
    swapped[10], swapped[11] = swapped[11], swapped[10]
    with pytest.raises(DataFormatError, match="line 12: receive time"):
        parse_capture(_write(tmp_path, swapped, "a.gz"))
    mixed = lines.copy()
    k = next(k for k, ln in enumerate(lines) if b'"trade"' in ln)
    mixed[k] = mixed[k].replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"')
    with pytest.raises(DataFormatError, match=rf"line {k + 1}: the capture mixes symbols"):
        parse_capture(_write(tmp_path, mixed, "b.gz"))


def test_plain_text_capture_and_blank_lines_are_read(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir, USDM, 200)
    path = tmp_path / "cap.txt"
    path.write_bytes(b"\n".join(lines[:100] + [b"", b"  "] + lines[100:]) + b"\n")
    p = parse_capture(path)
    assert p.report["blank_lines"] == 2 and p.report["messages"] == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_captures_raise_only_dea_errors(ws_dir: Path, tmp_path: Path, data: st.DataObject) -> None:
    """Random truncations, byte flips, deletions and insertions: the scanner either parses the
    result or raises a DeaError; no other exception, no crash."""
    lines = _lines(ws_dir, SPOT, 40)
    blob = bytearray(b"\n".join(lines) + b"\n")
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        pos = data.draw(st.integers(0, len(blob) - 1))
        if op == "flip":
            blob[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del blob[pos : pos + data.draw(st.integers(1, 40))]
        elif op == "insert":
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[pos:]
        if not blob:
            blob = bytearray(b"x")
    path = tmp_path / "fuzz.txt"
    path.write_bytes(bytes(blob))
    try:
        parse_capture(path)
    except DeaError:
        pass
