"""Verified models: a tampered ONNX file is refused at load and at hot swap, metadata that does not
parse is a ModelError, signatures are checked when configured, the model's own exposure caps are
enforced, and a restart on a journal written by another model is refused unless allowed."""

from __future__ import annotations

import base64

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from serving_helpers import build_onnx_policy, export_config_policy, sim_config

from dea.errors import ModelError
from dea.model_artifact import (
    ENV_SIGNING_KEY,
    ENV_SIGNING_KEY_FILE,
    LAX,
    TrustPolicy,
    manifest_path,
    read_manifest,
    sha256_hex,
    signing_key_from_env,
    write_manifest,
)
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.hotswap import ModelSlot
from serving.journal import Journal
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import LiveSpec, PolicyRunner

NAMES = ("f_a", "f_b", "f_c")
INSTR = ("BTCUSDT", "ETHUSDT")
STRICT = TrustPolicy()


@pytest.fixture
def model(tmp_path):
    return build_onnx_policy(tmp_path / "m.onnx", NAMES, INSTR, seed=3, gain=2.0)


def _rewrite_weights(path, fn):
    """Change the first weight matrix in place, keeping the (now stale) manifest."""
    m = onnx.load(str(path))
    for init in m.graph.initializer:
        if init.name == "w1":
            init.CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(init)), "w1"))
    onnx.save(m, str(path))


def _flip_bit(path):
    data = bytearray(path.read_bytes())
    w = numpy_helper.to_array(next(i for i in onnx.load(str(path)).graph.initializer if i.name == "w1"))
    at = bytes(data).index(w.tobytes()[:16])  # inside the raw weight tensor
    data[at + 5] ^= 0x01
    path.write_bytes(bytes(data))


def _spoof_version(path):
    m = onnx.load(str(path))
    for p in m.metadata_props:
        if p.key == "dea.model_version":
            p.value = "999-spoofed"
    onnx.save(m, str(path))


@pytest.mark.parametrize("attack", ["weights_x50", "weights_negated", "bit_flip", "spoofed_version"])
def test_a_tampered_model_is_refused_at_load(model, attack):
    clean = PolicyRunner.from_path(model, trust=STRICT)
    assert clean.sha256 == read_manifest(model).sha256 == sha256_hex(model.read_bytes())
    if attack == "weights_x50":
        _rewrite_weights(model, lambda w: w * 50)
    elif attack == "weights_negated":
        _rewrite_weights(model, lambda w: -w)
    elif attack == "bit_flip":
        _flip_bit(model)
    else:
        _spoof_version(model)
    with pytest.raises(ModelError, match="does not match the manifest"):
        PolicyRunner.from_path(model, trust=STRICT)
    with pytest.raises(ModelError, match="does not match the manifest"):  # a recorded digest is checked even when lax
        PolicyRunner.load(str(model), trust=LAX)


def test_a_model_without_a_recorded_digest_is_refused_unless_configured(tmp_path):
    path = build_onnx_policy(tmp_path / "bare.onnx", NAMES, INSTR, manifest=False)
    with pytest.raises(ModelError, match="no recorded SHA-256.*serving.require_digest"):
        PolicyRunner.load(str(path), trust=STRICT)
    assert PolicyRunner.load(str(path), trust=TrustPolicy(require_digest=False)).sha256 == sha256_hex(path.read_bytes())


def test_a_registry_digest_that_differs_is_refused(model):
    with pytest.raises(ModelError, match="does not match the registry tag"):
        PolicyRunner.from_path(model, trust=STRICT, expected_sha256="0" * 64)


def test_metadata_that_is_not_utf8_is_a_model_error(tmp_path):
    path = build_onnx_policy(tmp_path / "m.onnx", NAMES, INSTR, manifest=False)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"dea-test")
    data[at] = 0xFF  # one flipped byte in a metadata string
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not valid UTF-8"):
        PolicyRunner.from_path(path)


def test_a_manifest_that_does_not_parse_is_a_model_error(model):
    manifest_path(model).write_bytes(b'{"sha256": \xff}')
    with pytest.raises(ModelError, match="not valid UTF-8 JSON"):
        PolicyRunner.from_path(model)


def _keypair():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    priv = base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub.decode()


def test_signatures_from_the_environment_are_verified(model, tmp_path, monkeypatch):
    priv, pub = _keypair()
    _, other_pub = _keypair()
    monkeypatch.setenv(ENV_SIGNING_KEY, priv)
    write_manifest(model, signing_key=signing_key_from_env())
    assert read_manifest(model).signature
    signed = TrustPolicy(require_signature=True, public_keys=(pub,))
    assert PolicyRunner.from_path(model, trust=signed).sha256 == read_manifest(model).sha256
    with pytest.raises(ModelError, match="does not verify"):
        PolicyRunner.from_path(model, trust=TrustPolicy(require_signature=True, public_keys=(other_pub,)))
    # the key from a secrets file instead; a re-signed manifest for a tampered file still fails the digest
    monkeypatch.delenv(ENV_SIGNING_KEY)
    (tmp_path / "key").write_text(priv)
    monkeypatch.setenv(ENV_SIGNING_KEY_FILE, str(tmp_path / "key"))
    assert signing_key_from_env() is not None
    unsigned = build_onnx_policy(tmp_path / "u.onnx", NAMES, INSTR)
    with pytest.raises(ModelError, match="unsigned model and serving.require_signature"):
        PolicyRunner.from_path(unsigned, trust=signed)
    with pytest.raises(ModelError, match="require_signature is set but serving.model_public_keys is empty"):
        TrustPolicy(require_signature=True)
    monkeypatch.setenv(ENV_SIGNING_KEY, "not-a-key")
    with pytest.raises(ModelError, match="not an Ed25519 private key"):
        signing_key_from_env()


