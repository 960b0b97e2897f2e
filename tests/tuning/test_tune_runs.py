"""``dea tune`` end to end on a tiny simulated market: local SQLite, and PostgreSQL with two
worker processes joining one study."""

from __future__ import annotations

import os
import signal
import uuid

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from dea.cli.main import main
from dea.config import load_config
from training.tuning import RUN_ATTR, open_study, storage_url, summarise


def _children(uri: str, parent: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_dea_tune_writes_best_yaml_and_child_runs(tiny_config, tmp_path, capsys) -> None:
    """`dea tune` end to end (2 trials), as a user runs it: a --set for the tuning run only and
    an --out folder away from the config."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "elsewhere" / "out"
    code = main(["tune", "--config", str(tiny_config), "--trials", "2", "--out", str(out), "--tracking-uri", uri,
                 "--set", "training.epochs=1"])
    assert code == 0
    text = capsys.readouterr().out
    assert "deflated Sharpe" in text and "best trial #" in text
    url = storage_url(None, out)
    assert f"dashboard: optuna-dashboard {url}" in text
    study = optuna.load_study(study_name="dea-study", storage=url)
    s = summarise(study, load_config(tiny_config), url)
    assert s.n_complete + s.n_pruned >= 2 and s.best_number is not None
    assert 0.0 <= s.deflated_sharpe <= 1.0
    # best.yaml: the base config plus the best values; the tuning run's --set is not baked in,
    # and no path became absolute (they are re-based onto best.yaml's folder)
    best_text = (out / "best.yaml").read_text()
    best, base = load_config(out / "best.yaml"), load_config(tiny_config)
    assert best.training.lr == pytest.approx(s.best_params["training.lr"])
    assert best.model.hidden == [s.best_params["model.hidden.0"]]
    assert best.training.epochs == base.training.epochs == 2 and "--set training.epochs=1" in best_text
    raw = yaml.safe_load(best_text)
    assert not raw["data"]["store"].startswith("/") and str(tmp_path) not in best_text
    assert best.resolve_path(best.data.store) == base.resolve_path(base.data.store)
    runs = _children(uri, s.parent_run)
    assert len(runs) == s.n_complete + s.n_pruned + s.n_failed
    assert {r.data.tags["dea.trial_state"] for r in runs} <= {"COMPLETE", "PRUNED"}
    # the dashboard names the metric; each trial links to its MLflow run; the parent names the study
    assert study.metric_names == ["sharpe"]
    by_id = {r.info.run_id: r for r in runs}
    assert len(study.trials) == 2
    for t in study.trials:
        run = by_id[t.user_attrs[RUN_ATTR]]
        assert run.data.tags["dea.trial"] == str(t.number)
        assert run.data.metrics["sharpe"] == pytest.approx(t.value)
    parent = MlflowClient(uri).get_run(s.parent_run)
    assert parent.data.tags["optuna.study_name"] == s.study
    assert parent.data.tags["mlflow.note.content"].startswith(f"Optuna study {s.study!r}")


def test_a_trial_stopped_by_sigterm_is_marked_failed(tiny_config, tmp_path, monkeypatch) -> None:
    """SIGTERM during a trial: dea exits 143 and the trial is FAIL in the study, not RUNNING."""
    import training.tuning as tuning

    def killed_mid_trial(cfg, prepared, trial=None):
        os.kill(os.getpid(), signal.SIGTERM)  # dea's handler raises CommandInterrupted here
        raise AssertionError("the stop signal did not interrupt the trial")

    monkeypatch.setattr(tuning, "walk_forward_value", killed_mid_trial)
    out = tmp_path / "out"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["tune", "--config", str(tiny_config), "--trials", "3", "--out", str(out), "--tracking-uri", uri])
    assert code == 128 + signal.SIGTERM
    study = optuna.load_study(study_name="dea-study", storage=storage_url(None, out))
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    run = MlflowClient(uri).get_run(study.trials[0].user_attrs[RUN_ATTR])
    assert run.info.status == "FAILED" and run.data.tags["dea.trial_state"] == "FAIL"


@pytest.mark.slow
def test_documented_tune_command_runs_on_the_demo_config(repo_root, tmp_path, monkeypatch, capsys) -> None:
    """`dea tune --config configs/demo.yaml` as documented (one cheap trial: 1 epoch, 1 seed)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    cheap = ["training.epochs=1", "model.ensemble=1", "training.splits.n_folds=2"]
    code = main(["tune", "--config", str(repo_root / "configs" / "demo.yaml"), "--trials", "1", "--out", str(out),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *[f"--set={o}" for o in cheap]])
    assert code == 0
    text = capsys.readouterr().out
    assert "best trial #0: sharpe" in text and "dashboard: optuna-dashboard sqlite:///" in text
    assert "dea train --config" in text and "--set training.epochs=1" in text
    best = load_config(out / "best.yaml")
    base = load_config(repo_root / "configs" / "demo.yaml")
    assert best.training.epochs == base.training.epochs  # the cheap --set is not baked in
    study = optuna.load_study(study_name="demo", storage=storage_url(None, out))
    assert best.training.lr == pytest.approx(study.best_params["training.lr"])


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
