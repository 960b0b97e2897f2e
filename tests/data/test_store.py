"""Canonical store: idempotent ingestion, fingerprints, atomic writes, consistency on read."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from dea.data.sources import load_source, source_fingerprint
from dea.data.store import DataStore
from dea.errors import DataError

FEATHER = "perps_5m_15m/ETH_USDT_USDT-15m-futures.feather"


@pytest.fixture()
def eth(tmp_path, shared_data):
    """A private copy of a real file (tests modify it)."""
    p = tmp_path / "src" / "ETH_USDT_USDT-15m-futures.feather"
    p.parent.mkdir()
    shutil.copy(shared_data / FEATHER, p)
    return p


def test_ingest_is_idempotent(tmp_path, eth, source):
    store = DataStore(tmp_path / "store")
    src = source("freqtrade", "bars", eth, name="eth15")
    first = store.ingest(load_source(src, tmp_path))
    assert first.status == "added" and first.rows == 47_967
    before = (store.root / "eth15" / "bars.parquet").stat().st_mtime_ns
    manifest_before = store.manifest()
    again = store.ingest(load_source(src, tmp_path))
    assert again.status == "unchanged"
    assert (store.root / "eth15" / "bars.parquet").stat().st_mtime_ns == before
    assert store.manifest() == manifest_before
    assert store.ingest_source(src, tmp_path).status == "unchanged"
    assert store.read("eth15", "bars").num_rows == 47_967
    assert store.datasets() == [("eth15", "bars")]


def test_manifest_records_dataset(tmp_path, eth, source):
    store = DataStore(tmp_path / "store")
    res = load_source(source("freqtrade", "bars", eth, name="eth15"), tmp_path)
    store.ingest(res)
    e = json.loads((store.root / "manifest.json").read_text())["datasets"]["eth15"]["bars"]
    assert e["fingerprint"] == res.fingerprint
    assert e["rows"] == 47_967 and e["kind"] == "bars"
    assert e["start"] == "2023-01-01T00:00:00Z"
    assert e["source_path"] == str(eth)
    assert e["report"]["issues"][0]["rule"] == "step_inferred"
    meta = pq.read_schema(store.root / e["file"]).metadata
    assert meta[b"dea.fingerprint"].decode() == res.fingerprint


def test_fingerprint_is_stable_and_content_based(tmp_path, eth, source):
    src = source("freqtrade", "bars", eth, name="a")
    fp1 = load_source(src, tmp_path).fingerprint
    assert load_source(src, tmp_path).fingerprint == fp1 == source_fingerprint(src, tmp_path)
    # the name and location do not matter, the bytes and loader options do
    moved = tmp_path / "elsewhere.feather"
    shutil.copy(eth, moved)
    assert load_source(source("freqtrade", "bars", moved, name="b"), tmp_path).fingerprint == fp1
    assert load_source(source("freqtrade", "bars", eth, publication_lag="1m"), tmp_path).fingerprint != fp1


def test_changed_source_replaces_dataset(tmp_path, write, source):
    store = DataStore(tmp_path / "store")
    p = write("d.csv", "date,x\n2024-01-01,1\n2024-01-02,2\n")
    src = source("daily", "exogenous", p, name="x")
    assert store.ingest_source(src, tmp_path).status == "added"
    p.write_text("date,x\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n")
    out = store.ingest_source(src, tmp_path)
    assert out.status == "replaced" and out.rows == 3
    assert store.read("x", "exogenous")["value"].to_pylist() == [1.0, 2.0, 3.0]


def test_interrupted_write_is_detected_and_repaired(tmp_path, write, source):
    """A data file replaced without its manifest update (crash between the two renames) is
    refused on read, and re-ingestion repairs it."""
    store = DataStore(tmp_path / "store")
    p = write("d.csv", "date,x\n2024-01-01,1\n2024-01-02,2\n")
    src = source("daily", "exogenous", p, name="x")
    store.ingest_source(src, tmp_path)
    other = load_source(source("daily", "exogenous", write("e.csv", "date,x\n2024-01-01,5\n2024-01-02,6\n"), name="x"), tmp_path)
    table = other.table.replace_schema_metadata({b"dea.fingerprint": other.fingerprint.encode()})
    pq.write_table(table, store.path_of("x", "exogenous"))  # new data, old manifest
    with pytest.raises(DataError, match="differs from the manifest"):
        store.read("x", "exogenous")
    assert store.ingest_source(src, tmp_path).status == "replaced"
    assert store.read("x", "exogenous")["value"].to_pylist() == [1.0, 2.0]


def test_no_temporary_files_left(tmp_path, write, source):
    store = DataStore(tmp_path / "store")
    store.ingest_source(source("daily", "exogenous", write("d.csv", "date,x\n2024-01-01,1\n"), name="x"), tmp_path)
    leftovers = [q.name for q in store.root.rglob("*") if q.name.endswith(".tmp")]
    assert leftovers == []


def test_read_unknown_and_bad_names(tmp_path):
    store = DataStore(tmp_path / "store")
    with pytest.raises(DataError, match="no dataset"):
        store.read("nope", "bars")
    with pytest.raises(DataError, match="not a safe file name"):
        store.path_of("../evil", "bars")


def test_corrupt_manifest_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable store manifest"):
        DataStore(tmp_path).manifest()