def test_the_models_exposure_caps_are_enforced(tmp_path):
    rng = np.random.default_rng(0)
    wide = PolicyRunner.from_path(build_onnx_policy(tmp_path / "a.onnx", NAMES, INSTR, gain=8.0, caps=None))
    capped = PolicyRunner.from_path(build_onnx_policy(tmp_path / "b.onnx", NAMES, INSTR, gain=8.0,
                                                      caps={"BTCUSDT": 0.2, "ETHUSDT": 0.5}))
    seen = 0
    for _ in range(50):
        x, e = rng.normal(size=3) * 3, rng.uniform(-0.5, 0.5, size=2)
        raw = wide.decide(x, e).copy()[0]
        out = capped.decide(x, e)[0]
        np.testing.assert_allclose(out, np.clip(raw, [-0.2, -0.5], [0.2, 0.5]), rtol=0, atol=1e-7)
        seen += int((np.abs(raw) > [0.2, 0.5]).any())
    assert seen > 10  # the caps did bind
    with pytest.raises(ModelError, match="exposure_caps must be >= 0"):
        PolicyRunner.from_path(build_onnx_policy(tmp_path / "c.onnx", NAMES, INSTR, caps=-1.0))


# -- the live loop -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("verified")
    cfg = sim_config(tmp, repo_root, n_steps=120).with_overrides(["costs.latency=20m"])
    return cfg, load_tables(cfg), tmp


def _loop(cfg, tables, model, journal, **kw):
    replay = TableReplay(cfg.data, tables)
    ex = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)
    runner = PolicyRunner.load(str(model), trust=cfg.serving.trust_policy())
    loop = LiveLoop(cfg, runner, ex, Journal(journal, synchronous="NORMAL"), clock_start=replay.clock_start,
                    clock_end=replay.clock_end, native_steps=replay.native_steps, **kw)
    return loop, replay


def test_hot_swap_to_a_tampered_file_is_refused_and_the_loop_keeps_its_model(sim, tmp_path):
    cfg, tables, _ = sim
    good = export_config_policy(cfg, tmp_path / "good.onnx", seed=1)
    bad = export_config_policy(cfg, tmp_path / "bad.onnx", seed=2)
    _rewrite_weights(bad, lambda w: w * 50)
    loop, replay = _loop(cfg, tables, good, tmp_path / "j.sqlite")
    slot = loop.slot
    slot.request(str(bad), wait=True)
    assert slot.failures == 1 and "does not match the manifest" in slot.last_error and slot.swap_if_ready() is None
    summary = loop.run(replay.events(loop.panel))
    assert summary.model_swaps == 0 and summary.decisions > 50
    sha = {d["detail"]["model_sha256"] for d in loop.journal.decisions()}
    assert sha == {read_manifest(good).sha256}


def test_restart_with_another_model_is_refused_unless_allowed_and_then_journaled(sim, tmp_path):
    cfg, tables, _ = sim
    first = export_config_policy(cfg, tmp_path / "a.onnx", seed=1)
    second = export_config_policy(cfg, tmp_path / "b.onnx", seed=5)
    loop, replay = _loop(cfg, tables, first, tmp_path / "j.sqlite")
    loop.run(replay.events(loop.panel), max_decisions=30)
    loop.journal.close()
    with pytest.raises(ModelError, match="refusing to continue with a different model.*--allow-model-change"):
        _loop(cfg, tables, second, tmp_path / "j.sqlite")
    loop2, replay2 = _loop(cfg, tables, second, tmp_path / "j.sqlite", allow_model_change=True)
    changes = loop2.journal.events("model_change")
    assert len(changes) == 1 and changes[0]["detail"]["from"]["sha256"] == read_manifest(first).sha256
    assert changes[0]["detail"]["to"]["sha256"] == read_manifest(second).sha256
    loop2.run(replay2.events(loop2.panel))
    after = [d for d in loop2.journal.decisions() if d["t_ns"] > loop2.resume_after]
    assert after and {d["detail"]["model_sha256"] for d in after} == {read_manifest(second).sha256}
    loop2.journal.close()
    _loop(cfg, tables, second, tmp_path / "j.sqlite")  # the journal now names the second model: accepted


def test_the_runner_refuses_a_spec_mismatch_before_trading(tmp_path):
    path = build_onnx_policy(tmp_path / "m.onnx", NAMES, INSTR, spec_hash="other")
    with pytest.raises(ModelError, match="feature_spec_hash differs"):
        PolicyRunner.load(str(path), LiveSpec.of(NAMES, "spec", INSTR), trust=STRICT)
    slot = ModelSlot(PolicyRunner.from_path(build_onnx_policy(tmp_path / "ok.onnx", NAMES, INSTR, spec_hash="spec")),
                     lambda s: PolicyRunner.load(s, LiveSpec.of(NAMES, "spec", INSTR), trust=STRICT))
    slot.request(str(path), wait=True)
    assert slot.failures == 1 and slot.swap_if_ready() is None
