"""Tampered and mis-specified models: refused before they can trade, with a clear ModelError.

Attacks on a policy with a manifest (SHA-256 of its bytes, optionally Ed25519-signed): weights
x50, negated weights, one flipped bit in a weight tensor, a spoofed ``dea.model_version``, a
flipped metadata byte (not UTF-8); the same attacks through a hot swap; exposure caps in the model
enforced by the loop; a restart on a journal that traded another model."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from serving_helpers import build_onnx_policy, export_config_policy, sim_config

from dea.errors import ConfigError, JournalError, ModelError
from dea.model_integrity import (
    TrustPolicy,
    manifest_path,
    public_key_text,
    read_manifest,
    sha256_hex,
    signing_key_from,
    write_manifest,
)
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.hotswap import ModelSlot
from serving.journal import Journal
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner

FEATURES = ["f0", "f1", "f2"]
INSTRUMENTS = ["BTCUSDT", "ETHUSDT"]


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _model(tmp_path, name="m.onnx", **kw):
    return build_onnx_policy(tmp_path / name, FEATURES, INSTRUMENTS, **kw)


def _edit_initializer(path, name, fn):
    """Rewrite one weight tensor in place (the manifest next to the file is left as it was)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    for i, init in enumerate(m.graph.initializer):
        if init.name == name:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(init)), name))
    onnx.save(m, str(path))


def _flip_bit_in_weights(path):
    import onnx
    from onnx import numpy_helper

    w = numpy_helper.to_array(next(i for i in onnx.load(str(path)).graph.initializer if i.name == "w1"))
    data = bytearray(path.read_bytes())
    at = bytes(data).index(w.tobytes()) + 5  # inside w1's raw float32 bytes
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _spoof_version(path):
    import onnx

    m = onnx.load(str(path))
    for p in m.metadata_props:
        if p.key == "dea.model_version":
            p.value = "42-promoted"
    onnx.save(m, str(path))


ATTACKS = {
    "weights_x50": lambda p: _edit_initializer(p, "w2", lambda a: a * 50),
    "negated_weights": lambda p: _edit_initializer(p, "w2", lambda a: -a),
    "bit_flip_in_weights": _flip_bit_in_weights,
    "spoofed_model_version": _spoof_version,
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_tampered_model_with_a_manifest_is_refused(tmp_path, attack):
    path = _model(tmp_path)
    ident = write_manifest(path)
    assert ident.sha256 == sha256_hex(path.read_bytes())
    assert PolicyRunner.from_path(path).sha256 == ident.sha256  # the untouched file loads
    before = PolicyRunner.from_path(path)
    ATTACKS[attack](path)
    assert sha256_hex(path.read_bytes()) != ident.sha256
    with pytest.raises(ModelError, match="SHA-256 .* differs from .*manifest"):
        PolicyRunner.from_path(path)
    # the attack is real: without its manifest the file loads and answers differently (or lies)
    manifest_path(path).unlink()
    tampered = PolicyRunner.from_path(path)
    x, e = np.full(3, 0.3), np.zeros(2)
    changed = not np.allclose(tampered.decide(x, e), before.decide(x, e)) or tampered.version != before.version
    assert changed
    with pytest.raises(ModelError, match="no manifest or registry digest"):
        PolicyRunner.from_path(path, trust=TrustPolicy(require_digest=True))


def test_metadata_that_is_not_utf8_is_a_model_error(tmp_path):
    path = _model(tmp_path)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"dea-test")  # the dea.model_name value
    data[at] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not valid UTF-8"):
        PolicyRunner.from_path(path)


def test_signatures_verify_and_are_required_when_configured(tmp_path):
    key, other = _key(), _key()
    path = _model(tmp_path)
    ident = write_manifest(path, signing_key=key)
    assert ident.signature and json.loads(manifest_path(path).read_text())["signature"] == ident.signature
    good = TrustPolicy(public_key=public_key_text(key), require_signature=True)
    assert PolicyRunner.from_path(path, trust=good).sha256 == ident.sha256
    with pytest.raises(ModelError, match="signature .* does not verify"):
        PolicyRunner.from_path(path, trust=TrustPolicy(public_key=public_key_text(other)))
    # a tamperer who also rewrites the manifest's digest cannot forge the signature
    ATTACKS["weights_x50"](path)
    doc = json.loads(manifest_path(path).read_text())
    doc["sha256"] = sha256_hex(path.read_bytes())
    manifest_path(path).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="does not verify"):
        PolicyRunner.from_path(path, trust=good)
    # unsigned, signature required
    plain = _model(tmp_path, "plain.onnx")
    write_manifest(plain)
    with pytest.raises(ModelError, match="unsigned model"):
        PolicyRunner.from_path(plain, trust=good)
    with pytest.raises(ConfigError, match="model_public_key is not set"):
        PolicyRunner.from_path(path.with_name("plain.onnx"), trust=TrustPolicy(require_signature=True))


