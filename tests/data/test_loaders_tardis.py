"""Tardis CSV loaders on the real samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dea.errors import DataError

TN = "orderbook/tardis_nautilus"


def test_tardis_trades_real(shared_data, load):
    path = shared_data / TN / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv"
    r = load("tardis_trades", "trades", path)
    raw = pd.read_csv(path)
    t = r.table
    assert t.num_rows == len(raw) == 9999
    np.testing.assert_array_equal(t["ts_event"].to_numpy(), raw["timestamp"].to_numpy() * 1000)
    np.testing.assert_array_equal(t["available_at"].to_numpy(), raw["local_timestamp"].to_numpy() * 1000)
    np.testing.assert_array_equal(t["side"].to_numpy(), np.where(raw["side"] == "buy", 1, -1))
    np.testing.assert_array_equal(t["trade_id"].to_numpy(), raw["id"].to_numpy())
    assert set(t["instrument"].to_pylist()) == {"BTCUSDT"}


def test_tardis_bitmex_uuid_ids_hashed(shared_data, load):
    r = load("tardis_trades", "trades", shared_data / TN / "tardis_sample_bitmex_trades_XBTUSD.csv")
    ids = r.table["trade_id"].to_numpy()
    assert len(set(ids.tolist())) == r.table.num_rows == 10
    assert "trade_id_hashed" in r.report.rules
    again = load("tardis_trades", "trades", shared_data / TN / "tardis_sample_bitmex_trades_XBTUSD.csv")
    assert again.table["trade_id"].to_pylist() == ids.tolist()  # stable across loads


@pytest.mark.parametrize("name", ["tardis_binance-futures_BTCUSDT_quotes_2020-02-22.csv",
                                  "tardis_sample_huobi-dm-swap_quotes_BTC-USD.csv"])
def test_tardis_quotes_real(shared_data, load, name):
    path = shared_data / TN / name
    r = load("tardis_quotes", "quotes", path)
    raw = pd.read_csv(path)
    t = r.table
    assert t.num_rows == len(raw)
    np.testing.assert_array_equal(t["bid_price"].to_numpy(), raw["bid_price"].to_numpy())
    np.testing.assert_array_equal(t["ask_size"].to_numpy(), raw["ask_amount"].to_numpy())
    assert (t["bid_price"].to_numpy() < t["ask_price"].to_numpy()).all()


@pytest.mark.parametrize("depth", [5, 25])
def test_tardis_book_snapshot_real(shared_data, load, depth):
    path = shared_data / TN / f"tardis_sample_binance-futures_book_snapshot_{depth}_BTCUSDT.csv"
    raw = pd.read_csv(path)
    r = load("tardis_book_snapshot", "book", path)
    df = r.table.to_pandas()
    assert len(df) == len(raw) * depth * 2
    assert df["is_snapshot"].all()
    for seq, block in df.groupby("seq"):
        bids = block[block.side == 1]
        asks = block[block.side == -1]
        assert len(bids) == len(asks) == depth
        assert bids.price.max() < asks.price.min()
        assert block.ts_event.nunique() == 1
    first = raw.iloc[0]
    b0 = df[(df.seq == df.seq.min()) & (df.side == 1)].iloc[0]
    assert b0.price == first["bids[0].price"] and b0["size"] == first["bids[0].amount"]


def test_tardis_book_snapshot_depth_option_and_empty_levels(write, load):
    head = "exchange,symbol,timestamp,local_timestamp," + ",".join(
        f"asks[{i}].price,asks[{i}].amount,bids[{i}].price,bids[{i}].amount" for i in range(2))
    p = write("book_snapshot_2.csv", head + "\n"
              "x,S,1000,2000,101,1,100,2,102,3,99,4\n"
              "x,S,3000,4000,101,1,100,2,,,,\n")
    r = load("tardis_book_snapshot", "book", p)
    assert r.table.num_rows == 4 + 2
    assert r.report.get("empty_levels")[0].count == 2
    r1 = load("tardis_book_snapshot", "book", p, options={"depth": 1})
    assert r1.table.num_rows == 4 and "empty_levels" not in r1.report.rules


def test_tardis_incremental_l2_real(shared_data, load):
    path = shared_data / TN / "tardis_sample_deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    raw = pd.read_csv(path)
    r = load("tardis_incremental_l2", "book", path)
    t = r.table.to_pandas()
    assert len(t) == len(raw) == 15
    np.testing.assert_array_equal(t["is_snapshot"].to_numpy(), raw["is_snapshot"].to_numpy())
    np.testing.assert_array_equal(t["side"].to_numpy(), np.where(raw["side"] == "bid", 1, -1))
    # rows of one message share seq; a new message increments it
    assert t.groupby(["ts_event", "available_at", "is_snapshot"]).seq.nunique().eq(1).all()


def test_tardis_incremental_unknown_side_refused(write, load):
    p = write("l2.csv", "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
                        "d,X,1,2,true,bid,100,1\nd,X,1,2,true,middle,101,1\n")
    with pytest.raises(DataError, match=r"line 3.*'middle'"):
        load("tardis_incremental_l2", "book", p)
