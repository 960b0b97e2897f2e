"""Panel alignment rules, hand-checked: OHLCV aggregation, staleness, funding, entity mapping, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dea.config.experiment import validate_config
from dea.data.panel import asof_index, assemble_panel, build_panel
from dea.data.schema import conform
from dea.errors import DataError, MissingFundingError
from dea.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, parse_timestamp

T0 = parse_timestamp("2024-01-01")


def _cfg(instruments: list[dict[str, Any]], sources: list[dict[str, Any]], clock: dict[str, Any]):
    return validate_config(
        {"data": {"instruments": instruments, "sources": sources, "clock": clock}, "features": {"set": [{"name": "logret"}]}}
    )


def _bars(inst: str, opens_min: list[int], closes: list[float], step_min: int = 60) -> pa.Table:
    ts = np.array([T0 + m * NS_PER_MIN for m in opens_min], dtype=np.int64)
    c = np.array(closes, dtype=np.float64)
    return conform("bars", pa.table({
        "ts_event": ts, "available_at": ts + step_min * NS_PER_MIN, "instrument": [inst] * len(ts),
        "open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": np.ones(len(ts)),
    }))


def _funding(inst: str, hours: list[int], rates: list[float]) -> pa.Table:
    ts = np.array([T0 + h * NS_PER_HOUR for h in hours], dtype=np.int64)
    return conform("funding", pa.table({
        "ts_event": ts, "available_at": ts, "instrument": [inst] * len(ts),
        "rate": np.array(rates, dtype=np.float64), "interval_ns": np.full(len(ts), 8 * NS_PER_HOUR),
    }))


def _exo(series: str, entity: str, days: list[int], values: list[float]) -> pa.Table:
    ts = np.array([T0 + d * NS_PER_DAY for d in days], dtype=np.int64)
    return conform("exogenous", pa.table({
        "ts_event": ts, "available_at": ts + NS_PER_DAY, "series": [series] * len(ts),
        "entity": [entity] * len(ts), "value": np.array(values, dtype=np.float64),
    }))


def test_5m_bars_aggregate_to_hourly_ohlcv(shared_data: Path) -> None:
    path = shared_data / "perps_5m_15m" / "ETH_USDT_USDT-5m-futures.feather"
    cfg = _cfg(
        [{"symbol": "ETH", "kind": "perpetual", "funding": "none"}],
        [{"name": "eth", "kind": "bars", "format": "freqtrade", "path": str(path), "instrument": "ETH", "step": "5m"}],
        {"step": "1h", "start": "2024-02-01", "end": "2024-02-03"},
    )
    p = build_panel(cfg)
    raw = pd.read_feather(path)
    raw["date"] = pd.to_datetime(raw["date"], utc=True)
    for k in (1, 7, 30):
        t = pd.Timestamp(int(p.clock[k]), tz="UTC")
        win = raw[(raw["date"] >= t - pd.Timedelta(hours=1)) & (raw["date"] < t)]
        assert len(win) == 12
        got = {f: p.fields[f][k, 0] for f in ("open", "high", "low", "close", "volume")}
        assert got["open"] == win["open"].iloc[0] and got["close"] == win["close"].iloc[-1]
        assert got["high"] == win["high"].max() and got["low"] == win["low"].min()
        assert got["volume"] == pytest.approx(win["volume"].sum(), rel=1e-12)
        assert p.age["close"][k, 0] == 0.0
    np.testing.assert_array_equal(p.fields["price"], p.fields["close"])


def test_missing_bar_is_nan_not_a_repeated_bar_unless_staleness_allows() -> None:
    tables = {"b": _bars("X", [0, 60, 180], [1.0, 2.0, 4.0])}  # the 02:00 -> 03:00 bar is missing
    inst = [{"symbol": "X", "kind": "spot"}]
    clock = {"step": "1h", "start": "2024-01-01T01:00:00", "end": "2024-01-01T04:00:00"}
    src = {"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X", "step": "1h"}
    p = assemble_panel(_cfg(inst, [src], clock).data, tables)
    np.testing.assert_array_equal(p.fields["close"][:, 0], [1.0, 2.0, np.nan, 4.0])
    np.testing.assert_array_equal(p.age["close"][:, 0], [0, 0, NS_PER_HOUR, 0])
    p2 = assemble_panel(_cfg(inst, [{**src, "max_staleness": "1h"}], clock).data, tables)
    np.testing.assert_array_equal(p2.fields["close"][:, 0], [1.0, 2.0, 2.0, 4.0])


def test_fear_greed_gap_goes_nan_beyond_max_staleness(shared_data: Path) -> None:
    cfg = _cfg(
        [{"symbol": "BTC", "kind": "spot"}],
        [
            {"name": "px", "kind": "bars", "format": "coinmetrics", "instrument": "BTC", "step": "1d", "max_staleness": "10d",
             "path": str(shared_data / "daily_onchain/coinmetrics/btc.csv")},
            {"name": "fg", "kind": "exogenous", "format": "fear_greed", "step": "1d", "series": ["fear_greed_index"],
             "max_staleness": "2d", "path": str(shared_data / "sentiment/fear_greed_index_2018_2025.csv")},
        ],
        {"step": "1d", "start": "2018-04-13", "end": "2018-04-19"},
    )
    p = build_panel(cfg)
    # CSV: 04-12 18, 04-13 23, (04-14..16 missing), 04-17 26, 04-18 24; a day is visible at its end
    np.testing.assert_array_equal(p.series["fear_greed_index"], [18, 23, 23, 23, np.nan, 26, 24])
    np.testing.assert_array_equal(p.age["fear_greed_index"] / NS_PER_DAY, [0, 0, 1, 2, 3, 0, 0])


def test_per_asset_series_map_by_symbol_or_base_case_insensitive() -> None:
    insts = [{"symbol": "BTCUSDT", "kind": "spot", "base": "BTC"}, {"symbol": "ETHUSDT", "kind": "spot", "base": "eth"}]
    tables = {
        "b1": _bars("BTCUSDT", list(range(0, 24 * 60 * 4, 60)), list(np.linspace(1, 2, 96))),
        "b2": _bars("ETHUSDT", list(range(0, 24 * 60 * 4, 60)), list(np.linspace(1, 2, 96))),
        "oc": pa.concat_tables([_exo("AdrActCnt", "btc", [0, 1, 2], [10, 11, 12]), _exo("AdrActCnt", "ETH", [0, 1], [5, 6]),
                                _exo("AdrActCnt", "doge", [0], [1])]),
        "g": _exo("DGS10", "", [0, 1], [2.5, np.nan]),
    }
    srcs = [
        {"name": "b1", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "BTCUSDT"},
        {"name": "b2", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "ETHUSDT"},
        {"name": "oc", "kind": "exogenous", "format": "coinmetrics", "path": "x"},
        {"name": "g", "kind": "exogenous", "format": "fred", "path": "x"},
    ]
    p = assemble_panel(_cfg(insts, srcs, {"step": "1d", "start": "2024-01-02", "end": "2024-01-04"}).data, tables)
    np.testing.assert_array_equal(p.fields["AdrActCnt"], [[10, 5], [11, 6], [12, 6]])
    assert p.report["oc"]["unmatched_entities"] == ["doge"]
    # a NaN observation (holiday) is not an observation: the previous value stays visible
    np.testing.assert_array_equal(p.series["DGS10"], [2.5, 2.5, 2.5])


def test_asof_prefers_latest_event_among_published_rows() -> None:
    clock = np.array([10, 20, 30])
    ts = np.array([1, 2, 3])
    av = np.array([5, 25, 15])  # row 2 (ts 2) is published late, after row 3 (ts 3)
    np.testing.assert_array_equal(asof_index(clock, ts, av), [0, 2, 2])


def _funding_cfg(funding: str, clock_end: str = "2024-01-02T00:00:00", kind: str = "perpetual"):
    inst = {"symbol": "X", "kind": kind}
    if kind == "perpetual":
        inst["funding"] = funding
    srcs = [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X", "step": "1h"},
            {"name": "f", "kind": "funding", "format": "funding", "path": "x", "instrument": "X"}]
    return _cfg([inst], srcs, {"step": "1h", "start": "2024-01-01T01:00:00", "end": clock_end}).data


def _funding_tables(hours: list[int], rates: list[float]) -> dict[str, pa.Table]:
    return {"b": _bars("X", list(range(0, 60 * 48, 60)), list(np.linspace(1, 2, 48))), "f": _funding("X", hours, rates)}


def test_funding_rate_settled_none_and_spot() -> None:
    tables = _funding_tables([0, 8, 16, 24], [1e-4, 2e-4, -1e-4, 3e-4])
    p = assemble_panel(_funding_cfg("f"), tables)
    settled = p.fields["funding_settled"][:, 0]
    assert settled[7] == 2e-4 and settled[15] == -1e-4 and settled[23] == 3e-4  # rows at 08:00, 16:00, 24:00
    assert settled.sum() == pytest.approx(4e-4) and (np.delete(settled, [7, 15, 23]) == 0).all()
    assert p.fields["funding_rate"][6, 0] == 1e-4 and p.fields["funding_rate"][7, 0] == 2e-4
    none = assemble_panel(_funding_cfg("none"), tables)
    assert np.isnan(none.fields["funding_rate"]).all() and (none.fields["funding_settled"] == 0).all()
    spot = assemble_panel(_funding_cfg("", kind="spot"), tables)
    assert (spot.fields["funding_rate"] == 0).all() and (spot.fields["funding_settled"] == 0).all()


def test_funding_outside_coverage_or_gapped_or_nan_is_never_zero() -> None:
    with pytest.raises(MissingFundingError, match="covers settlements"):
        assemble_panel(_funding_cfg("f", clock_end="2024-01-02T12:00:00"), _funding_tables([0, 8, 16, 24], [1e-4] * 4))
    with pytest.raises(MissingFundingError, match=r"no settlement at 2024-01-01T08:00:00Z and 2 more settlement instants"):
        assemble_panel(_funding_cfg("f"), _funding_tables([0, 32], [1e-4, 1e-4]))
    # even one missing settlement (a gap of two intervals) is refused: uncharged it would be a silent zero
    with pytest.raises(MissingFundingError, match=r"no settlement at 2024-01-01T16:00:00Z \(interval 8h\)"):
        assemble_panel(_funding_cfg("f"), _funding_tables([0, 8, 24], [1e-4] * 3))
    p = assemble_panel(_funding_cfg("f"), _funding_tables([0, 8, 16, 24], [1e-4, np.nan, 1e-4, 1e-4]))
    assert np.isnan(p.fields["funding_settled"][7, 0])  # unknown settled amount stays unknown


def test_real_funding_history_ends_before_clock(shared_data: Path) -> None:
    cfg = _cfg(
        [{"symbol": "BTC", "kind": "perpetual", "funding": "fund"}],
        [{"name": "px", "kind": "bars", "format": "coinmetrics", "instrument": "BTC", "step": "1d",
          "path": str(shared_data / "daily_onchain/coinmetrics/btc.csv")},
         {"name": "fund", "kind": "funding", "format": "bitmex_funding", "instrument": "BTC",
          "path": str(shared_data / "funding/funding_data.csv")}],
        {"step": "1d", "start": "2020-10-01", "end": "2020-12-01"},
    )
    with pytest.raises(MissingFundingError, match="BTC"):
        build_panel(cfg)


def test_two_bar_sources_for_one_instrument_is_an_error() -> None:
    tables = {"a": _bars("X", [0, 60], [1.0, 2.0]), "b": _bars("X", [0, 60], [1.0, 2.0])}
    srcs = [{"name": n, "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X"} for n in ("a", "b")]
    with pytest.raises(DataError, match="two sources"):
        assemble_panel(_cfg([{"symbol": "X"}], srcs, {"step": "1h"}).data, tables)


def test_row_is_what_streaming_consumes() -> None:
    tables = {"b": _bars("X", [0, 60, 120], [1.0, 2.0, 3.0]), "g": _exo("fg", "", [0], [50.0])}
    srcs = [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X"},
            {"name": "g", "kind": "exogenous", "format": "daily", "path": "x"}]
    p = assemble_panel(_cfg([{"symbol": "X"}], srcs, {"step": "1h"}).data, tables)
    fields, series = p.row(1)
    assert fields["close"].shape == (1,) and fields["close"][0] == 2.0 and isinstance(series["fg"], float)
    assert len(p) == 3 and p.clock[0] == T0 + NS_PER_HOUR