def test_signing_key_from_environment_or_secrets_file(tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = _key()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    env = {"DEA_MODEL_SIGNING_KEY": base64.b64encode(raw).decode()}
    assert public_key_text(signing_key_from(env)) == public_key_text(key)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(json.dumps({"model_signing_key": pem}))
    secrets.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        signing_key_from({}, secrets)
    secrets.chmod(0o600)
    assert public_key_text(signing_key_from({}, secrets)) == public_key_text(key)
    assert signing_key_from({}) is None
    with pytest.raises(ConfigError, match="32 bytes"):
        signing_key_from({"DEA_MODEL_SIGNING_KEY": base64.b64encode(b"short").decode()})


def test_hot_swap_refuses_a_tampered_replacement(tmp_path):
    key = _key()
    trust = TrustPolicy(public_key=public_key_text(key), require_signature=True)
    live = _model(tmp_path, "live.onnx", seed=1)
    write_manifest(live, signing_key=key)
    runner = PolicyRunner.from_path(live, trust=trust)
    slot = ModelSlot(runner, lambda src: PolicyRunner.load(src, trust=trust))
    new = _model(tmp_path, "new.onnx", seed=2)
    write_manifest(new, signing_key=key)
    ATTACKS["negated_weights"](new)
    slot.request(str(new), wait=True)
    assert slot.swap_if_ready() is None and slot.failures == 1 and "differs from" in (slot.last_error or "")
    assert slot.current is runner
    fresh = _model(tmp_path, "fresh.onnx", seed=3)
    write_manifest(fresh, signing_key=key)
    slot.request(str(fresh), wait=True)
    swapped = slot.swap_if_ready()
    assert swapped is not None and swapped.sha256 == read_manifest(fresh).sha256


@pytest.mark.parametrize("caps", [-0.5, "x", {"BTCUSDT": float("inf")}])
def test_invalid_exposure_caps_are_refused(tmp_path, caps):
    with pytest.raises(ModelError, match="exposure_caps"):
        PolicyRunner.from_path(_model(tmp_path, exposure_caps=caps))


@pytest.fixture(scope="module")
def sim(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("faults-sim")
    cfg = sim_config(tmp, repo_root, n_steps=200).with_overrides(["costs.latency=20m"])
    return cfg, load_tables(cfg)


def _run(cfg, tables, model, journal, **kw):
    replay = TableReplay(cfg.data, tables)
    ex = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), ex, Journal(journal, synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps, **kw)
    return loop, loop.run(replay.events(loop.panel))


def test_the_models_exposure_caps_bound_its_targets(sim, tmp_path):
    cfg, tables = sim
    model = export_config_policy(cfg, tmp_path / "capped.onnx", seed=4, gain=4.0, exposure_caps={"SIM0": 0.1, "SIM2": 0.2})
    loop, summary = _run(cfg, tables, model, tmp_path / "j.sqlite")
    assert summary.decisions > 50
    caps = np.array([0.1, np.inf, 0.2, np.inf])
    rows = loop.journal.decision_inputs()
    outputs = np.array([r["model_output"] for r in rows if r["action"] == "model"], dtype=float)
    targets = np.array([r["target"] for r in rows if r["action"] == "model"], dtype=float)
    assert (np.abs(outputs[:, 0]) > 0.1).any()  # the model wants more than its cap ...
    assert (np.abs(targets) <= caps + 1e-12).all()  # ... and never gets it
    np.testing.assert_array_equal(targets, np.clip(outputs, -caps, caps))


def test_restart_with_another_model_is_refused_unless_allowed(sim, tmp_path):
    cfg, tables = sim
    a = export_config_policy(cfg, tmp_path / "a.onnx", seed=1)
    b = export_config_policy(cfg, tmp_path / "b.onnx", seed=2)
    write_manifest(a)
    loop, _ = _run(cfg, tables, a, tmp_path / "j.sqlite")
    stored = loop.journal.load().model
    assert stored["sha256"] == read_manifest(a).sha256 and stored["version"] == "1"
    with pytest.raises(JournalError, match="--allow-model-change"):
        _run(cfg, tables, b, tmp_path / "j.sqlite")
    loop2, _ = _run(cfg, tables, b, tmp_path / "j.sqlite", allow_model_change=True)
    change = loop2.journal.events("model_change")
    assert len(change) == 1 and change[0]["detail"]["to"]["sha256"] == sha256_hex(b.read_bytes())
    assert loop2.journal.load().model["sha256"] == sha256_hex(b.read_bytes())
    _run(cfg, tables, b, tmp_path / "j.sqlite")  # the new model is now the journal's model
