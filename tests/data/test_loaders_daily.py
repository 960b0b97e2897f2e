"""Daily loaders: Coin Metrics, Fear & Greed, Google Trends, social sentiment, FRED, generic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dea.errors import DataError
from dea.timeutil import NS_PER_DAY, NS_PER_HOUR, parse_timestamp


def _ts(text: str) -> int:
    return parse_timestamp(text)


def test_coinmetrics_close_only_bars(shared_data, load):
    path = shared_data / "daily_onchain/coinmetrics/btc.csv"
    raw = pd.read_csv(path)
    r = load("coinmetrics", "bars", path, publication_lag="1h")
    t = r.table.to_pandas()
    assert len(t) == len(raw)
    assert set(t.instrument) == {"BTC"}
    np.testing.assert_array_equal(t["close"].to_numpy(), raw["PriceUSD"].to_numpy())
    assert t[["open", "high", "low", "volume"]].isna().all().all()
    # PriceUSD dated D is the close as of 00:00 UTC of D+1: known at D + 1d + lag
    assert t["ts_event"].iloc[0] == _ts("2009-01-03")
    assert (t["available_at"] - t["ts_event"] == NS_PER_DAY + NS_PER_HOUR).all()
    # early rows without a price are reported NaNs of close only (structural NaNs are not counted)
    nan = r.report.get("nan")[0]
    assert nan.count == int(raw["PriceUSD"].isna().sum())
    assert "close" in nan.detail and "open" not in nan.detail


def test_coinmetrics_volume_mapping(shared_data, load):
    path = shared_data / "daily_onchain/coinmetrics/eth.csv"
    r = load("coinmetrics", "bars", path, columns={"volume": "TxTfrValAdjUSD"})
    raw = pd.read_csv(path)
    np.testing.assert_array_equal(r.table["volume"].to_numpy(), raw["TxTfrValAdjUSD"].to_numpy())


def test_coinmetrics_exogenous_gz(shared_data, load):
    path = shared_data / "daily_onchain/coinmetrics/ada.csv.gz"
    raw = pd.read_csv(path)
    r = load("coinmetrics", "exogenous", path, series=["AdrActCnt", "TxCnt"], publication_lag="1d")
    t = r.table.to_pandas()
    assert set(t.entity) == {"ADA"} and set(t.series) == {"AdrActCnt", "TxCnt"}
    assert len(t) == 2 * len(raw)
    adr = t[t.series == "AdrActCnt"]
    np.testing.assert_array_equal(adr["value"].to_numpy(), raw["AdrActCnt"].to_numpy())
    assert (adr.available_at - adr.ts_event == 2 * NS_PER_DAY).all()


def test_coinmetrics_unknown_series_refused(shared_data, load):
    with pytest.raises(DataError, match="'NoSuchMetric' not found"):
        load("coinmetrics", "exogenous", shared_data / "daily_onchain/coinmetrics/ltc.csv.gz", series=["NoSuchMetric"])


def test_coinmetrics_folder_source_skips_dictionary(tmp_path, shared_data, load):
    folder = tmp_path / "cm"
    folder.mkdir()
    for name in ("ltc.csv.gz", "doge.csv.gz", "metrics.csv", "README.md", "LICENSE"):
        (folder / name).write_bytes((shared_data / "daily_onchain/coinmetrics" / name).read_bytes())
    r = load("coinmetrics", "exogenous", folder, series=["TxCnt"])
    assert set(r.table["entity"].to_pylist()) == {"LTC", "DOGE"}
    skipped = r.report.get("skipped_file")[0]
    assert skipped.count == 3 and "metrics.csv" in skipped.detail


def test_fear_greed(shared_data, load):
    path = shared_data / "sentiment/fear_greed_index_2018_2025.csv"
    raw = pd.read_csv(path)
    r = load("fear_greed", "exogenous", path)
    t = r.table.to_pandas()
    fg = t[t.series == "fear_greed_index"]
    assert len(fg) == len(raw)
    assert fg.value.iloc[0] == 30 and fg.ts_event.iloc[0] == _ts("2018-02-01")
    assert (fg.available_at - fg.ts_event == NS_PER_DAY).all()
    assert set(t.series) == {"fear_greed_index", "fear_greed_log_return"}
    assert set(t.entity) == {""}
    assert "value_classification" in r.report.get("label_column")[0].detail


def test_google_trends_entity_and_inf(shared_data, load):
    r = load("google_trends", "exogenous", shared_data / "sentiment/google_trends_LTC.csv")
    t = r.table.to_pandas()
    assert set(t.entity) == {"LTC"}
    assert set(t.series) == {"trend", "trend_relative_diff", "trend_log_return"}
    # relative changes from a zero search interest are inf in the file: reported, kept as NaN
    assert r.report.get("non_finite")[0].count > 0
    assert np.isfinite(t.value.dropna()).all()
    with pytest.raises(DataError, match="line 2: missing value"):
        load("google_trends", "exogenous", shared_data / "sentiment/google_trends_LTC.csv", nan_policy="error")


def test_social_names(shared_data, load):
    base = shared_data / "sentiment/btc_social_2014_2021"
    one = load("social", "exogenous", base / "direct__reddit_comments_sentiment.csv").table
    assert set(one["series"].to_pylist()) == {"reddit_comments_sentiment"}
    many = load("social", "exogenous", base / "final_dataset.csv").table
    assert {"crix", "stocktwits_sent", "comments_volume"} <= set(many["series"].to_pylist())


def test_fred_holidays_are_missing_not_zero(shared_data, load):
    path = shared_data / "macro/DGS10.csv"
    r = load("fred", "exogenous", path, publication_lag="1d")
    t = r.table.to_pandas()
    holiday = t[t.ts_event == _ts("2015-01-19")]  # Martin Luther King Jr. Day: empty cell
    assert len(holiday) == 1 and np.isnan(holiday.value.iloc[0])
    assert (t.value != 0).all()
    assert r.report.get("nan")[0].first_row == "line 13"
    dropped = load("fred", "exogenous", path, nan_policy="drop")
    assert dropped.table.num_rows == len(t) - r.report.count("nan")
    assert dropped.report.get("nan")[0].action == "dropped"


def test_generic_daily(write, load):
    p = write("d.csv", "Date,alpha,label\n2024-01-01,1.5,x\n2024-01-02,,y\n2024-01-03,2.5,z\n")
    r = load("daily", "exogenous", p, entity="BTC", publication_lag="2h")
    t = r.table.to_pandas()
    assert list(t.series.unique()) == ["alpha"] and set(t.entity) == {"BTC"}
    assert np.isnan(t.value.iloc[1])
    assert (t.available_at - t.ts_event == NS_PER_DAY + 2 * NS_PER_HOUR).all()


@pytest.mark.parametrize(("fmt", "text"), [
    ("daily", "date,metric\n2024-01-01,1\n2024-01-08,2\n2024-01-15,3\n2024-01-22,4\n"),
    ("date_data", "Date,Data\n2024.1.1,1\n2024.1.8,2\n2024.1.15,3\n2024.1.22,4\n"),
])
def test_weekly_dated_values_are_known_when_their_week_ends(write, load, fmt, text):
    """Read as daily, a weekly value stamped at its week's start would be visible 6 days early."""
    r = load(fmt, "exogenous", write("weekly_metric.csv", text))
    ts = r.table["ts_event"].to_numpy()
    np.testing.assert_array_equal(r.table["available_at"].to_numpy() - ts, np.full(4, 7 * NS_PER_DAY))
    assert "dates every 7d" in r.report.get("period_inferred")[0].detail
    daily = load(fmt, "exogenous", write("daily_metric.csv", text.replace(".8,", ".2,").replace("-08,", "-02,")
                                          .replace(".15,", ".3,").replace("-15,", "-03,").replace(".22,", ".4,").replace("-22,", "-04,")))
    np.testing.assert_array_equal(daily.table["available_at"].to_numpy() - daily.table["ts_event"].to_numpy(), np.full(4, NS_PER_DAY))
    assert not daily.report.get("period_inferred")
