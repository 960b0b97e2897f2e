"""Funding loaders: BitMEX and Deribit real files, BitMEX prices as mark, generic funding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dea.errors import ConfigError, DataError
from dea.timeutil import NS_PER_DAY, NS_PER_HOUR, parse_timestamp


def test_bitmex_funding_real(shared_data, load):
    r = load("bitmex_funding", "funding", shared_data / "funding/funding_data.csv")
    t = r.table
    assert t.num_rows == 4866
    interval = t["interval_ns"].to_numpy()
    # the first 22 settlements were daily, then every 8 hours
    assert (interval[:22] == NS_PER_DAY).all() and (interval[22:] == 8 * NS_PER_HOUR).all()
    assert t["ts_event"][0].as_py() == parse_timestamp("2016-05-14T12:00:00Z")
    assert t["rate"][0].as_py() == pytest.approx(6.9e-4)
    assert (t["available_at"].to_numpy() == t["ts_event"].to_numpy()).all()
    assert set(t["instrument"].to_pylist()) == {"XBTUSD"}
    assert r.report.get("mixed_interval")[0].count == 4866


def test_deribit_funding_real(shared_data, load):
    path = shared_data / "funding/deribit_history.csv"
    r = load("deribit_funding", "funding", path, publication_lag="1s")
    t = r.table
    raw = pd.read_csv(path)
    assert t.num_rows == len(raw) == 16008
    ts = t["ts_event"].to_numpy()
    assert (np.diff(ts) > 0).all()  # the DST-repeated hour was put back in order
    # UTC comes from the millisecond `timestamp`, not from the London-time `time_dt`
    assert ts[0] == 1556618400000 * 10**6
    assert (t["interval_ns"].to_numpy() == NS_PER_HOUR).all()
    np.testing.assert_allclose(np.sort(t["rate"].to_numpy()), np.sort(raw["interest_1h"].to_numpy()))
    assert (t["available_at"].to_numpy() - ts == 10**9).all()
    unsorted = r.report.get("unsorted")[0]
    assert unsorted.count == 1 and unsorted.first_row == "line 4313"
    assert r.report.get("duplicate_column")[0].action == "ignored the copy"


def test_deribit_unsorted_refused_when_configured(shared_data, load):
    with pytest.raises(DataError, match=r"line 4313.*not sorted"):
        load("deribit_funding", "funding", shared_data / "funding/deribit_history.csv", unsorted_policy="error")


def test_deribit_index_as_mark(shared_data, load):
    r = load("deribit_funding", "mark", shared_data / "funding/deribit_history.csv")
    t = r.table
    assert np.isnan(t["mark_price"].to_numpy()).all()
    assert t["index_price"][0].as_py() == 5150.94
    assert "nan" not in r.report.rules  # mark_price is absent by construction


def test_bitmex_prices_as_mark(shared_data, load):
    r = load("bitmex_prices", "mark", shared_data / "funding/price_data.csv")
    t = r.table
    assert t.num_rows == 2652
    assert t["mark_price"][0].as_py() == 7694.0
    assert t["ts_event"][0].as_py() == parse_timestamp("2018-06-04T04:00:07.109045Z")


def test_generic_funding_interval_inferred(write, load):
    p = write("f.csv", "time,symbol,funding_rate\n"
                       "2024-01-01T00:00:00Z,BTCUSDT,0.0001\n2024-01-01T08:00:00Z,BTCUSDT,0.0002\n"
                       "2024-01-01T16:00:00Z,BTCUSDT,-0.0001\n")
    r = load("funding", "funding", p)
    assert r.table["interval_ns"].to_pylist() == [8 * NS_PER_HOUR] * 3
    assert r.table["rate"].to_pylist() == [0.0001, 0.0002, -0.0001]
    assert "interval_inferred" in r.report.rules
    r2 = load("funding", "funding", p, options={"interval": "4h"})
    assert r2.table["interval_ns"].to_pylist() == [4 * NS_PER_HOUR] * 3


def test_generic_funding_rejects_unknown_option(write, load):
    p = write("f.csv", "time,rate\n2024-01-01,0.1\n2024-01-02,0.1\n")
    with pytest.raises(ConfigError, match="unknown option"):
        load("funding", "funding", p, options={"intervall": "8h"})


def test_funding_rate_as_text_is_refused_naming_line(write, load):
    p = write("f.csv", "time,rate\n2024-01-01,0.1\n2024-01-02,abc\n2024-01-03,0.2\n")
    with pytest.raises(DataError, match=r"line 3.*'abc'"):
        load("funding", "funding", p, options={"interval": "1d"})
