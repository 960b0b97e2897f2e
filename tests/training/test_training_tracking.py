"""MLflow tracking of ``dea train``: one parent run, a child per fold, everything needed to
reproduce and audit the run, the exported model registered as ``challenger``."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from dea.config import config_hash
from training.pipeline import train
from training.tracking import Tracker, default_tracking_uri, flatten


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    from training_helpers import sim_experiment

    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg = sim_experiment(
        n_steps=1500,
        model={"kind": "gru", "hidden": [8]},
        training={"epochs": 2, "baselines": ["ridge"], "final_refit": False, "candidates": [{}]},
        tracking={"enabled": True, "experiment": "dea-test", "registered_model": "dea-test-policy"},
    )
    result = train(cfg, tracking_uri=uri, out_dir=tmp / "out")
    from mlflow import MlflowClient

    return cfg, result, MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_parent_run_records_config_hashes_commit_seeds_and_versions(tracked_run):
    cfg, result, client = tracked_run
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags, params = run.data.tags, run.data.params
    assert tags["dea.config_hash"] == config_hash(cfg) == result.config_hash
    assert tags["dea.data_fingerprint"] == result.data_fingerprint and len(result.data_fingerprint) == 64
    assert tags["dea.feature_spec_hash"] == result.feature_spec_hash
    assert tags["dea.git_commit"]
    assert tags["dea.seed"] == "0" and json.loads(tags["dea.fold_seeds"]) == [0, 1]
    assert tags["dea.version.torch"].startswith("2.")
    assert params["model.kind"] == "gru"
    assert params["training.splits.n_folds"] == "2"
    assert params["instruments"].split(",") == [i.symbol for i in cfg.data.instruments]
    # a short list of key params; the whole config is one artifact
    assert len(params) <= 30 and not any(k.startswith("data.sources.") for k in params)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config", "report", "model"} <= artifacts
    report = {a.path for a in client.list_artifacts(result.run_id, "report")}
    assert {"report/tearsheet.png", "report/tearsheet.html", "report/metrics.csv"} <= report
    # the tearsheet's table carries the policy's Sharpe difference to each baseline with its CI
    page = result.paths["tearsheet_html"].read_text()
    d = result.significance["ridge"]
    assert "95% CI of the difference" in page and f"[{d.lo:+.2f}, {d.hi:+.2f}]" in page
    assert run.data.metrics["policy_vs.ridge.sharpe_diff_lo"] == pytest.approx(d.lo)
    # and the run's notes (selection, data coverage) as the console printed them
    assert result.notes and all(html.escape(n) in page for n in result.notes)
    # final metrics of the policy and every baseline
    assert run.data.metrics["policy.sharpe"] == pytest.approx(result.metrics["policy"]["sharpe"])
    assert "ridge.sharpe" in run.data.metrics
    assert not any(k.startswith("ridge.") and k.split(".", 1)[1] not in ("sharpe", "annual_return", "annual_vol", "max_drawdown", "turnover")
                   for k in run.data.metrics)


def test_run_page_shows_source_commit_user_description_and_datasets(tracked_run):
    from dea.data.sources import source_fingerprint

    cfg, result, client = tracked_run
    run = client.get_run(result.run_id)
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "dea train" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]
    assert tags["mlflow.source.git.commit"] == tags["dea.git_commit"].removesuffix("+dirty")
    note = tags["mlflow.note.content"]
    assert cfg.model.kind in note and "Out of sample" in note
    assert f"Sharpe {result.metrics['policy']['sharpe']:.2f}" in note
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {s.name for s in cfg.data.sources} | {f"{cfg.name}-panel"}
    panel = inputs[f"{cfg.name}-panel"]
    assert panel.dataset.digest == result.data_fingerprint[:36]
    assert {t.key: t.value for t in panel.tags}["dea.fingerprint"] == result.data_fingerprint
    src = cfg.data.sources[0]
    assert {t.key: t.value for t in inputs[src.name].tags}["dea.fingerprint"] == source_fingerprint(src, cfg.base_dir)


def test_one_child_run_per_fold_with_epoch_history(tracked_run):
    cfg, result, client = tracked_run
    exp = client.get_experiment_by_name("dea-test")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(c.data.tags["dea.fold"] for c in children) == ["0", "1"]
    for child in children:
        fold = result.folds[int(child.data.tags["dea.fold"])]
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in history] == list(range(len(fold.fit.history)))
        np.testing.assert_allclose([m.value for m in history], [h["val_loss"] for h in fold.fit.history], rtol=1e-6)
        assert "oos_sharpe" in child.data.metrics
        assert any(a.path == "policy" for a in client.list_artifacts(child.info.run_id))


def test_exported_model_is_registered_as_challenger(tracked_run):
    cfg, result, client = tracked_run
    assert result.paths["onnx"].is_file()
    version = client.get_model_version_by_alias("dea-test-policy", "challenger")
    assert version.run_id == result.run_id
    assert version.tags["dea.config_hash"] == result.config_hash


def test_flatten_and_default_uri(tmp_path):
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": "x"}]})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "d.0.e": "x"}
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    disabled = Tracker(None, "x", enabled=False)
    assert disabled.start_run("r") == ""
    disabled.log_metrics("", {"a": 1.0})  # no-op, no store created
    assert not (tmp_path / "mlflow.db").exists()
