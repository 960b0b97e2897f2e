"""load_source: registry dispatch, kinds, external formats (binance_ws, sim) loaded lazily."""

from __future__ import annotations

import sys
import types

import pyarrow as pa
import pytest

from dea.data.schema import SCHEMAS
from dea.data.sources import LOADERS, combine_fingerprints, formats, load_source
from dea.errors import ConfigError, DataError


def test_registry_lists_every_documented_format():
    documented = {"freqtrade", "ohlcv", "coinmetrics", "fear_greed", "google_trends", "social", "fred", "daily",
                  "bitmex_funding", "deribit_funding", "funding", "tardis_trades", "tardis_quotes",
                  "tardis_book_snapshot", "tardis_incremental_l2", "binance_ws", "binance_depth_csv", "sim"}
    assert documented <= set(formats())
    for spec in LOADERS.values():
        assert spec.kinds <= set(SCHEMAS)


def test_unknown_format_and_wrong_kind(tmp_path, source, write):
    p = write("d.csv", "date,x\n2024-01-01,1\n")
    with pytest.raises(ConfigError, match="unknown format 'nope'"):
        load_source(source("nope", "bars", p), tmp_path)
    with pytest.raises(ConfigError, match="produces \\['exogenous'\\], not 'bars'"):
        load_source(source("fred", "bars", p), tmp_path)


def test_missing_file(tmp_path, source):
    with pytest.raises(DataError, match="file not found"):
        load_source(source("fred", "exogenous", "missing.csv"), tmp_path)


def test_relative_path_resolves_against_base_dir(tmp_path, source, write):
    write("d.csv", "date,x\n2024-01-01,1\n2024-01-02,2\n")
    r = load_source(source("daily", "exogenous", "d.csv"), tmp_path)
    assert r.table.num_rows == 2


def test_binance_ws_dispatch(tmp_path, source, write, monkeypatch):
    """``binance_ws`` calls dea.data.loaders.binance_ws.load_capture(path, kind, instrument, options)."""
    calls = []

    def load_capture(path, kind, instrument, options):
        calls.append((path.name, kind, instrument, options))
        n = 3
        return pa.table({"ts_event": [1, 2, 3], "available_at": [5, 6, 7], "instrument": ["BTCUSDT"] * n,
                         "price": [10.0, 11.0, 12.0], "size": [1.0, 1.0, 2.0], "side": pa.array([1, -1, 1], pa.int8()),
                         "trade_id": [1, 2, 3]})

    fake = types.ModuleType("dea.data.loaders.binance_ws")
    fake.load_capture = load_capture
    monkeypatch.setitem(sys.modules, "dea.data.loaders.binance_ws", fake)
    p = write("cap.gz", b"x")
    r = load_source(source("binance_ws", "trades", p, instrument="BTCUSDT", options={"a": 1}), tmp_path)
    assert calls == [("cap.gz", "trades", "BTCUSDT", {"a": 1})]
    assert r.table.schema == SCHEMAS["trades"] and r.table.num_rows == 3
    assert len(r.fingerprint) == 64


def test_sim_dispatch_picks_kind_and_instrument(tmp_path, source):
    opts = {"seed": 3, "symbols": ["A", "B"], "n_steps": 300, "step": "1h"}
    r = load_source(source("sim", "bars", "sim", instrument="B", step="1h", options=opts), tmp_path)
    assert set(r.table["instrument"].to_pylist()) == {"B"}
    assert r.table.num_rows == 300
    again = load_source(source("sim", "bars", "sim", instrument="B", step="1h", options=opts), tmp_path)
    assert again.fingerprint == r.fingerprint
    other = load_source(source("sim", "bars", "sim", instrument="B", step="1h", options={**opts, "seed": 4}), tmp_path)
    assert other.fingerprint != r.fingerprint


def test_combine_fingerprints_order_independent():
    a = combine_fingerprints({"x": "1", "y": "2"})
    assert a == combine_fingerprints({"y": "2", "x": "1"})
    assert a != combine_fingerprints({"x": "1", "y": "3"})


def test_capture_reader_findings_reach_the_report(tmp_path, source, write, monkeypatch):
    def load_capture(path, kind, instrument, options):
        t = pa.table({"ts_event": [1, 1, 2], "available_at": [3, 3, 4], "instrument": ["X"] * 3,
                      "seq": [10, 10, 12], "side": pa.array([1, -1, 1], pa.int8()), "price": [9.0, 11.0, 9.5],
                      "size": [1.0, 1.0, 0.0], "is_snapshot": [True, True, False]})
        return t.replace_schema_metadata({b"dea.sequence_gaps": b"2", b"dea.report.resync": b"1"})

    fake = types.ModuleType("dea.data.loaders.binance_ws")
    fake.load_capture = load_capture
    monkeypatch.setitem(sys.modules, "dea.data.loaders.binance_ws", fake)
    r = load_source(source("binance_ws", "book", write("cap.gz", b"x")), tmp_path)
    assert r.report.count("sequence_gap") == 2 and r.report.count("resync") == 1
