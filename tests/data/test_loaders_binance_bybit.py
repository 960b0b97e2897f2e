"""Binance historical files (Parquet trades/quotes, depth CSVs) and the Bybit orderbook.500 zip."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from dea.errors import SequenceGapError

TN = "orderbook/tardis_nautilus"


def test_binance_trades_parquet_real(shared_data, load):
    path = shared_data / TN / "binance-btcusdt-trades.parquet"
    raw = pd.read_parquet(path)
    r = load("binance_trades", "trades", path)
    t = r.table
    assert t.num_rows == len(raw) == 2001
    # buyer is maker -> the seller hit the bid
    np.testing.assert_array_equal(t["side"].to_numpy(), np.where(raw["buyer_maker"] == "True", -1, 1))
    np.testing.assert_array_equal(t["trade_id"].to_numpy(), raw["trade_id"].to_numpy())
    assert set(t["instrument"].to_pylist()) == {"BTCUSDT"}


def test_binance_quotes_parquet_real(shared_data, load):
    path = shared_data / TN / "binance-btcusdt-quotes.parquet"
    raw = pd.read_parquet(path)
    r = load("binance_quotes", "quotes", path)
    np.testing.assert_array_equal(r.table["bid_price"].to_numpy(), raw["bid"].to_numpy())
    np.testing.assert_array_equal(r.table["ask_size"].to_numpy(), raw["ask_size"].to_numpy())


def test_binance_depth_snapshot_and_update_real(shared_data, load):
    snap = load("binance_depth_csv", "book", shared_data / TN / "binance-btcusdt-depth-snap.csv")
    upd = load("binance_depth_csv", "book", shared_data / TN / "binance-btcusdt-depth-update.csv")
    assert snap.table["is_snapshot"].to_numpy(zero_copy_only=False).all()
    assert not upd.table["is_snapshot"].to_numpy(zero_copy_only=False).any()
    assert set(snap.table["seq"].to_pylist()) == {2098021528332}
    assert set(upd.table["seq"].to_pylist()) == {2098041696700}
    assert set(snap.table["side"].to_pylist()) == {1}  # the sample snapshot holds bids only
    assert set(upd.table["side"].to_pylist()) == {1, -1}
    # deletions (qty 0) are kept as size-0 deltas
    assert (upd.table["size"].to_numpy() == 0).any()


DEPTH_HEAD = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n"


def test_binance_depth_sequence_gap(write, load):
    rows = ("S,1,100,100,b,snap,10,1,-1\n"
            "S,2,95,105,b,set,10,2,90\n"     # covers the snapshot (U <= 101 <= u)
            "S,3,106,110,a,set,11,1,105\n"   # pu == previous u
            "S,4,120,130,a,set,11,0,115\n")  # pu 115 != 110: gap
    p = write("d.csv", DEPTH_HEAD + rows)
    with pytest.raises(SequenceGapError, match="line 5"):
        load("binance_depth_csv", "book", p)
    r = load("binance_depth_csv", "book", p, options={"sequence_gap_policy": "report"})
    gap = r.report.get("sequence_gap")[0]
    assert gap.count == 1 and gap.first_row == "line 5"
    assert r.table.num_rows == 4  # nothing dropped


def test_binance_depth_continuous_chain_has_no_gap(write, load):
    rows = ("S,1,100,100,b,snap,10,1,-1\nS,2,95,105,b,set,10,2,90\nS,3,106,110,a,set,11,1,105\n")
    r = load("binance_depth_csv", "book", write("d.csv", DEPTH_HEAD + rows))
    assert "sequence_gap" not in r.report.rules


def test_bybit_ob500_real(shared_data, load):
    path = shared_data / TN / "bybit_xrpusdt-ob500.data.zip"
    with zipfile.ZipFile(path) as zf:
        msgs = [json.loads(line) for line in zf.read(zf.namelist()[0]).splitlines()]
    r = load("bybit_ob", "book", path)
    t = r.table.to_pandas()
    n_levels = sum(len(m["data"]["b"]) + len(m["data"]["a"]) for m in msgs)
    assert len(t) == n_levels
    first = t[t.seq == msgs[0]["data"]["u"]]
    assert first.is_snapshot.all() and len(first) == 1000
    assert first[first.side == 1].price.max() == float(msgs[0]["data"]["b"][0][0])
    assert (t.ts_event.iloc[0]) == msgs[0]["cts"] * 10**6
    assert (t.available_at.iloc[0]) == msgs[0]["ts"] * 10**6
    assert set(t.instrument) == {"XRPUSDT"}
    assert "sequence_gap" not in r.report.rules


def _bybit_zip(tmp_path, messages):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x_ob.data", "\n".join(json.dumps(m) for m in messages))
    p = tmp_path / "x.data.zip"
    p.write_bytes(buf.getvalue())
    return p


def _msg(kind, u, ts, b, a):
    return {"topic": "orderbook.50.X", "type": kind, "ts": ts, "cts": ts - 1,
            "data": {"s": "X", "b": b, "a": a, "u": u, "seq": u}}


def test_bybit_gap_refused_or_reported(tmp_path, load):
    msgs = [_msg("snapshot", 10, 1000, [["1.0", "5"]], [["1.1", "5"]]),
            _msg("delta", 11, 1100, [["1.0", "0"]], []),
            _msg("delta", 13, 1200, [], [["1.2", "1"]])]
    p = _bybit_zip(tmp_path, msgs)
    with pytest.raises(SequenceGapError, match="line 3"):
        load("bybit_ob", "book", p)
    r = load("bybit_ob", "book", p, options={"sequence_gap_policy": "report"})
    assert r.report.get("sequence_gap")[0].count == 1
    assert r.table.num_rows == 4
