"""ONNX policy evaluation step by step, the ``dea backtest`` CLI and the tearsheet, on the bundled
real daily data (Coin Metrics BTC/ETH/LTC, configs/demo.yaml)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dea.backtest.policy_eval import onnx_policy_targets, prepare_features
from dea.cli.main import main
from dea.config import load_config
from dea.data.panel import build_panel
from dea.errors import ModelError
from dea.features.featureset import FeatureSet
from dea.onnx_contract import PolicyMetadata

OVERRIDES = ["costs.impact.model=none"]  # Coin Metrics has prices but no traded volume


def linear_policy(path: Path, W: np.ndarray, U: np.ndarray, b: np.ndarray, meta: PolicyMetadata,
                  dispersion: bool = False) -> Path:
    """target_exposure = 0.8 * tanh(features @ W + exposure @ U + b): a tiny valid DEA policy."""
    F, N = W.shape
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((W, "W"), (U, "U"), (b, "b"), (np.array(0.8), "scale"))]
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["xw"]),
        helper.make_node("MatMul", ["exposure", "U"], ["eu"]),
        helper.make_node("Add", ["xw", "eu"], ["s1"]),
        helper.make_node("Add", ["s1", "b"], ["s2"]),
        helper.make_node("Tanh", ["s2"], ["th"]),
        helper.make_node("Mul", ["th", "scale"], ["target_exposure"]),
    ]
    outputs = [helper.make_tensor_value_info("target_exposure", TensorProto.FLOAT, ["B", N])]
    if dispersion:
        nodes.append(helper.make_node("Abs", ["th"], ["dispersion"]))
        outputs.append(helper.make_tensor_value_info("dispersion", TensorProto.FLOAT, ["B", N]))
    graph = helper.make_graph(
        nodes, "linear_policy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", F]),
         helper.make_tensor_value_info("exposure", TensorProto.FLOAT, ["B", N])],
        outputs, inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, meta.to_props())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def demo(repo_root):  # noqa: ANN001, ANN201
    cfg = load_config(repo_root / "configs" / "demo.yaml", OVERRIDES)
    panel = build_panel(cfg)
    fs = FeatureSet.from_config(cfg.features, panel.instruments)
    return cfg, panel, fs, fs.batch(panel)


@pytest.fixture(scope="module")
def model(demo, tmp_path_factory):  # noqa: ANN001, ANN201
    cfg, panel, fs, matrix = demo
    X, mask, names = prepare_features(matrix, cfg.features.missing)
    rng = np.random.default_rng(0)
    N = len(panel.instruments)
    W = rng.normal(0, 0.3, (X.shape[1], N)) / np.sqrt(X.shape[1])
    U, b = np.eye(N) * 0.5, np.zeros(N)
    meta = PolicyMetadata(feature_names=names, feature_spec_hash=fs.spec_hash, instruments=tuple(panel.instruments),
                          exposure_caps=1.0, model_name="linear-test", model_version="1")
    path = linear_policy(tmp_path_factory.mktemp("onnx") / "linear.onnx", W, U, b, meta, dispersion=True)
    return path, W, U, b


def test_onnx_policy_targets_feed_back_the_previous_target(demo, model):  # noqa: ANN001
    cfg, panel, fs, matrix = demo
    path, W, U, b = model
    out = onnx_policy_targets(path, matrix, missing=cfg.features.missing, instruments=panel.instruments)
    X, mask, _ = prepare_features(matrix, cfg.features.missing)
    w = np.zeros(len(panel.instruments), dtype=np.float32)
    expected = np.full(out.targets.shape, np.nan)
    for t in range(len(X)):
        if not mask[t]:
            continue  # warm-up: hold, the model is not consulted
        w = (0.8 * np.tanh(X[t].astype(np.float64) @ W + w @ U + b)).astype(np.float32)
        expected[t] = w
    np.testing.assert_allclose(out.targets, expected, atol=2e-6)
    assert out.usable_rows == int(mask.sum()) and out.nan_outputs == 0
    assert np.isnan(out.targets[: matrix.warmup]).all()
    assert out.dispersion is not None and np.isfinite(out.dispersion[mask]).all()


def test_onnx_policy_with_another_feature_spec_is_refused(demo, model, tmp_path):  # noqa: ANN001
    cfg, panel, fs, matrix = demo
    path, W, U, b = model
    X, mask, names = prepare_features(matrix, cfg.features.missing)
    meta = PolicyMetadata(feature_names=names, feature_spec_hash="0" * 64, instruments=tuple(panel.instruments))
    other = linear_policy(tmp_path / "other.onnx", W, U, b, meta)
    with pytest.raises(ModelError, match="feature_spec_hash differs"):
        onnx_policy_targets(other, matrix, missing=cfg.features.missing, instruments=panel.instruments)
    with pytest.raises(ModelError, match="instruments differ"):
        onnx_policy_targets(path, matrix, missing=cfg.features.missing, instruments=("BTC", "ETH", "DOGE"))


def test_cli_backtests_an_onnx_policy_against_every_baseline(repo_root, model, tmp_path, capsys):  # noqa: ANN001
    path = model[0]
    out = tmp_path / "ts"
    args = ["backtest", "--config", str(repo_root / "configs" / "demo.yaml"), "--policy", str(path),
            "--out", str(out), "--start", "2019-01-01", "--n-trials", "20", "--trials-sharpe-var", "0.5"]
    for o in OVERRIDES:
        args += ["--set", o]
    assert main(args) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    for name in ("linear", "buy_and_hold", "equal_weight", "inverse_vol", "tsmom", "hrp", "mean_risk"):
        assert name in header
    assert "deflated Sharpe" in text and "Sharpe" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"linear", "buy_and_hold", "equal_weight", "inverse_vol", "tsmom", "hrp", "mean_risk"}
    assert metrics["linear"]["n_periods"] == metrics["hrp"]["n_periods"] > 500
    assert 0.0 <= metrics["linear"]["deflated_sharpe"] <= 1.0
    page = (out / "tearsheet.html").read_text()
    png = (out / "tearsheet.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert base64.b64encode(png).decode() in page  # self-contained: the chart is embedded
    assert "<table>" in page and "mean_risk" in page
    import pandas as pd

    for name in metrics:  # what each strategy held, beside the tearsheet
        expo = pd.read_csv(out / f"{name}_exposure.csv")
        eq = pd.read_csv(out / f"{name}_equity.csv")
        assert list(expo.columns) == ["time", "BTC", "ETH", "LTC"] and len(expo) == len(eq)
        assert (expo[["BTC", "ETH", "LTC"]].to_numpy() >= 0).all()  # demo coins are spot: long-only
        # and unlevered: fully invested at most, before the fee and half-spread (10 bps) it paid
        assert expo[["BTC", "ETH", "LTC"]].sum(axis=1).max() <= 1.0 / (1.0 - 0.001) + 1e-9
        assert eq["equity"].iloc[-1] == pytest.approx(metrics[name]["final_equity"], rel=1e-9)


def test_cli_closed_loop_and_reference_engine(repo_root, model, tmp_path, capsys):  # noqa: ANN001
    base = ["backtest", "--config", str(repo_root / "configs" / "demo.yaml"), "--start", "2020-01-01",
            "--no-baselines", "--set", OVERRIDES[0]]
    assert main(base + ["--policy", str(model[0]), "--closed-loop", "--out", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["linear"]
    assert main(base + ["--policy", "baseline:hrp", "--engine", "reference", "--out", str(tmp_path / "b")]) == 0
    assert main(base + ["--policy", "baseline:hrp", "--out", str(tmp_path / "c")]) == 0
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())["hrp"]
    c = json.loads((tmp_path / "c" / "metrics.json").read_text())["hrp"]
    assert b["final_equity"] == pytest.approx(c["final_equity"], rel=1e-9)
    assert a["n_periods"] == c["n_periods"]
    capsys.readouterr()


def test_cli_rejects_unknown_policy(repo_root, capsys):  # noqa: ANN001
    cfg = str(repo_root / "configs" / "demo.yaml")
    assert main(["backtest", "--config", cfg, "--policy", "baseline:nope", "--set", OVERRIDES[0]]) == 2
    assert "unknown baseline 'nope'" in capsys.readouterr().err
