"""The temporal-convolution and attention policies export to the ONNX contract with parity, their
memory travelling in ``state_in``/``state_out`` (no sequence axis in the graph). MLP and GRU are
covered by tests/export; the shared policy by the ensemble export in test_training_pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.export import export_policy
from training.policies import PolicySpec, build_policy

NAMES = ("ret@BTC", "ret@ETH", "vol@BTC", "vol@ETH", "fear_greed")


@pytest.mark.parametrize("kind", ["tcn", "attention"])
def test_policy_kind_exports_with_parity_and_steps_like_torch(kind, tmp_path):
    torch.manual_seed(0)
    spec = PolicySpec(kind=kind, feature_names=NAMES, instruments=("BTC", "ETH"), caps=(1.0, 0.5),
                      max_gross=1.2, hidden=(8, 8), kernel_size=3)
    policy = build_policy(spec)
    policy.set_scaler(np.arange(5) * 0.1, np.linspace(0.5, 2.0, 5))
    policy.eval()
    rng = np.random.default_rng(1)
    B = 16
    x = rng.normal(size=(B, 5)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, size=(B, 2)).astype(np.float32)
    inputs = [x, w]
    if policy.is_recurrent:
        inputs.append(rng.normal(size=(B, policy.state_size)).astype(np.float32))
    path = export_policy(
        policy, feature_names=NAMES, feature_spec_hash="h", instruments=("BTC", "ETH"),
        exposure_caps=policy.exposure_caps, model_name="t", model_version="1", train_window=("a", "b"),
        config_hash="c", data_fingerprint="d", example_inputs=[i[:2] for i in inputs], validation_inputs=inputs,
        path=tmp_path / f"{kind}.onnx",
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if not policy.is_recurrent:
        return
    # stepping the exported graph with its own state reproduces the torch rollout
    xs = rng.normal(size=(12, 1, 5)).astype(np.float32)
    s_onnx = np.zeros((1, policy.state_size), np.float32)
    s_t = policy.initial_state(1)
    e = np.zeros((1, 2), np.float32)
    for t in range(12):
        got, s_onnx = sess.run(None, {"features": xs[t], "exposure": e, "state_in": s_onnx})
        with torch.no_grad():
            want, s_t = policy(torch.as_tensor(xs[t]), torch.as_tensor(e), s_t)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
        e = got


def test_exported_model_carries_its_contract_terms_and_is_refused_on_other_contracts(tmp_path, repo_root):
    from dea.config import load_config
    from dea.errors import ModelError
    from dea.risk.engine import contract_terms
    from serving.runner import LiveSpec, PolicyRunner
    from training.export import export_trained_policy
    from training.policies import spec_from_config

    cfg = load_config(repo_root / "configs" / "demo.yaml")  # spot in a cash account: long-only
    names = ("ret@BTC", "ret@ETH", "ret@LTC")
    policy = build_policy(dataclasses.replace(spec_from_config(cfg, names), kind="linear", base={}, adjust={}))
    policy.eval()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    w = np.zeros((8, 3), np.float32)
    report = export_trained_policy(policy, feature_spec_hash="h", train_window=("a", "b"), config_hash="c",
                                   data_fingerprint="d", validation_inputs=(x, w), path=tmp_path / "p.onnx",
                                   model_name="t", model_version="1")
    terms = contract_terms(cfg.data.instruments, cfg.accounts, cfg.risk)
    assert terms["BTC"]["kind"] == "spot" and terms["BTC"]["lower"] == 0.0
    PolicyRunner.load(report.path, expect=LiveSpec.of(names, "h", ("BTC", "ETH", "LTC"), terms))
    # the same symbols served as perpetuals (shortable) are other contracts: refused
    perps = load_config(repo_root / "configs" / "demo.yaml",
                        [f"data.instruments.{i}.{k}" for i in range(3) for k in ("kind=perpetual", "funding=none")])
    live = contract_terms(perps.data.instruments, perps.accounts, perps.risk)
    with pytest.raises(ModelError, match="instrument BTC terms differ"):
        PolicyRunner.load(report.path, expect=LiveSpec.of(names, "h", ("BTC", "ETH", "LTC"), live))
