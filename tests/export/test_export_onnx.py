"""ONNX export: contract names, metadata, dynamic batch, recurrent step, and the parity gate."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from dea.errors import ExportError
from dea.model_artifact import ENV_SIGNING_KEY, TrustPolicy, read_manifest, sha256_hex
from dea.onnx_contract import FORMAT_VERSION, PolicyMetadata
from training.export import export_policy, export_policy_report
from training.policies import PolicySpec, build_policy

FEATURES = ("ret_1", "vol_12", "spread_bps", "imbalance_1", "funding_last", "hour_sin")
INSTRUMENTS = ("BTCUSDT", "ETHUSDT")


def _policy(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    spec = PolicySpec(kind=kind, feature_names=FEATURES, instruments=INSTRUMENTS, caps=(1.0, 0.5), max_gross=1.2, hidden=(16, 16))
    policy = build_policy(spec)
    rng = np.random.default_rng(seed)
    policy.set_scaler(rng.normal(size=len(FEATURES)), rng.uniform(0.5, 2.0, size=len(FEATURES)))
    return policy


def _inputs(policy, batch: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=(batch, len(FEATURES))) * 3, rng.uniform(-0.5, 0.5, size=(batch, len(INSTRUMENTS)))]
    if policy.is_recurrent:
        x.append(rng.normal(size=(batch, policy.state_size)) * 0.1)
    return tuple(a.astype(np.float32) for a in x)


def _export(policy, path, **overrides):
    kwargs = dict(
        feature_names=FEATURES,
        feature_spec_hash="spec-abc123",
        instruments=INSTRUMENTS,
        exposure_caps={"BTCUSDT": 1.0, "ETHUSDT": 0.5},
        model_name="dea-policy",
        model_version="7",
        train_window=("2023-01-01T00:00:00Z", "2023-12-31T00:00:00Z"),
        config_hash="cfg-1",
        data_fingerprint="data-1",
        example_inputs=_inputs(policy, 2, 1),
        validation_inputs=_inputs(policy, 256, 2),
        path=path,
    )
    kwargs.update(overrides)
    return export_policy_report(policy, **kwargs)


def test_mlp_export_is_one_file_with_contract_names_metadata_and_parity(tmp_path):
    policy = _policy("mlp")
    path = tmp_path / "models" / "policy.onnx"
    report = _export(policy, path)
    assert report.path == path and path.is_file()
    # no .data sidecar, no temp; the manifest records the SHA-256 of the final bytes
    assert sorted(p.name for p in path.parent.iterdir()) == ["policy.onnx", "policy.onnx.manifest.json"]
    manifest = read_manifest(path)
    assert manifest.sha256 == sha256_hex(path.read_bytes()) and manifest.size == path.stat().st_size
    assert manifest.model_version == "7" and manifest.signature is None
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["features", "exposure"]
    assert [o.name for o in model.graph.output] == ["target_exposure"]
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["dea.feature_names"]) == list(FEATURES)
    assert json.loads(props["dea.instruments"]) == list(INSTRUMENTS)
    assert json.loads(props["dea.exposure_caps"]) == {"BTCUSDT": 1.0, "ETHUSDT": 0.5}
    assert props["dea.feature_spec_hash"] == "spec-abc123"
    assert props["dea.train_window"] == "2023-01-01T00:00:00Z/2023-12-31T00:00:00Z"
    assert props["dea.format_version"] == FORMAT_VERSION
    meta = PolicyMetadata.from_props(props)
    assert meta.model_version == "7" and meta.config_hash == "cfg-1" and meta.data_fingerprint == "data-1"

    # dynamic batch: batch sizes never seen at export agree with torch (scaling is in the graph)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5, 333):
        f, e = _inputs(policy, batch, 100 + batch)
        (got,) = sess.run(None, {"features": f, "exposure": e})
        with torch.inference_mode():
            want = policy(torch.from_numpy(f), torch.from_numpy(e)).numpy()
        assert got.shape == (batch, 2)
        assert np.max(np.abs(got - want)) <= 1e-5
    assert report.max_abs_diff <= 1e-5 and report.n_validation == 256


def test_gru_exports_as_a_single_step_cell_that_carries_state(tmp_path):
    policy = _policy("gru", seed=3)
    path = export_policy(policy, **_kw(policy, tmp_path / "gru.onnx"))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["features", "exposure", "state_in"]
    assert [o.name for o in sess.get_outputs()] == ["target_exposure", "state_out"]
    f, e, _ = _inputs(policy, 12, 9)
    h_onnx = np.zeros((1, policy.state_size), np.float32)
    h_torch = policy.initial_state(1)
    for t in range(12):  # a 12-step sequence fed one step at a time through both
        tgt, h_onnx = sess.run(None, {"features": f[t : t + 1], "exposure": e[t : t + 1], "state_in": h_onnx})
        with torch.inference_mode():
            want, h_torch = policy(torch.from_numpy(f[t : t + 1]), torch.from_numpy(e[t : t + 1]), h_torch)
        assert np.max(np.abs(tgt - want.numpy())) <= 1e-5
    assert np.abs(h_onnx).sum() > 0  # the state really evolved


def _kw(policy, path):
    return dict(
        feature_names=FEATURES,
        feature_spec_hash="h",
        instruments=INSTRUMENTS,
        exposure_caps=1.0,
        model_name="m",
        model_version="1",
        train_window="a/b",
        config_hash="c",
        data_fingerprint="d",
        example_inputs=_inputs(policy, 2, 1),
        validation_inputs=_inputs(policy, 64, 2),
        path=path,
    )


class _DriftingModule(nn.Module):
    """Random noise in forward (think: dropout/noise left active): torch and onnxruntime draw
    different numbers, so the exported graph does not reproduce the evaluated module."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(len(FEATURES) + len(INSTRUMENTS), len(INSTRUMENTS))

    def forward(self, features, exposure):
        return torch.tanh(self.lin(torch.cat([features, exposure], -1))) + 0.01 * torch.rand_like(exposure)


