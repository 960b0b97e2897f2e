"""``dea train`` from the command line: config file + --set overrides, default MLflow store in the
working directory, and the closing summary (metrics table, run id, how to open the UI)."""

from __future__ import annotations

import yaml

from dea.cli.main import main


def test_dea_train_prints_the_table_the_run_id_and_the_ui_command(make_sim, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    raw = make_sim(n_steps=1200, training={"baselines": ["equal_weight"]}, tracking={"enabled": True}).to_dict()
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["train", "--config", str(path), "--set", "training.epochs=1", "--set", "training.export_onnx=false",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "policy" in out and "equal_weight" in out and "sharpe" in out
    assert "MLflow run id:" in out
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve() / 'mlflow.db'}" in out
    assert (tmp_path / "mlflow.db").is_file(), "default store: sqlite mlflow.db in the working directory"
    assert any((tmp_path / "runs").iterdir()), "outputs under runs/<name>-<time>"


def test_dea_train_reports_a_bad_override_as_a_config_error(make_sim, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(make_sim().to_dict()))
    code = main(["train", "--config", str(path), "--set", "training.epocs=3"])
    assert code == 2
    assert "training.epocs: unknown key" in capsys.readouterr().err
