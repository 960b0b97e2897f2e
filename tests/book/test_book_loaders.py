"""The ``binance_ws`` and ``hyperliquid`` loaders (canonical tables from the real captures) and
the live feed's message parsers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from book_testdata import COINM, COINM_NEXT, HYPERLIQUID, USDM

from dea.book.binance import parse_binance_message
from dea.book.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from dea.data.loaders.binance_ws import load_capture
from dea.data.loaders.hyperliquid import load_capture as load_hyperliquid
from dea.data.loaders.hyperliquid import parse_hyperliquid_message
from dea.data.schema import SCHEMAS, conform
from dea.errors import ConfigError, DataError, DataFormatError, SequenceGapError


def _report(table) -> dict:
    return json.loads(table.schema.metadata[b"dea.capture_report"])


def test_usdm_tables_are_canonical_and_complete(ws_dir: Path) -> None:
    book = load_capture(ws_dir / USDM, "book", None, {})
    quotes = load_capture(ws_dir / USDM, "quotes", "BTCUSDT-PERP", {})
    trades = load_capture(ws_dir / USDM, "trades", None, {})
    for kind, t in (("book", book), ("quotes", quotes), ("trades", trades)):
        assert t.schema.names == SCHEMAS[kind].names
        conform(kind, t)
        at = t["available_at"].to_numpy()
        assert np.all(np.diff(at) >= 0), kind
    assert book.num_rows == 2_000 + 443_262  # the 1000+1000-level snapshot, then every applied level
    snap = book["is_snapshot"].to_numpy()
    assert snap[:2000].all() and not snap[2000:].any()
    assert set(book["instrument"].unique().to_pylist()) == {"BTCUSDT"}
    assert quotes.num_rows == 66_089 and quotes["instrument"][0].as_py() == "BTCUSDT-PERP"
    assert trades.num_rows == 21_313
    rep = _report(book)
    assert rep["sequence_gaps"] == 0 and rep["ticker_mismatches"] == 0 and rep["ticker_checked_diffs"] == 6_547
    # aggressor side: "m": true (buyer is maker) is a sell
    with gzip.open(ws_dir / USDM, "rb") as fh:
        sells = sum(1 for line in fh if b'"e":"trade"' in line and b'"m":true' in line)
    assert int((trades["side"].to_numpy() == -1).sum()) == sells > 0
    # the first diff rows follow the snapshot and carry seq = u of their diff
    seqs = book["seq"].to_numpy()
    assert np.all(seqs[:2000] == seqs[0]) and np.all(np.diff(seqs[2000:]) >= 0)


def test_file_without_snapshot_needs_its_predecessor(ws_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SequenceGapError, match="no depth snapshot"):
        load_capture(ws_dir / COINM_NEXT, "book", None, {"previous": []})
    lonely = tmp_path / COINM_NEXT  # no sibling to start from
    lonely.write_bytes((ws_dir / COINM_NEXT).read_bytes())
    with pytest.raises(SequenceGapError, match="no depth snapshot"):
        load_capture(lonely, "book", None, {})
    # quotes and trades need no book
    assert load_capture(ws_dir / COINM_NEXT, "trades", None, {}).num_rows > 0
    book = load_capture(ws_dir / COINM_NEXT, "book", None, {"previous": [COINM]})
    rep = _report(book)
    assert rep["sequence_gaps"] == 0 and rep["ticker_mismatches"] == 0 and rep["carried_snapshot_levels"] > 1000
    # the carried snapshot block comes first and is stamped before the file's own rows
    n = rep["carried_snapshot_levels"]
    assert book["is_snapshot"].to_numpy()[:n].all() and not book["is_snapshot"].to_numpy()[n:].any()
    first_own = load_capture(ws_dir / COINM_NEXT, "trades", None, {})["available_at"][0].as_py()
    assert book["available_at"][0].as_py() < first_own
    auto = load_capture(ws_dir / COINM_NEXT, "book", None, {})  # default: found by file name
    assert auto.equals(book)


def test_options_and_kinds_are_validated(ws_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        load_capture(ws_dir / USDM, "book", None, {"marekt": "spot"})
    with pytest.raises(ConfigError, match="not 'bars'"):
        load_capture(ws_dir / USDM, "bars", None, {})


def test_ticker_check_policy(ws_dir: Path, tmp_path: Path) -> None:
    with gzip.open(ws_dir / USDM, "rb") as fh:
        lines = [line for _, line in zip(range(2500), fh)]
    k = max(i for i, ln in enumerate(lines) if b"bookTicker" in ln)
    lines[k] = lines[k].replace(b'"B":"', b'"B":"1', 1)  # a wrong best-bid size
    p = tmp_path / "cap.gz"
    with gzip.open(p, "wb") as fh:
        fh.writelines(lines)
    rep = _report(load_capture(p, "book", None, {}))
    assert rep["ticker_mismatches"] >= 1
    with pytest.raises(DataError, match="disagrees with bookTicker"):
        load_capture(p, "book", None, {"ticker_check": "error"})


def test_hyperliquid_capture(ws_dir: Path) -> None:
    p = ws_dir / HYPERLIQUID
    book, trades, quotes = (load_hyperliquid(p, k, None, {}) for k in ("book", "trades", "quotes"))
    assert book.num_rows == 46 * 40 and quotes.num_rows == 46
    assert set(book["instrument"].unique().to_pylist()) == {"BTC"}
    with gzip.open(p, "rb") as fh:
        prints = [tr for line in fh if b'"trades"' in line for tr in json.loads(line.split(b" ", 1)[1])["data"]]
    assert trades.num_rows == len(prints)
    assert trades["side"].to_pylist() == [1 if tr["side"] == "B" else -1 for tr in prints]
    bids = quotes["bid_price"].to_numpy()
    assert np.all(bids < quotes["ask_price"].to_numpy())
    with pytest.raises(ConfigError):
        load_hyperliquid(p, "book", None, {"x": 1})


def test_hyperliquid_malformed_line(tmp_path: Path) -> None:
    p = tmp_path / "hl.txt"
    p.write_bytes(b'1 {"channel":"l2Book","data":{"coin":"BTC","time":5,"levels":[[{"px":"1","sz":"2"}],[]]}}\n2 {"channel":"trades","data":[{"px":"1"}]}\n')
    with pytest.raises(DataFormatError, match="line 2"):
        load_hyperliquid(p, "trades", None, {})
    assert parse_hyperliquid_message(b'{"channel":"subscriptionResponse","data":{}}', 0) == []


def test_binance_message_parser_shapes() -> None:
    t = 123
    d = parse_binance_message(b'{"stream":"x@depth","data":{"e":"depthUpdate","E":2,"T":1,"s":"BTCUSDT","U":5,"u":9,"pu":4,"b":[["1.5","2"]],"a":[]}}', t)
    assert isinstance(d, DepthDiff) and (d.first_update_id, d.final_update_id, d.prev_final_update_id) == (5, 9, 4)
    assert d.ts_event == 1_000_000 and d.available_at == t and d.bids == ((1.5, 2.0),)
    spot = parse_binance_message(b'{"u":7,"s":"BTCUSDT","b":"1.0","B":"2","a":"1.1","A":"3"}', t)
    assert isinstance(spot, BookTicker) and spot.ts_event == t and spot.ask_size == 3.0
    tr = parse_binance_message(b'{"e":"trade","E":1,"T":1,"s":"X","t":9,"p":"10","q":"0.5","m":true}', t)
    assert isinstance(tr, Trade) and tr.side == -1
    snap = parse_binance_message(b'{"lastUpdateId":77,"bids":[["1","1"]],"asks":[["2","1"]]}', t)
    assert isinstance(snap, DepthSnapshot) and snap.last_update_id == 77
    assert parse_binance_message(b'{"result":null,"id":1}', t) is None
    with pytest.raises(DataFormatError, match="not valid JSON"):
        parse_binance_message(b'{"e":"trade",', t, "feed")
    with pytest.raises(DataFormatError, match=r"lacks field\(s\) \['u'\]"):
        parse_binance_message(b'{"e":"depthUpdate","U":1,"b":[],"a":[]}', t)
