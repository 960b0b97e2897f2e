"""The capture pipeline on the real Binance captures: sequencing, book correctness, exact parsing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dea.book.capture import EV_DIFF, EV_SNAPSHOT, ParsedCapture, cached_capture, fingerprint
from dea.book.checks import check_book_tickers
from dea.book.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from dea.book.scan import PRICE_SCALE
from book_testdata import COINM, SPOT, USDM

from dea.features.orderbook import capture_panel_fields


def _replay_top(p: ParsedCapture) -> tuple[np.ndarray, dict]:
    _, info = capture_panel_fields(p, np.array([int(p.ev_time[-1])], np.int64))
    return info["event_top"], info


def test_usdm_btcusdt_sequence_book_and_ticker_agreement(parsed) -> None:
    p = parsed(USDM)
    r = p.report
    assert r["messages"] == 93_954
    assert r["sequence_gaps"] == 0 and r["resyncs"] == 0
    assert r["applied_diffs"] == 6_547
    assert p.n_level_updates == 443_262
    assert p.meta["mode"] == "futures" and p.symbol == "BTCUSDT"
    top, info = _replay_top(p)
    assert info["crossed_books"] == 0
    chk = check_book_tickers(p, top)
    assert (chk.checked, chk.mismatches, chk.unchecked) == (6_547, 0, 0), chk.first_mismatch


@pytest.mark.parametrize("name,mode", [(SPOT, "spot"), (COINM, "futures")])
def test_spot_and_coinm_books_match_book_ticker(parsed, name: str, mode: str) -> None:
    p = parsed(name)
    assert p.meta["mode"] == mode
    assert p.report["sequence_gaps"] == 0
    top, info = _replay_top(p)
    assert info["crossed_books"] == 0
    chk = check_book_tickers(p, top)
    assert chk.checked == p.report["applied_diffs"] > 1000
    assert chk.mismatches == 0, chk.first_mismatch


def test_ticker_check_detects_a_wrong_book(parsed) -> None:
    """The cross-check is not vacuous: a corrupted level size shows up as a mismatch."""
    p = parsed(USDM)
    top, _ = _replay_top(p)
    bad = top.copy()
    e = int(np.flatnonzero(p.ev_kind == EV_DIFF)[100])
    bad[e, 1] += 0.001
    chk = check_book_tickers(p, bad)
    assert chk.mismatches == 1 and "line" in chk.first_mismatch


@pytest.mark.parametrize("name", [USDM, SPOT, COINM])
def test_byte_scanner_matches_the_orjson_parser_exactly(parsed, stream_events, name: str) -> None:
    """The numba scanner and the live feed's orjson parser decode every field identically
    (prices exactly ``float(string)``), message for message."""
    p = parsed(name)
    evs = stream_events(name)
    trades = [e for e in evs if isinstance(e, Trade)]
    tickers = [e for e in evs if isinstance(e, BookTicker)]
    snaps = [e for e in evs if isinstance(e, DepthSnapshot)]
    diffs = [e for e in evs if isinstance(e, DepthDiff)]
    assert len(trades) == len(p.tr_time) and len(tickers) == len(p.tk_time)
    np.testing.assert_array_equal(p.tr_px / PRICE_SCALE, [t.price for t in trades])
    np.testing.assert_array_equal(p.tr_sz, [t.size for t in trades])
    np.testing.assert_array_equal(p.tr_side, [t.side for t in trades])
    np.testing.assert_array_equal(p.tr_ts, [t.ts_event for t in trades])
    np.testing.assert_array_equal(p.tr_time, [t.available_at for t in trades])
    np.testing.assert_array_equal(p.tk_u, [t.update_id for t in tickers])
    np.testing.assert_array_equal(p.tk_bpx / PRICE_SCALE, [t.bid_price for t in tickers])
    np.testing.assert_array_equal(p.tk_asz, [t.ask_size for t in tickers])
    # book events: the snapshot's and every applied diff's levels, in order
    by_u = {d.final_update_id: d for d in diffs}
    for e in np.flatnonzero(p.ev_kind == EV_DIFF)[:: max(1, len(diffs) // 400)]:
        d = by_u[int(p.ev_seq[e])]
        lv = slice(int(p.ev_lv0[e]), int(p.ev_lv1[e]))
        want = [(q, 1) for q in d.bids] + [(q, -1) for q in d.asks]
        got = list(zip(zip(p.lv_px[lv] / PRICE_SCALE, p.lv_sz[lv]), p.lv_side[lv]))
        assert got == want
    e = int(np.flatnonzero(p.ev_kind == EV_SNAPSHOT)[0])
    lv = slice(int(p.ev_lv0[e]), int(p.ev_lv1[e]))
    assert list(zip(p.lv_px[lv] / PRICE_SCALE, p.lv_sz[lv])) == list(snaps[0].bids + snaps[0].asks)


def test_cache_round_trip_and_fingerprint(ws_dir: Path, tmp_path: Path, parsed) -> None:
    src = tmp_path / "cap.gz"
    shutil.copy(ws_dir / SPOT, src)
    first = cached_capture(src, tmp_path / "cache")
    files = list((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 1
    again = cached_capture(src, tmp_path / "cache")
    for name in ("ev_kind", "ev_time", "lv_px", "lv_sz", "lv_idx", "level_price", "tr_sz", "tk_u"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert again.report == parsed(SPOT).report
    # a different file content gets a different key
    other = tmp_path / "other.gz"
    shutil.copy(ws_dir / USDM, other)
    assert fingerprint([src]) != fingerprint([other])
