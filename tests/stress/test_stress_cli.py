"""``dea stress``: table, CSV, plot and exit code, on the constant-exposure policy."""

from __future__ import annotations

import csv
from pathlib import Path

from dea.cli.main import main

CONFIG = Path(__file__).with_name("stress_sim.yaml")


def test_cli_prints_the_table_and_writes_outputs(stress_setup, tmp_path, monkeypatch, capsys) -> None:
    _, model, _ = stress_setup
    monkeypatch.chdir(tmp_path)
    code = main(["stress", "--model", str(model), "--config", str(CONFIG), "--scenarios", "flash_crash,stale_feed",
                 "--out", str(tmp_path / "out"), "--set", "tracking.enabled=true",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "flash_crash" in out and "stale_feed" in out and "breaches must be 0" in out
    rows = list(csv.DictReader((tmp_path / "out" / "stress.csv").open()))
    assert [r["scenario"] for r in rows] == ["baseline", "flash_crash", "stale_feed"]
    assert all(r["breaches"] == "0" for r in rows)
    assert (tmp_path / "out" / "stress_equity.png").stat().st_size > 1000
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("stress_sim").experiment_id])
    assert run.data.metrics["flash_crash.breaches"] == 0 and "flash_crash.max_dd" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "stress")} >= {"stress/stress.csv", "stress/stress_equity.png"}


def test_unknown_scenario_is_refused(stress_setup, tmp_path, capsys) -> None:
    _, model, _ = stress_setup
    assert main(["stress", "--model", str(model), "--config", str(CONFIG), "--scenarios", "meteor", "--no-mlflow",
                 "--out", str(tmp_path)]) == 2
    assert "unknown stress scenario" in capsys.readouterr().err
