"""Training report = exported model: ``dea backtest`` of the exported fold model over that fold's
test window reproduces the training report's figures for the fold (same starting exposure,
same market slice, same engine), and the report says whether the exported file saw test rows."""

from __future__ import annotations

import json

import pytest
import yaml

from dea.timeutil import iso

pytestmark = pytest.mark.slow


def test_dea_backtest_of_the_last_fold_model_reproduces_the_report(make_sim, tmp_path) -> None:
    from dea.cli.main import main as dea_main
    from training.pipeline import train

    cfg = make_sim(signal_strength=0.15, n_steps=2500,
                   training={"final_refit": False, "export_onnx": True, "epochs": 3},
                   data={"store": str(tmp_path / "store")})
    result = train(cfg, out_dir=tmp_path / "run")
    assert result.exported is not None and result.exported.saw_test_rows is False
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["exported_model"]["saw_test_rows"] is False
    last = result.folds[-1]
    a, b = last.fold.test
    clock = result.clock
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    out = tmp_path / "bt"
    code = dea_main(["backtest", "--config", str(path), "--policy", str(result.paths["onnx"]),
                     "--start", iso(int(clock[a])), "--end", iso(int(clock[b - 1])), "--no-baselines",
                     "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    bt = next(iter(metrics.values()))
    report = last.standalone
    for key in ("sharpe", "total_return", "max_drawdown", "turnover"):
        assert bt[key] == pytest.approx(report[key], rel=1e-5, abs=1e-9), key
    assert summary["folds"][-1]["standalone_metrics"]["sharpe"] == pytest.approx(report["sharpe"])


def test_a_refit_model_is_reported_as_having_seen_the_test_rows(make_sim, tmp_path) -> None:
    from training.pipeline import train
    from training.report import format_summary, results_block, results_text

    cfg = make_sim(signal_strength=0.0, n_steps=1500,
                   training={"final_refit": True, "export_onnx": False, "epochs": 2, "baselines": []})
    result = train(cfg, out_dir=tmp_path / "run")
    assert result.exported.saw_test_rows is True
    text = format_summary(result)
    assert "SAW the test rows" in text and "buy_and_hold" not in text
    # what dea train prints and the README's generated block come from one builder
    body = results_text(result)
    assert body.startswith("out of sample 20") and "policy-this" in body and "SAW" not in body
    assert body in text and results_block(result) == f"```text\n{body}\n```"
