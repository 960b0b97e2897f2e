"""OHLCV loaders on the real freqtrade / FTX files and on hand-made layouts."""

from __future__ import annotations

import numpy as np
import pyarrow.feather as feather
import pytest

from dea.errors import DataError, DataFormatError
from dea.timeutil import NS_PER_MIN, parse_timestamp


@pytest.mark.parametrize("asset,rows", [("BTC", 143_900), ("ETH", 143_901), ("LTC", 143_902)])
def test_freqtrade_5m_real(shared_data, load, asset, rows):
    path = shared_data / f"perps_5m_15m/{asset}_USDT_USDT-5m-futures.feather"
    r = load("freqtrade", "bars", path)
    t = r.table
    assert t.num_rows == rows
    raw = feather.read_table(path)
    # `date` is the bar open: ts_event equals it, values known one step later
    np.testing.assert_array_equal(t["ts_event"].to_numpy(), raw["date"].cast("int64").to_numpy())
    np.testing.assert_array_equal(t["available_at"].to_numpy() - t["ts_event"].to_numpy(), 5 * NS_PER_MIN)
    np.testing.assert_array_equal(t["close"].to_numpy(), raw["close"].to_numpy())
    assert set(t["instrument"].to_pylist()) == {f"{asset}/USDT:USDT"}
    assert t["ts_event"][0].as_py() == parse_timestamp("2023-01-01T00:00:00Z")
    assert r.report.rules == {"step_inferred"}


def test_freqtrade_15m_step_from_name(shared_data, load):
    r = load("freqtrade", "bars", shared_data / "perps_5m_15m/LTC_USDT_USDT-15m-futures.feather", publication_lag="30s")
    d = r.table["available_at"].to_numpy() - r.table["ts_event"].to_numpy()
    assert (d == 15 * NS_PER_MIN + 30 * 10**9).all()


def test_generic_ohlcv_ftx_csv(shared_data, load):
    r = load("ohlcv", "bars", shared_data / "orderbook/tardis_nautilus/ftx-btc-perp-20211231-20220201_1m.csv",
             instrument="BTC-PERP", step="1m")
    t = r.table
    assert t.num_rows == 45_031
    assert t["ts_event"][0].as_py() == parse_timestamp("2021-12-31T23:01:00")
    assert t["open"][0].as_py() == 46319.0 and t["volume"][0].as_py() == pytest.approx(2300413.7295)
    assert set(t["instrument"].to_pylist()) == {"BTC-PERP"}
    assert "step_inferred" not in r.report.rules


def test_close_stamp_and_column_mapping(write, load):
    p = write("bars.csv", "CloseTime,O,H,L,C,V\n"
                          "1700000060000,10,11,9,10.5,3\n"
                          "1700000120000,10.5,12,10,11,4\n")
    r = load("ohlcv", "bars", p, step="1m", instrument="X",
             timestamp={"column": "CloseTime", "unit": "ms", "stamp": "close"},
             columns={"open": "O", "high": "H", "low": "L", "close": "C", "volume": "V"})
    t = r.table
    # stamped by close -> canonical open = close - step; available at the close
    assert t["ts_event"].to_pylist() == [1_700_000_000 * 10**9, 1_700_000_060 * 10**9]
    assert t["available_at"].to_pylist() == [1_700_000_060 * 10**9, 1_700_000_120 * 10**9]
    assert t["close"].to_pylist() == [10.5, 11.0]


def test_instrument_column_gives_several_series(write, load):
    p = write("multi.csv", "date,symbol,open,high,low,close,volume\n"
                           "2024-01-01,A,1,1,1,1,1\n2024-01-01,B,2,2,2,2,2\n"
                           "2024-01-02,A,1,1,1,1,1\n2024-01-02,B,2,2,2,2,2\n")
    r = load("ohlcv", "bars", p, columns={"instrument": "symbol"}, step="1d")
    assert r.table["instrument"].to_pylist() == ["A", "A", "B", "B"]  # grouped, time-ordered


def test_missing_close_column_is_refused(write, load):
    p = write("bad.csv", "date,open,high,low,volume\n2024-01-01,1,1,1,1\n2024-01-02,1,1,1,1\n")
    with pytest.raises(DataFormatError, match="'close'"):
        load("ohlcv", "bars", p)


def test_no_volume_column_is_nan_and_reported(write, load):
    p = write("nov.csv", "date,open,high,low,close\n2024-01-01,1,2,1,2\n2024-01-02,2,3,2,3\n")
    r = load("ohlcv", "bars", p, nan_policy="error")  # volume is structurally absent, not a NaN problem
    assert np.isnan(r.table["volume"].to_numpy()).all()
    assert "no_volume" in r.report.rules


def test_high_below_close_is_reported(write, load):
    p = write("ohlc.csv", "date,open,high,low,close,volume\n2024-01-01,1,1.5,1,2,1\n2024-01-02,2,3,2,3,1\n")
    r = load("ohlcv", "bars", p)
    issue = r.report.get("ohlc_inconsistent")[0]
    assert issue.count == 1 and issue.first_row == "line 2"


def test_one_row_without_step_is_refused(write, load):
    p = write("one.csv", "date,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n")
    with pytest.raises(DataError, match="step"):
        load("ohlcv", "bars", p)
