"""``dea execution-report`` on a replay journal: table, CSV, plots, calibration fragment, MLflow."""

from __future__ import annotations

import csv
import json

import pytest

from dea.book.capture import parse_capture
from dea.cli.main import main
from dea.execution.replay import capture_messages, journal_records, run_parents
from dea.execution.schedule import ExecutionConfig

S = 1_000_000_000


def test_execution_report_on_a_replay(shared_data, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    p = parse_capture(shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz")
    msgs = capture_messages(p, end_ns=int(p.ev_time[0]) + 100 * S)
    t0 = msgs[0].ts
    starts = [(t0 + 10 * S, 3.0), (t0 + 40 * S, -3.0)]
    recs = []
    for algo in ("immediate", "twap", "passive_aggressive"):
        recs += run_parents(msgs, starts, ExecutionConfig(algo=algo, horizon="30s", slices=3, passive_timeout="10s"),
                            id_prefix=algo[:3])
    journal = tmp_path / "journal.sqlite"
    assert journal_records(recs, journal) == 6
    out = tmp_path / "report"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow
    from mlflow.tracking import fluent

    state = (mlflow.get_tracking_uri(), fluent._active_experiment_id)
    rc = main(["execution-report", str(journal), "--out", str(out), "--calibrate", str(tmp_path / "frag.yaml"),
               "--sigma", "2e-4", "--adv", "5e6", "--tracking-uri", f"file:{tmp_path / 'mlruns'}"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "by algo" in text and "passive_aggressive" in text and "impact k" in text
    rows = list(csv.DictReader((out / "execution_report.csv").open()))
    assert len(rows) == 6
    summary = json.loads((out / "execution_summary.json").read_text())
    imm = summary["immediate"]
    assert imm["timing_bps"] == 0.0 and imm["fill_rate"] == pytest.approx(1.0)
    for r in rows:  # the components add up to the total in every row
        parts = sum(float(r[k]) for k in ("spread_bps", "impact_bps", "timing_bps", "fees_bps", "opportunity_bps"))
        assert float(r["total_bps"]) == pytest.approx(parts)
    assert (out / "shortfall_by_algo.png").stat().st_size > 1000 and (out / "realised_vs_modelled.png").is_file()
    assert "costs:" in (tmp_path / "frag.yaml").read_text()
    logged = list((tmp_path / "mlruns").rglob("execution_summary.json"))
    assert logged, "the report is logged as an MLflow artifact"
    assert (mlflow.get_tracking_uri(), fluent._active_experiment_id) == state  # MLflow's process state untouched


def test_execution_report_refuses_a_journal_without_parents(tmp_path, capsys) -> None:  # noqa: ANN001
    import sqlite3

    sqlite3.connect(tmp_path / "j.sqlite").execute("CREATE TABLE t(x)").connection.close()
    assert main(["execution-report", str(tmp_path / "j.sqlite")]) == 2
    assert "no execution tables" in capsys.readouterr().err
