"""Every bad-input rule on hand-made files: the configured policy is applied and reported, or a
DataError names the file, the line and the problem. Nothing is dropped without a report entry."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from dea.errors import DataError, DataFormatError

HEAD = "date,open,high,low,close,volume\n"


def bars(*rows: str) -> str:
    return HEAD + "".join(r + "\n" for r in rows)


GOOD = ["2024-01-01,1,2,1,2,10", "2024-01-02,2,3,2,3,11", "2024-01-03,3,4,3,4,12"]


def test_clean_file_has_no_issues(write, load):
    r = load("ohlcv", "bars", write("ok.csv", bars(*GOOD)), step="1d")
    assert r.report.issues == [] and r.report.rows_in == r.report.rows_out == 3


def test_utf8_bom_is_stripped_and_reported(write, load):
    p = write("bom.csv", b"\xef\xbb\xbf" + bars(*GOOD).encode())
    r = load("ohlcv", "bars", p, step="1d")
    assert r.table.num_rows == 3
    assert r.report.get("utf8_bom")[0].action == "stripped"


def test_utf8_bom_in_gzip(write, load):
    p = write("bom.csv.gz", gzip.compress(b"\xef\xbb\xbf" + bars(*GOOD).encode()))
    r = load("ohlcv", "bars", p, step="1d")
    assert r.table.num_rows == 3 and "utf8_bom" in r.report.rules


def test_utf16_refused(write, load):
    p = write("u16.csv", bars(*GOOD).encode("utf-16"))
    with pytest.raises(DataFormatError, match="UTF-16"):
        load("ohlcv", "bars", p, step="1d")


def test_duplicate_identical_column_ignored(write, load):
    p = write("dup.csv", "date,open,high,low,close,volume,close\n"
                         "2024-01-01,1,2,1,2,10,2\n2024-01-02,2,3,2,3,11,3\n")
    r = load("ohlcv", "bars", p, step="1d")
    assert r.table["close"].to_pylist() == [2.0, 3.0]
    assert r.report.get("duplicate_column")[0].action == "ignored the copy"


def test_duplicate_differing_column_refused_when_used(write, load):
    p = write("dup.csv", "date,open,high,low,close,volume,close\n"
                         "2024-01-01,1,2,1,2,10,9\n2024-01-02,2,3,2,3,11,9\n")
    with pytest.raises(DataFormatError, match="'close' appears more than once"):
        load("ohlcv", "bars", p, step="1d")


def test_duplicate_differing_unused_column_reported(write, load):
    p = write("dup.csv", "date,open,high,low,close,volume,note,note\n"
                         "2024-01-01,1,2,1,2,10,a,b\n2024-01-02,2,3,2,3,11,c,d\n")
    r = load("ohlcv", "bars", p, step="1d")
    assert r.report.get("duplicate_column")[0].action == "refused if used"


def test_non_numeric_value_names_line_and_column(write, load):
    p = write("nn.csv", bars(GOOD[0], "2024-01-02,2,3,2,n/a?,11", GOOD[2]))
    with pytest.raises(DataFormatError, match=r"nn\.csv, line 3: column 'close' holds non-numeric value 'n/a\?'"):
        load("ohlcv", "bars", p, step="1d")


def test_quoted_numbers_in_csv_are_numbers(write, load):
    p = write("sp.csv", bars('2024-01-01,"1"," 2 ",1,2,10', "2024-01-02,2,3,2,3,11"))
    r = load("ohlcv", "bars", p, step="1d")
    assert r.table["high"].to_pylist() == [2.0, 3.0]


def test_string_prices_in_parquet_are_parsed_and_reported(tmp_path, load):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "trades.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([1, 2], pa.timestamp("ms", tz="UTC")),
                             "price": ["100.5", "101"], "quantity": [1.0, 2.0], "buyer_maker": [True, False]}), p)
    r = load("binance_trades", "trades", p, instrument="X")
    assert r.table["price"].to_pylist() == [100.5, 101.0]
    assert r.report.get("string_numbers")[0].detail == "column 'price' stores numbers as text"


def test_string_price_garbage_in_parquet_names_row(tmp_path, load):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "trades.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([1, 2], pa.timestamp("ms", tz="UTC")),
                             "price": ["100.5", "1o1"], "quantity": [1.0, 2.0], "buyer_maker": [True, False]}), p)
    with pytest.raises(DataFormatError, match=r"row 1: column 'price' holds non-numeric value '1o1'"):
        load("binance_trades", "trades", p, instrument="X")


@pytest.mark.parametrize("bad,what", [("-1", "non-positive low"), ("0", "non-positive low")])
def test_non_positive_price_refused(write, load, bad, what):
    p = write("neg.csv", bars(GOOD[0], f"2024-01-02,2,3,{bad},3,11", GOOD[2]))
    with pytest.raises(DataError, match=rf"line 3: {what}"):
        load("ohlcv", "bars", p, step="1d")


def test_negative_volume_refused(write, load):
    p = write("negv.csv", bars(GOOD[0], "2024-01-02,2,3,2,3,-5"))
    with pytest.raises(DataError, match="line 3: negative volume"):
        load("ohlcv", "bars", p, step="1d")


def test_unsorted_sorted_and_reported(write, load):
    p = write("uns.csv", bars(GOOD[1], GOOD[0], GOOD[2]))
    r = load("ohlcv", "bars", p, step="1d")
    assert np.all(np.diff(r.table["ts_event"].to_numpy()) > 0)
    issue = r.report.get("unsorted")[0]
    assert (issue.count, issue.first_row, issue.action) == (1, "line 3", "sorted")


def test_unsorted_refused_by_policy(write, load):
    p = write("uns.csv", bars(GOOD[1], GOOD[0], GOOD[2]))
    with pytest.raises(DataError, match=r"uns\.csv, line 3: rows are not sorted"):
        load("ohlcv", "bars", p, step="1d", unsorted_policy="error")


def test_duplicates_error_by_default(write, load):
    p = write("dup.csv", bars(GOOD[0], GOOD[1], "2024-01-02,9,9,9,9,9", GOOD[2]))
    with pytest.raises(DataError, match=r"line 4: duplicated ts_event"):
        load("ohlcv", "bars", p, step="1d")


@pytest.mark.parametrize("policy,close", [("keep_last", 9.0), ("keep_first", 3.0)])
def test_duplicates_resolved_by_policy(write, load, policy, close):
    p = write("dup.csv", bars(GOOD[0], GOOD[1], "2024-01-02,9,9,9,9,9", GOOD[2]))
    r = load("ohlcv", "bars", p, step="1d", duplicate_policy=policy)
    assert r.table["close"].to_pylist() == [2.0, close, 4.0]
    issue = r.report.get("duplicate")[0]
    assert issue.count == 1 and issue.first_row == "line 4"
    assert r.report.rows_in - r.report.rows_out == 1


def test_duplicate_trade_ids(write, load):
    p = write("t.csv", "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                       "x,S,1,2,7,buy,10,1\nx,S,3,4,7,sell,10,1\nx,S,5,6,8,buy,10,1\n")
    with pytest.raises(DataError, match="duplicated trade_id"):
        load("tardis_trades", "trades", p)
    r = load("tardis_trades", "trades", p, duplicate_policy="keep_first")
    assert r.table["trade_id"].to_pylist() == [7, 8]


def test_gap_reported_or_refused(write, load):
    p = write("gap.csv", bars(GOOD[0], GOOD[1], "2024-01-09,3,4,3,4,12", "2024-01-10,3,4,3,4,12"))
    r = load("ohlcv", "bars", p, step="1d")
    gap = r.report.get("gap")[0]
    assert gap.count == 1 and gap.first_row == "line 4" and "longest 1w" in gap.detail
    r2 = load("ohlcv", "bars", p, step="1d", max_gap_steps=10)
    assert "gap" not in r2.report.rules
    with pytest.raises(DataError, match="line 4: gap in the data"):
        load("ohlcv", "bars", p, step="1d", gap_policy="error")


@pytest.mark.parametrize("policy", ["keep", "drop", "error"])
def test_nan_policies(write, load, policy):
    p = write("nan.csv", bars(GOOD[0], "2024-01-02,2,3,2,,11", GOOD[2]))
    if policy == "error":
        with pytest.raises(DataError, match=r"line 3: missing value"):
            load("ohlcv", "bars", p, step="1d", nan_policy=policy)
        return
    r = load("ohlcv", "bars", p, step="1d", nan_policy=policy)
    issue = r.report.get("nan")[0]
    assert issue.count == 1 and issue.first_row == "line 3"
    if policy == "keep":
        assert r.table.num_rows == 3 and np.isnan(r.table["close"][1].as_py())
    else:
        assert r.table.num_rows == 2 and issue.action == "dropped"


def test_ragged_row_refused(write, load):
    p = write("rag.csv", bars(GOOD[0], "2024-01-02,2,3", GOOD[2]))
    with pytest.raises(DataFormatError, match="not a well-formed CSV"):
        load("ohlcv", "bars", p, step="1d")


def test_empty_and_header_only_files(write, load):
    with pytest.raises(DataFormatError, match="empty"):
        load("ohlcv", "bars", write("e.csv", ""), step="1d")
    r = load("ohlcv", "bars", write("h.csv", HEAD), step="1d")
    assert r.table.num_rows == 0


def test_unparseable_timestamp_names_line(write, load):
    p = write("ts.csv", bars(GOOD[0], "yesterday,2,3,2,3,11"))
    with pytest.raises(DataFormatError, match=r"line 3.*'yesterday'"):
        load("ohlcv", "bars", p, step="1d")


def test_missing_timestamp_names_line(write, load):
    p = write("ts.csv", bars(GOOD[0], ",2,3,2,3,11"))
    with pytest.raises(DataFormatError, match=r"line 3: timestamp column 'date' is empty"):
        load("ohlcv", "bars", p, step="1d")


def test_epoch_unit_inferred_and_reported(write, load):
    p = write("ms.csv", "timestamp,open,high,low,close,volume\n1704067200000,1,1,1,1,1\n1704153600000,1,1,1,1,1\n")
    r = load("ohlcv", "bars", p, step="1d")
    assert r.table["ts_event"][0].as_py() == 1704067200000 * 10**6
    assert "timestamp_unit_inferred" in r.report.rules
