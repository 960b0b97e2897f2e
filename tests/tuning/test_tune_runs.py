"""``dea tune`` end to end on a tiny simulated market: local SQLite, and PostgreSQL with two
worker processes joining one study."""

from __future__ import annotations

import uuid

import pytest
import yaml
from mlflow import MlflowClient

from dea.cli.main import main
from dea.config import load_config
from training.tuning import open_study, storage_url, tune


def _children(uri: str, parent: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_tune_locally_writes_best_yaml_and_child_runs(tiny_config, tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    s = tune(tiny_config, trials=2, tracking_uri=uri, out_dir=tmp_path / "out")
    assert s.n_complete + s.n_pruned >= 2 and s.best_number is not None
    assert 0.0 <= s.deflated_sharpe <= 1.0
    best = load_config(s.best_config)
    assert best.training.lr == pytest.approx(s.best_params["training.lr"])
    assert best.model.hidden == [s.best_params["model.hidden.0"]]
    runs = _children(uri, s.parent_run)
    assert len(runs) == s.n_complete + s.n_pruned + s.n_failed
    assert {r.data.tags["dea.trial_state"] for r in runs} <= {"COMPLETE", "PRUNED"}
    assert "deflated Sharpe" in s.format()


@pytest.mark.postgres
def test_two_workers_share_a_postgres_study(tiny_config, tmp_path, postgres_url, capsys) -> None:
    study = f"dea-test-{uuid.uuid4().hex[:8]}"
    code = main(["tune", "--config", str(tiny_config), "--trials", "2", "--jobs", "2", "--storage", postgres_url,
                 "--study", study, "--set", "tracking.enabled=false", "--out", str(tmp_path / "out")])
    assert code == 0
    assert "best trial" in capsys.readouterr().out
    st = open_study(load_config(tiny_config), storage_url(postgres_url, tmp_path), study)
    done = [t for t in st.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) >= 2
    # every worker runs at least one trial before the shared trial budget can stop it
    workers = {t.user_attrs.get("dea.worker") for t in done if t.state.name == "COMPLETE"}
    assert len(workers) == 2, workers
    assert yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["training"]["lr"] == pytest.approx(st.best_params["training.lr"])
