"""Funding, mark, index and premium index in freqtrade and Binance layouts, recognised by content;
open interest (exchange dumps and vendor ``Date,Data`` exports) and the ``oi_change`` feature."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from dea.cli.main import main
from dea.config import validate_config
from dea.data.inspect import inspect_path
from dea.data.loaders.detect import detect
from dea.data.panel import assemble_panel
from dea.errors import DataError
from dea.features import FeatureSet
from dea.timeutil import NS_PER_HOUR, parse_timestamp

FUND = "funding/binance_usdm_2023_2024"
T0 = parse_timestamp("2024-01-01T00:00:00Z")


def _candles(path, hours: list[int], o, h, lo, c, v, step_h: int = 8) -> None:
    dates = pa.array([T0 + k * step_h * NS_PER_HOUR for k in hours], pa.timestamp("ns", tz="UTC"))
    feather.write_feather(pa.table({"date": dates, "open": o, "high": h, "low": lo, "close": c, "volume": v}), str(path))


def test_real_freqtrade_funding_and_mark(shared_data, load):
    r = load("freqtrade", "funding", shared_data / FUND / "BTC_USDT_USDT-8h-funding_rate.feather", instrument="BTCUSDT")
    t = r.table
    assert t.num_rows == 1498 and set(t["instrument"].to_pylist()) == {"BTCUSDT"}
    assert (np.mod(t["ts_event"].to_numpy(), 8 * NS_PER_HOUR) == 0).all()  # ms stamps snapped onto 00/08/16
    assert r.report.count("settlement_snapped") > 0
    assert t["rate"].to_numpy()[0] == pytest.approx(1e-4) and (t["interval_ns"].to_numpy() == 8 * NS_PER_HOUR).all()
    m = load("freqtrade", "mark", shared_data / FUND / "BTC_USDT_USDT-8h-mark.feather", step="8h").table
    # a kline's close is the mark at its close: the 2023-01-01 00:00 kline closes at 08:00 at 16519.5
    assert m["ts_event"][0].as_py() == parse_timestamp("2023-01-01T08:00:00Z")
    assert m["mark_price"][0].as_py() == 16519.5 and np.isnan(m["index_price"].to_numpy()).all()
    with pytest.raises(DataError, match="funding_rate.*not bars; declare the source as kind funding"):
        load("freqtrade", "bars", shared_data / FUND / "BTC_USDT_USDT-8h-funding_rate.feather")


def test_inspect_mixed_freqtrade_futures_folder(shared_data, tmp_path, capsys):
    folder = tmp_path / "futures"
    folder.mkdir()
    for f in ("BTC_USDT_USDT-8h-funding_rate.feather", "BTC_USDT_USDT-8h-mark.feather"):
        shutil.copy(shared_data / FUND / f, folder / f)
    shutil.copy(shared_data / "perps_5m_15m/ETH_USDT_USDT-15m-futures.feather", folder)
    n = 6
    _candles(folder / "ETH_USDT_USDT-1h-funding_rate.feather", list(range(n)), [1e-4, -2e-4] * 3, [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n, 1)
    px = [2000.0 + k for k in range(n)]
    _candles(folder / "ETH_USDT_USDT-1h-index.feather", list(range(n)), px, px, px, px, [0.0] * n, 1)
    prem = [1e-4, -3e-4, 2e-4, -1e-4, 0.0, 5e-5]
    _candles(folder / "ETH_USDT_USDT-1h-premiumIndex.feather", list(range(n)), prem, prem, prem, prem, [0.0] * n, 1)
    # a funding file whose name says nothing: recognised by its values
    _candles(folder / "mystery.feather", list(range(n)), [1e-4] * n, [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n)
    kinds = {e.dataset: (e.status, e.kind) for e in inspect_path(folder).entries}
    assert kinds == {
        "BTC_USDT_USDT-8h-funding_rate.feather": ("loaded", "funding"),
        "BTC_USDT_USDT-8h-mark.feather": ("loaded", "mark"),
        "ETH_USDT_USDT-15m-futures.feather": ("loaded", "bars"),
        "ETH_USDT_USDT-1h-funding_rate.feather": ("loaded", "funding"),
        "ETH_USDT_USDT-1h-index.feather": ("loaded", "mark"),
        "ETH_USDT_USDT-1h-premiumIndex.feather": ("loaded", "exogenous"),
        "mystery.feather": ("loaded", "funding"),
    }
    assert main(["data", "inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "mystery.feather: freqtrade -> funding (funding_rate candles: high/low/close are all 0" in out
    assert "'index' in the file name" in out
    idx = inspect_path(folder / "ETH_USDT_USDT-1h-index.feather").entries[0]
    assert idx.summaries[0].key == "ETH/USDT:USDT"


def test_binance_funding_rest_json_and_csv(tmp_path, load):
    recs = [{"symbol": "BTCUSDT", "fundingTime": 1704067200000 + k * 8 * 3600_000, "fundingRate": f"{r:.8f}",
             "markPrice": f"{42000 + k:.8f}"} for k, r in enumerate([1e-4, 2e-4, -5e-5])]
    js = tmp_path / "BTCUSDT-fundingRate.json"
    js.write_text(json.dumps(recs))
    assert detect(js).format == "binance_funding"
    t = load("binance_funding", "funding", js).table
    assert t["ts_event"].to_pylist() == [T0, T0 + 8 * NS_PER_HOUR, T0 + 16 * NS_PER_HOUR]
    assert t["rate"].to_pylist() == pytest.approx([1e-4, 2e-4, -5e-5]) and t["instrument"][0].as_py() == "BTCUSDT"
    assert load("binance_funding", "mark", js).table["mark_price"].to_pylist() == [42000, 42001, 42002]
    csv = tmp_path / "BTCUSDT-fundingRate-2024-01.csv"
    csv.write_text("calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,0.00010000\n1704096000000,8,0.00020000\n")
    d = detect(csv)
    assert (d.format, d.kinds) == ("binance_funding", ("funding",))
    t = load("binance_funding", "funding", csv).table
    assert t["interval_ns"].to_pylist() == [8 * NS_PER_HOUR] * 2 and t["instrument"][0].as_py() == "BTCUSDT"


def test_binance_premium_index_snapshots_as_mark_and_index(tmp_path, load):
    """Polled /fapi/v1/premiumIndex responses: mark and index price; their lastFundingRate is only
    the predicted rate, so reading them as funding is refused; other JSON records are not skipped."""
    path = tmp_path / "BTCUSDT-premiumIndex.json"
    path.write_text(json.dumps([{"symbol": "BTCUSDT", "markPrice": str(42000 + k), "indexPrice": str(41990 + k),
                                 "lastFundingRate": "0.0001", "nextFundingTime": 1704096000000, "time": 1704067200000 + k * 60_000}
                                for k in range(3)]))
    d = detect(path)
    assert (d.format, d.kinds) == ("binance_funding", ("mark",))
    r = load("binance_funding", "mark", path)
    assert r.table["mark_price"].to_pylist() == [42000, 42001, 42002] and r.table["index_price"].to_pylist() == [41990, 41991, 41992]
    assert r.table["ts_event"][1].as_py() == T0 + 60 * 10**9 and r.report.count("nan") == 0
    with pytest.raises(DataError, match="lastFundingRate is the rate predicted for the next settlement"):
        load("binance_funding", "funding", path)
    other = tmp_path / "orders.json"
    other.write_text(json.dumps([{"orderId": 1}]))
    assert detect(other).status == "unknown"


def test_binance_premium_and_mark_kline_csv(tmp_path, load):
    head = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
    rows = lambda vals: "".join(  # noqa: E731
        f"{1704067200000 + k * 3600_000},{v},{v},{v},{v},0,{1704067200000 + (k + 1) * 3600_000 - 1},0,60,0,0,0\n" for k, v in enumerate(vals))
    prem = tmp_path / "BTCUSDT-1h-2024-01.csv"
    prem.write_text(head + rows([0.0001, -0.0002, 0.00005]))
    d = detect(prem)
    assert (d.format, d.kinds) == ("binance_klines", ("exogenous",)) and "premium" in d.note
    t = load("binance_klines", "exogenous", prem).table
    assert set(t["series"].to_pylist()) == {"premium_index"} and t["entity"][0].as_py() == "BTCUSDT"
    assert t["ts_event"][0].as_py() == T0 + NS_PER_HOUR  # value at the kline's close
    mark = tmp_path / "markPriceKlines" / "BTCUSDT-1h-2024-01.csv"
    mark.parent.mkdir()
    mark.write_text(head + rows([42000.5, 42010.0, 41990.0]))
    assert detect(mark).kinds == ("mark",)
    assert load("binance_klines", "mark", mark).table["mark_price"].to_pylist() == [42000.5, 42010.0, 41990.0]


def test_binance_trade_klines_with_without_header_and_in_microseconds(tmp_path, load, capsys):
    """data.binance.vision kline CSVs: trade bars with a header, older files without one, and the
    2025 spot files whose times are in microseconds: all detected and read to the same instants."""
    head = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"

    def rows(scale: int, volume: float) -> str:
        return "".join(f"{(1704067200000 + k * 3600_000) * scale},{v},{v + 1},{v - 1},{v},{volume},"
                       f"{(1704067200000 + (k + 1) * 3600_000) * scale - 1},0,60,0,0,0\n" for k, v in enumerate([42000.0, 42010.0, 41990.0]))

    (tmp_path / "trades").mkdir()
    files = {"BTCUSDT-1h-2024-01.csv": head + rows(1, 12.5), "ETHUSDT-1h-2019-01.csv": rows(1, 3.0),
             "LTCUSDT-1h-2025-01.csv": head + rows(1000, 5.0)}
    for name, text in files.items():
        (tmp_path / "trades" / name).write_text(text)
    mark = tmp_path / "markPriceKlines" / "BTCUSDT-1h-2019-01.csv"
    mark.parent.mkdir()
    mark.write_text(rows(1, 0))
    hours = [T0 + k * NS_PER_HOUR for k in range(3)]
    for name in files:
        d = detect(tmp_path / "trades" / name)
        assert (d.format, d.kinds) == ("binance_klines", ("bars",)), (name, d.note)
        r = load("binance_klines", "bars", tmp_path / "trades" / name)
        assert r.table["ts_event"].to_pylist() == hours and r.table["close"].to_pylist() == [42000.0, 42010.0, 41990.0]
        assert r.report.count("step_inferred") == 1
    assert load("binance_klines", "bars", tmp_path / "trades" / "ETHUSDT-1h-2019-01.csv").report.get("no_header")
    assert detect(mark).kinds == ("mark",)
    assert load("binance_klines", "mark", mark).table["ts_event"].to_pylist() == [h + NS_PER_HOUR for h in hours]
    # the REST responses (JSON lists of lists, prices as text) of the same klines
    rest = [[1704067200000 + k * 3600_000, str(v), str(v), str(v), str(v), "0", 1704067200000 + (k + 1) * 3600_000 - 1, "0", 60, "0", "0", "0"]
            for k, v in enumerate([1e-4, -2e-4, 5e-5])]
    prem = tmp_path / "rest" / "BTCUSDT-premiumIndexKlines-1h.json"
    prem.parent.mkdir()
    prem.write_text(json.dumps(rest))
    d = detect(prem)
    assert (d.format, d.kinds) == ("binance_klines", ("exogenous",)) and "REST kline response" in d.note
    t = load("binance_klines", "exogenous", prem).table
    assert t["value"].to_pylist() == [1e-4, -2e-4, 5e-5] and t["ts_event"].to_pylist() == [h + NS_PER_HOUR for h in hours]
    assert main(["data", "inspect", str(tmp_path)]) == 0
    assert "unrecognised" not in capsys.readouterr().out


def test_websocket_mark_price_stream_as_mark_index_and_funding(tmp_path, load):
    T = 1704096000000  # next settlement 08:00
    lines = [f'{(T - 3000 + k * 1000) * 10**6 + 5_000_000} {json.dumps({"stream": "btcusdt@markPrice@1s", "data": {"e": "markPriceUpdate", "E": T - 3000 + k * 1000, "s": "BTCUSDT", "p": str(42000 + k), "i": str(41990 + k), "P": "42001", "r": str(1e-4 * (k + 1)), "T": T if k < 3 else T + 8 * 3600_000}})}'
             for k in range(5)]
    lines.insert(2, '1704095999000000000 {"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","m":true}')
    path = tmp_path / "usdm_btcusdt_mark.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert {"mark", "funding"} <= set(detect(path).kinds)
    for fmt in ("binance_mark_stream", "binance_ws"):
        m = load(fmt, "mark", path, instrument="BTCUSDT").table
        assert m["mark_price"].to_pylist() == [42000, 42001, 42002, 42003, 42004]
        assert m["index_price"].to_pylist() == [41990, 41991, 41992, 41993, 41994]
        assert (m["available_at"].to_numpy() >= m["ts_event"].to_numpy()).all()
        f = load(fmt, "funding", path, instrument="BTCUSDT").table
        # the 08:00 settlement pays the last rate announced before it; the next one is not settled yet
        assert f["ts_event"].to_pylist() == [T * 10**6] and f["rate"].to_pylist() == pytest.approx([3e-4])


def test_open_interest_dumps_vendor_export_and_feature(tmp_path, load):
    js = tmp_path / "BTCUSDT-openInterestHist.json"
    js.write_text(json.dumps([{"symbol": "BTCUSDT", "sumOpenInterest": str(100.0 + k), "sumOpenInterestValue": str(4e6 + k),
                               "timestamp": 1704067200000 + k * 3600_000} for k in range(4)]))
    assert detect(js).kinds == ("open_interest",)
    t = load("open_interest", "open_interest", js).table
    assert t["open_interest"].to_pylist() == [100, 101, 102, 103] and t["open_interest_value"][0].as_py() == 4e6
    assert t["available_at"].to_pylist() == t["ts_event"].to_pylist()  # snapshots: known when taken
    metrics = tmp_path / "BTCUSDT-metrics-2024-01-01.csv"
    metrics.write_text("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio\n"
                       "2024-01-01 00:00:00,BTCUSDT,100.5,4200000.0,1.2\n2024-01-01 00:05:00,BTCUSDT,101.5,4240000.0,1.1\n")
    assert detect(metrics).format == "open_interest"
    assert load("open_interest", "open_interest", metrics).table["open_interest"].to_pylist() == [100.5, 101.5]
    vendor = tmp_path / "btc_open_interest.csv"
    vendor.write_text("Date,Data\n2024.1.1,10\n2024.1.2,20\n2024.1.3,40\n")
    d = detect(vendor)
    assert (d.format, d.kinds) == ("date_data", ("open_interest",))
    vr = load("date_data", "open_interest", vendor, instrument="BTC")
    vt = vr.table
    assert vr.report.count("nan") == 0  # no notional column in a Date,Data export: NaN by construction, not missing
    assert vt["available_at"][0].as_py() == T0 + 24 * NS_PER_HOUR  # a day's value: known at the day's end
    with pytest.raises(DataError, match="negative open_interest"):
        bad = tmp_path / "neg_open_interest.csv"
        bad.write_text("Date,Data\n2024.1.1,-1\n")
        load("date_data", "open_interest", bad, instrument="BTC")
    # panel field + oi_change on it: log(20/10) at day 2's end, log(40/20) at day 3's end
    cfg = validate_config({
        "data": {"instruments": [{"symbol": "BTC"}],
                 "sources": [{"name": "px", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "BTC", "step": "1d"},
                             {"name": "oi", "kind": "open_interest", "format": "date_data", "path": str(vendor), "instrument": "BTC"}],
                 "clock": {"step": "1d", "start": "2024-01-02", "end": "2024-01-04"}},
        "features": {"set": [{"name": "oi_change", "params": {"horizon": 1}}]},
    })
    ts = np.array([T0 + k * 24 * NS_PER_HOUR for k in range(4)])
    px = pa.table({"ts_event": ts, "available_at": ts + 24 * NS_PER_HOUR, "instrument": ["BTC"] * 4,
                   "open": [1.0] * 4, "high": [1.0] * 4, "low": [1.0] * 4, "close": [1.0] * 4, "volume": [1.0] * 4})
    panel = assemble_panel(cfg.data, {"px": px, "oi": vt})
    np.testing.assert_array_equal(panel.fields["open_interest"][:, 0], [10, 20, 40])
    m = FeatureSet.from_config(cfg.features, panel.instruments).batch(panel)
    col = m.values[:, list(m.names).index(next(n for n in m.names if n.startswith("oi_change")))]
    np.testing.assert_allclose(col[1:], [np.log(2), np.log(2)])
