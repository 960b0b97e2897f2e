"""Ingest cannot lose data: every corruption of a stored source gives a clear error (or a
reported policy) and leaves the store as it was; one file's tables are stored all or nothing;
relative paths in a config (the store included) resolve against the config's folder."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import yaml

from dea.cli.main import main
from dea.data.inspect import inspect_path
from dea.data.store import DataStore

GOOD = "date,open,high,low,close,volume\n" + "".join(
    f"2024-01-{d:02d}T00:00:00Z,{100 + d},{101 + d},{99 + d},{100.5 + d},{10 + d}\n" for d in range(1, 21))


def _config(folder: Path, sources: list[dict], store: str = "store") -> Path:
    cfg = {"name": "t", "features": {"set": [{"name": "logret"}]},
           "data": {"store": store, "instruments": [{"symbol": "X"}], "sources": sources}}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture()
def stored(tmp_path):
    """A config whose one source (px.csv, 20 daily bars) is already in the store."""
    (tmp_path / "px.csv").write_text(GOOD)
    cfg = _config(tmp_path, [{"name": "px", "kind": "bars", "format": "ohlcv", "path": "px.csv", "instrument": "X", "step": "1d"}])
    assert main(["data", "ingest", "--config", str(cfg)]) == 0
    store = DataStore(tmp_path / "store")
    return cfg, store, store.manifest(), store.read("px", "bars")


CORRUPTIONS = {
    "truncated": (GOOD[: GOOD.rindex("\n", 0, len(GOOD) - 1) + 15], "not a well-formed CSV"),
    "empty": ("", "file is empty"),
    "header_only": ("date,open,high,low,close,volume\n", "table is empty; refusing to store it over the 20 stored rows"),
    "random_bytes": (bytes(range(256)) * 4, "not UTF-8"),
    "text_in_numbers": (GOOD.replace("105.5", "n/a?"), "non-numeric value 'n/a?'"),
    "duplicated_timestamps": (GOOD + GOOD.splitlines(keepends=True)[3], "duplicated ts_event"),
    "mixed_offsets": (GOOD.replace("2024-01-05T00:00:00Z", "2024-01-05T05:00:00+05:00"), "mixes timezone offsets"),
    "much_smaller": ("".join(GOOD.splitlines(keepends=True)[:4]), "3 bars rows would replace 20 stored rows"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_source_is_refused_and_store_unchanged(stored, case, capsys):
    cfg, store, manifest, table = stored
    content, message = CORRUPTIONS[case]
    (cfg.parent / "px.csv").write_bytes(content.encode() if isinstance(content, str) else content)
    capsys.readouterr()
    assert main(["data", "ingest", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and "px.csv" in err, err
    assert store.manifest() == manifest and store.read("px", "bars").equals(table)


def test_reported_policies_replace_with_a_report(stored):
    cfg, store, _, _ = stored
    lines = GOOD.splitlines(keepends=True)
    nan_and_unsorted = lines[0] + lines[2] + lines[1] + "".join(lines[3:]).replace("110.5", "")
    (cfg.parent / "px.csv").write_text(nan_and_unsorted)
    assert main(["data", "ingest", "--config", str(cfg)]) == 0
    rules = {i["rule"]: i["action"] for i in store.entry("px", "bars")["report"]["issues"]}
    assert rules["unsorted"] == "sorted" and rules["nan"] == "kept as NaN"
    assert store.read("px", "bars").num_rows == 20


@pytest.mark.parametrize(("lines", "message"), [
    (slice(0, 15), "would lose stored data: it ends at 2024-01-15T00:00:00Z, the stored data at 2024-01-20T00:00:00Z"),
    (slice(6, 21), "would lose stored data: it starts at 2024-01-07T00:00:00Z, the stored data at 2024-01-01T00:00:00Z"),
])
def test_a_replacement_that_loses_the_stored_head_or_tail_is_refused(stored, capsys, lines, message):
    """A download cut at a line boundary is well formed and keeps most rows, yet loses the stored tail."""
    cfg, store, manifest, table = stored
    body = GOOD.splitlines(keepends=True)[1:]
    (cfg.parent / "px.csv").write_text(GOOD.splitlines(keepends=True)[0] + "".join(body[lines]))
    capsys.readouterr()
    assert main(["data", "ingest", "--config", str(cfg)]) == 2
    assert message in capsys.readouterr().err
    assert store.manifest() == manifest and store.read("px", "bars").equals(table)


def test_a_rolling_window_and_a_lost_series(stored, capsys):
    cfg, store, _, _ = stored
    body = GOOD.splitlines(keepends=True)[1:]
    later = "".join(f"2024-01-{d:02d}T00:00:00Z,{100 + d},{101 + d},{99 + d},{100.5 + d},{10 + d}\n" for d in range(21, 24))
    (cfg.parent / "px.csv").write_text(GOOD.splitlines(keepends=True)[0] + "".join(body[3:]) + later)
    assert main(["data", "ingest", "--config", str(cfg)]) == 0  # moved forward: its oldest rows may go
    assert store.read("px", "bars").num_rows == 20
    two = "date,symbol,open,high,low,close,volume\n" + "".join(
        f"2024-01-{d:02d}T00:00:00Z,{s},1,2,0.5,1.5,3\n" for d in range(1, 24) for s in ("X", "Y"))
    (cfg.parent / "multi").mkdir()
    cfg2 = _config(cfg.parent / "multi", [{"name": "px2", "kind": "bars", "format": "ohlcv", "path": "px.csv", "step": "1d", "columns": {"instrument": "symbol"}}])
    (cfg.parent / "multi" / "px.csv").write_text(two)
    assert main(["data", "ingest", "--config", str(cfg2)]) == 0
    (cfg.parent / "multi" / "px.csv").write_text(two.replace(",Y,", ",X2,"))
    capsys.readouterr()
    assert main(["data", "ingest", "--config", str(cfg2)]) == 2
    assert "has no rows for 1 stored series (Y)" in capsys.readouterr().err


def test_allow_shrink_replaces_explicitly(stored):
    cfg, store, _, _ = stored
    (cfg.parent / "px.csv").write_text("".join(GOOD.splitlines(keepends=True)[:4]))
    assert main(["data", "ingest", "--config", str(cfg), "--allow-shrink"]) == 0
    assert store.read("px", "bars").num_rows == 3


def test_capture_with_sequence_gap_is_stored_all_or_nothing(shared_data, tmp_path, capsys):
    ws_dir = shared_data / "orderbook/binance_ws_2024"
    with gzip.open(ws_dir / "usdm_btcusdt_20240808.gz", "rb") as fh:
        lines = [next(fh).rstrip(b"\n") for _ in range(2500)]
    cap = tmp_path / "usdm_btcusdt_20240808.gz"
    cap.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    srcs = [{"name": f"cap_{k}", "kind": k, "format": "binance_ws", "path": cap.name, "instrument": "X"} for k in ("book", "trades")]
    cfg = _config(tmp_path, srcs)
    assert main(["data", "ingest", "--config", str(cfg)]) == 0
    store = DataStore(tmp_path / "store")
    manifest = store.manifest()
    snap = next(i for i, ln in enumerate(lines) if b"lastUpdateId" in ln)
    diffs = [i for i, ln in enumerate(lines) if b"depthUpdate" in ln and i > snap]
    gapped = lines[: diffs[10]] + lines[diffs[10] + 1:]  # one depth diff lost: its trades are intact
    cap.write_bytes(gzip.compress(b"\n".join(gapped) + b"\n"))
    capsys.readouterr()
    assert main(["data", "ingest", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "cap_book" in err and "no later snapshot" in err
    assert "cap_trades: not stored: 'cap_book' from the same file was refused" in err
    assert store.manifest() == manifest  # neither the book nor the trades of the bad capture


def test_inspect_file_exit_status(tmp_path, capsys):
    bad = tmp_path / "prices.csv"
    bad.write_text("date,open,high,low,close,volume\n2024-01-01,1,1,1,oops,1\n")
    assert main(["data", "inspect", str(bad)]) == 2
    assert "refused" in capsys.readouterr().out
    good = tmp_path / "ok.csv"
    good.write_text(GOOD)
    assert main(["data", "inspect", str(good)]) == 0


@pytest.mark.parametrize(("name", "content", "message"), [
    ("header_only.csv", b"date,open,high,low,close,volume\n", "header_only.csv: the file has no data rows (a header only)"),
    ("btc_hash_rate.csv", b"Date,Data\n", "btc_hash_rate.csv: no data rows (a header only)"),
    ("empty.csv", b"", "empty.csv: not recognised as a data file: the file is empty"),
    ("noise.csv", bytes(range(256)) * 4, "noise.csv: not recognised as a data file: not UTF-8 text"),
])
def test_inspect_refuses_an_unreadable_file_named_on_its_own(tmp_path, capsys, name, content, message):
    """A file given by name that yields nothing exits 2 with the reason; in a folder scan it is listed."""
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["data", "inspect", str(path)]) == 2
    out = capsys.readouterr().out
    assert "refused (exit status 2):" in out and message in out, out
    (tmp_path / "ok.csv").write_text(GOOD)
    statuses = {e.dataset: e.status for e in inspect_path(tmp_path).entries}
    assert statuses["ok.csv"] == "loaded"
    assert statuses[name] == ("unrecognised" if name in ("empty.csv", "noise.csv") else "refused")


def test_mixed_epoch_units_are_refused_and_store_unchanged(stored, capsys):
    cfg, store, manifest, table = stored
    ms = [1704067200000 + d * 86_400_000 for d in range(20)]
    rows = [f"{t},1,2,0.5,1.5,3\n" for t in ms]
    rows[7] = f"{ms[7] // 1000},1,2,0.5,1.5,3\n"  # one row written in seconds
    (cfg.parent / "px.csv").write_text("timestamp,open,high,low,close,volume\n" + "".join(rows))
    capsys.readouterr()
    assert main(["data", "ingest", "--config", str(cfg)]) == 2
    assert "line 9: timestamp column 'timestamp' mixes epoch units" in capsys.readouterr().err
    assert store.manifest() == manifest and store.read("px", "bars").equals(table)


def test_paths_resolve_against_the_config_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "px.csv").write_text(GOOD)
    cfg = _config(tmp_path / "cfg", [{"name": "px", "kind": "bars", "format": "ohlcv", "path": "../px.csv", "instrument": "X"}],
                  store="../out_store")
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["data", "ingest", "--config", os.path.relpath(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"writing to store {(tmp_path / 'out_store').resolve()}" in out.splitlines()[0]
    assert (tmp_path / "out_store" / "manifest.json").is_file() and not (elsewhere / "out_store").exists()
    assert json.loads((tmp_path / "out_store" / "manifest.json").read_text())["datasets"]["px"]["bars"]["rows"] == 20


def test_shipped_configs_keep_outputs_at_the_repo_root():
    repo = Path(__file__).resolve().parents[2]
    from dea.config import load_config
    from dea.data.store import store_root

    assert store_root(load_config(repo / "configs/demo.yaml")) == repo / "dea_store"
    assert store_root(load_config(repo / "configs/perps_5m.yaml")) == repo / "dea_store_perps"
