"""``dea data inspect`` on every source folder of the real data, and ``dea data ingest``."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from dea.cli.main import main
from dea.data.inspect import inspect_path
from dea.data.loaders.detect import detect
from dea.data.sources import EXTERNAL_FORMATS

FOLDERS = ["perps_5m_15m", "funding", "orderbook/tardis_nautilus", "orderbook/binance_ws_2024",
           "daily_onchain/coinmetrics", "sentiment", "sentiment/btc_social_2014_2021", "macro"]


def _module_available(fmt: str) -> bool:
    module = EXTERNAL_FORMATS[fmt].rpartition(".")[0]
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("folder", FOLDERS)
def test_inspect_every_shared_folder(shared_data, folder):
    ins = inspect_path(shared_data / folder)
    assert ins.entries, folder
    assert not [e for e in ins.entries if e.status == "unrecognised"]
    for e in ins.entries:
        if e.status == "refused":
            # only a capture whose reader module is not installed may be refused
            assert e.format in EXTERNAL_FORMATS and not _module_available(e.format), e.note
            assert "not available" in e.note
        elif e.status == "loaded":
            assert e.summaries and all(s.rows > 0 for s in e.summaries)
    assert ins.format()  # renders


def test_inspect_skips_documentation(shared_data):
    assert detect(shared_data / "daily_onchain/coinmetrics/metrics.csv").status == "skip"
    assert detect(shared_data / "daily_onchain/coinmetrics/LICENSE").status == "skip"
    assert detect(shared_data / "sentiment/btc_social_2014_2021/README_data.md").status == "skip"


def test_inspect_summary_values(shared_data):
    ins = inspect_path(shared_data / "macro/DGS10.csv")
    (s,) = ins.entries[0].summaries
    assert s.rows == 2945 and s.median_step == "1d"
    assert s.start.startswith("2015-01-02") and s.end.startswith("2026-04-16")
    assert s.nan_share == pytest.approx(122 / 2945, abs=1e-6)
    assert s.gaps > 0  # weekends are gaps of a business-day series on a 1d step


def test_inspect_reports_garbage_instead_of_crashing(tmp_path):
    (tmp_path / "noise.bin").write_bytes(b"\x00\x01\x02garbage")
    (tmp_path / "prices.csv").write_text("date,open,high,low,close,volume\n2024-01-01,1,1,1,oops,1\n")
    ins = inspect_path(tmp_path)
    status = {e.dataset: e.status for e in ins.entries}
    assert status == {"noise.bin": "unrecognised", "prices.csv": "refused"}
    assert "oops" in [e for e in ins.entries if e.status == "refused"][0].note


def test_cli_inspect_path_and_json(shared_data, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["data", "inspect", str(shared_data / "funding"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "deribit_history.csv [funding]" in text and "unsorted" in text
    data = json.loads(out.read_text())
    assert {d["status"] for d in data["datasets"]} == {"loaded"}


def test_cli_ingest_and_inspect_config(shared_data, tmp_path, capsys):
    cfg = {
        "name": "t",
        "data": {
            "store": str(tmp_path / "store"),
            "instruments": [{"symbol": "ETH", "kind": "perpetual", "funding": "none"}],
            "sources": [
                {"name": "eth", "kind": "bars", "format": "freqtrade", "instrument": "ETH",
                 "path": str(shared_data / "perps_5m_15m/ETH_USDT_USDT-15m-futures.feather")},
                {"name": "fg", "kind": "exogenous", "format": "fear_greed", "publication_lag": "1h",
                 "path": str(shared_data / "sentiment/fear_greed_index_2018_2025.csv")},
            ],
        },
        "features": {"set": [{"name": "logret", "params": {"horizon": 1}}]},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["data", "ingest", "--config", str(path)]) == 0
    first = capsys.readouterr().out
    assert "added" in first and "unchanged" not in first
    assert main(["data", "ingest", "--config", str(path)]) == 0
    second = capsys.readouterr().out
    assert second.count("unchanged") == 2
    assert main(["data", "inspect", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "(global): 2 series" in shown and "ETH" in shown
    bad = dict(cfg)
    bad["data"] = {**cfg["data"], "sources": [{**cfg["data"]["sources"][0], "duplicate_policy": "error",
                                               "path": str(tmp_path / "missing.feather")}]}
    path.write_text(yaml.safe_dump(bad))
    assert main(["data", "ingest", "--config", str(path)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_inspect_relative_path(shared_data, monkeypatch):
    monkeypatch.chdir(shared_data.parent)
    ins = inspect_path(f"{shared_data.name}/funding/funding_data.csv")
    assert [e.status for e in ins.entries] == ["loaded"]
