"""Uncertainty-aware sizing: the ensemble's dispersion survives ONNX export with parity and the
risk engine scales exposure down by it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dea.config  # noqa: F401  (initialise the config package first)
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.risk.engine import RiskEngine
from serving.runner import PolicyRunner
from training.ensemble import PolicyEnsemble, member_seeds
from training.export import export_policy
from training.policies import PolicySpec, build_policy

FEATURES = ("f0", "f1", "f2", "f3")
INSTRUMENTS = ("BTC", "ETH")


def _ensemble(kind: str, k: int = 4) -> PolicyEnsemble:
    spec = PolicySpec(kind=kind, feature_names=FEATURES, instruments=INSTRUMENTS, caps=(1.0, 1.0), max_gross=1.5, hidden=(16,))
    members = []
    for seed in member_seeds(3, k):
        torch.manual_seed(seed)
        members.append(build_policy(spec))
    return PolicyEnsemble(members).eval()


def _export(ens: PolicyEnsemble, path, rows: int = 64) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, size=(rows, len(INSTRUMENTS))).astype(np.float32)
    inputs = (x, w) if not ens.is_recurrent else (x, w, np.zeros((rows, ens.state_size), np.float32))
    export_policy(
        ens, feature_names=FEATURES, feature_spec_hash="h", instruments=INSTRUMENTS, exposure_caps=ens.exposure_caps,
        model_name="ens", model_version="1", train_window=("2020-01-01", "2020-02-01"), config_hash="c",
        data_fingerprint="d", example_inputs=inputs, validation_inputs=inputs, path=path,
    )


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_dispersion_survives_export_with_parity(kind, tmp_path) -> None:
    ens = _ensemble(kind)
    path = tmp_path / "ens.onnx"
    _export(ens, path)  # the exporter's parity gate compares every output, dispersion included
    runner = PolicyRunner.from_path(path)
    assert runner.dispersion is not None
    x = np.array([0.3, -1.0, 2.0, 0.1], dtype=np.float32)
    w = np.array([0.1, -0.2], dtype=np.float32)
    target = runner.decide(x, w).copy()
    with torch.no_grad():
        args = (torch.tensor(x[None]), torch.tensor(w[None]))
        if ens.is_recurrent:
            args = args + (ens.initial_state(1),)
        out = ens(*args)
        if ens.is_recurrent:
            member = torch.stack([m(args[0], args[1], m.initial_state(1))[0] for m in ens.members])
        else:
            member = torch.stack([m(*args) for m in ens.members])
    np.testing.assert_allclose(target, out[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(runner.dispersion, out[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(runner.dispersion[0], member.std(dim=0, unbiased=False)[0].numpy(), atol=1e-5)
    assert (runner.dispersion > 0).all()


def test_identical_members_have_zero_dispersion() -> None:
    spec = PolicySpec(kind="mlp", feature_names=FEATURES, instruments=INSTRUMENTS, caps=(1.0, 1.0), max_gross=1.5, hidden=(8,))
    torch.manual_seed(0)
    a = build_policy(spec)
    b = build_policy(spec)
    b.load_state_dict(a.state_dict())
    _, disp = PolicyEnsemble([a, b])(torch.randn(3, 4), torch.zeros(3, 2))
    assert torch.all(disp == 0)


def test_risk_engine_scales_by_the_exported_dispersion(tmp_path) -> None:
    ens = _ensemble("mlp")
    path = tmp_path / "ens.onnx"
    _export(ens, path)
    runner = PolicyRunner.from_path(path)
    target = runner.decide(np.array([2.0, -2.0, 1.0, 0.5], np.float32), np.zeros(2, np.float32)).astype(np.float64)[0]
    disp = runner.dispersion.astype(np.float64)[0]
    instruments = [Instrument(symbol=s, kind="perpetual", funding="none") for s in INSTRUMENTS]  # shorts allowed
    k = 5.0
    plain = RiskEngine(RiskConfig(drawdown={"enabled": False}), instruments).apply(0, target, np.zeros(2), 1.0)
    sized = RiskEngine(RiskConfig(dispersion_scale=k, drawdown={"enabled": False}), instruments).apply(0, target, np.zeros(2), 1.0, dispersion=disp)
    np.testing.assert_allclose(plain.exposure, target, atol=1e-12)
    np.testing.assert_allclose(sized.exposure, target / (1 + k * disp), rtol=1e-9)
    assert any(i.rule == "dispersion" for i in sized.interventions)