def test_parity_gate_failure_raises_and_leaves_no_file(tmp_path):
    module = _DriftingModule()
    path = tmp_path / "bad.onnx"
    kwargs = _kw(_policy("mlp"), path)
    with pytest.raises(ExportError, match=r"parity gate failed: output 'target_exposure' differs by"):
        export_policy(module, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_parity_gate_failure_keeps_an_existing_good_file(tmp_path):
    path = tmp_path / "p.onnx"
    good = _policy("mlp")
    export_policy(good, **_kw(good, path))
    before = path.read_bytes()
    with pytest.raises(ExportError):
        export_policy(_DriftingModule(), **_kw(good, path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.onnx", "p.onnx.manifest.json"]
    assert read_manifest(path).sha256 == sha256_hex(before)  # the manifest still describes the good file


def test_width_mismatch_and_wrong_outputs_are_refused(tmp_path):
    policy = _policy("mlp")
    kwargs = _kw(policy, tmp_path / "x.onnx")
    kwargs["feature_names"] = FEATURES[:-1]
    with pytest.raises(ExportError, match=r"features have width 6 but 5 feature names"):
        export_policy(policy, **kwargs)

    class ThreeOut(nn.Module):
        def forward(self, features, exposure):
            return exposure, exposure, exposure

    with pytest.raises(ExportError, match=r"returns 3 outputs"):
        export_policy(ThreeOut(), **_kw(policy, tmp_path / "y.onnx"))
    assert list(tmp_path.iterdir()) == []


def test_optional_dispersion_output_is_exported(tmp_path):
    class Ensemble(nn.Module):
        """Two heads: mean target and their spread (what an ensemble export looks like)."""

        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(len(FEATURES), len(INSTRUMENTS))
            self.b = nn.Linear(len(FEATURES), len(INSTRUMENTS))

        def forward(self, features, exposure):
            ya, yb = torch.tanh(self.a(features)), torch.tanh(self.b(features))
            return 0.5 * (ya + yb), 0.5 * torch.abs(ya - yb)

    torch.manual_seed(0)
    report = export_policy_report(Ensemble(), **_kw(_policy("mlp"), tmp_path / "ens.onnx"))
    assert report.output_names == ("target_exposure", "dispersion")
    sess = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    f, e = _inputs(_policy("mlp"), 4, 5)
    tgt, disp = sess.run(None, {"features": f, "exposure": e})
    assert tgt.shape == disp.shape == (4, 2) and (disp >= 0).all()


def test_the_manifest_follows_metadata_stamping_and_signs_with_the_env_key(tmp_path, monkeypatch):
    """retrain/pipeline stamp the drift reference into the file after export: the manifest must
    describe the final bytes, or serving would refuse the model it just trained."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from serving.runner import PolicyRunner
    from training.retrain import stamp_metadata

    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    monkeypatch.setenv(ENV_SIGNING_KEY, base64.b64encode(raw).decode())
    pub = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)).decode()
    path = tmp_path / "policy.onnx"
    _export(_policy("mlp"), path)
    before = read_manifest(path)
    assert before.signature
    assert before.git_commit is None or len(before.git_commit) == 40
    stamp_metadata(path, {"dea.drift_reference": "{}"})
    after = read_manifest(path)
    assert after.sha256 != before.sha256 and after.sha256 == sha256_hex(path.read_bytes())
    trust = TrustPolicy(require_signature=True, public_keys=(pub,))
    assert PolicyRunner.from_path(path, trust=trust).sha256 == after.sha256
    # a file changed behind the exporter's back is never re-blessed by a later stamp
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    from dea.errors import ModelError

    with pytest.raises(ModelError, match="does not match the manifest"):
        stamp_metadata(path, {"dea.drift_reference": "{}"})
