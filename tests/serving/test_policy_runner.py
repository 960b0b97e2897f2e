"""PolicyRunner: metadata checks at load, bound buffers written in place, recurrent state,
dispersion, hot swap (atomic, and a failed load keeps the old model)."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest
from serving_helpers import build_onnx_policy

from dea.errors import ModelError
from dea.model_artifact import manifest_path
from serving.hotswap import ModelSlot, ModelWatcher, file_probe
from serving.runner import LiveSpec, PolicyRunner

NAMES = ("ret_1@BTC", "ret_1@ETH", "vol@BTC", "vol@ETH", "fng")
INSTR = ("BTC", "ETH")
LIVE = LiveSpec.of(NAMES, "spec-1", INSTR)


def _ref(path, features, exposure, state=None):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"features": features[None].astype(np.float32), "exposure": exposure[None].astype(np.float32)}
    if state is not None:
        feeds["state_in"] = state[None].astype(np.float32)
    return sess.run(None, feeds)


def test_runner_matches_plain_session_and_writes_inputs_in_place(tmp_path):
    path = build_onnx_policy(tmp_path / "p.onnx", NAMES, INSTR, spec_hash="spec-1", dispersion=True)
    r = PolicyRunner.from_path(path, LIVE)
    assert r.is_recurrent is False and r.dispersion is not None
    rng = np.random.default_rng(1)
    for _ in range(20):
        f, e = rng.normal(size=5) * 2, rng.uniform(-1, 1, size=2)
        out = r.decide(f, e)
        want_t, want_d = _ref(path, f, e)
        np.testing.assert_array_equal(out, want_t)
        np.testing.assert_array_equal(r.dispersion, want_d)
    # the hot path: write into the bound buffers, no copies, no re-binding
    target_buf = r.target
    r.features[0] = np.arange(5, dtype=np.float32)
    r.exposure[0] = [0.25, -0.25]
    assert r.infer() is target_buf
    np.testing.assert_array_equal(target_buf, _ref(path, np.arange(5.0), np.array([0.25, -0.25]))[0])


def test_recurrent_runner_carries_state_between_decisions(tmp_path):
    path = build_onnx_policy(tmp_path / "g.onnx", NAMES, INSTR, spec_hash="spec-1", recurrent=True, hidden=8)
    r = PolicyRunner.from_path(path, LIVE)
    assert r.is_recurrent and r.state_size == 8
    rng = np.random.default_rng(2)
    h = np.zeros(8)
    for _ in range(6):
        f, e = rng.normal(size=5), rng.uniform(-1, 1, size=2)
        got = r.decide(f, e).copy()
        want, h = _ref(path, f, e, h)
        h = h[0]
        np.testing.assert_array_equal(got, want)
    r.reset_state()
    f, e = rng.normal(size=5), np.zeros(2)
    np.testing.assert_array_equal(r.decide(f, e), _ref(path, f, e, np.zeros(8))[0])


@pytest.mark.parametrize(
    ("live", "message"),
    [
        (LiveSpec.of(NAMES, "spec-2", INSTR), r"feature_spec_hash differs: model 'spec-1' vs live 'spec-2'"),
        (LiveSpec.of(NAMES[:2] + (NAMES[3], NAMES[2]) + NAMES[4:], "spec-1", INSTR),
         r"feature names differ: position 2: model 'vol@BTC' vs live 'vol@ETH'"),
        (LiveSpec.of(NAMES + ("extra",), "spec-1", INSTR), r"model has 5, live has 6; live-only \['extra'\]"),
        (LiveSpec.of(NAMES, "spec-1", ("ETH", "BTC")), r"instruments differ: position 0: model 'BTC' vs live 'ETH'"),
    ],
)
def test_runner_refuses_a_model_that_does_not_match_the_live_spec(tmp_path, live, message):
    path = build_onnx_policy(tmp_path / "p.onnx", NAMES, INSTR, spec_hash="spec-1")
    with pytest.raises(ModelError, match=message):
        PolicyRunner.from_path(path, live)


def test_runner_refuses_files_that_are_not_dea_policies(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load the model"):
        PolicyRunner.from_path(bad)
    with pytest.raises(ModelError, match="model file not found"):
        PolicyRunner.from_path(tmp_path / "missing.onnx")
    import onnx

    path = build_onnx_policy(tmp_path / "p.onnx", NAMES, INSTR)
    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "nometa.onnx"))
    with pytest.raises(ModelError, match=r"metadata property 'dea.feature_names' is missing"):
        PolicyRunner.from_path(tmp_path / "nometa.onnx")


def test_hot_swap_is_atomic_between_decisions_and_a_bad_model_keeps_the_old(tmp_path):
    v1 = build_onnx_policy(tmp_path / "v1.onnx", NAMES, INSTR, spec_hash="spec-1", seed=1, version="1")
    v2 = build_onnx_policy(tmp_path / "v2.onnx", NAMES, INSTR, spec_hash="spec-1", seed=2, version="2")
    wrong = build_onnx_policy(tmp_path / "wrong.onnx", NAMES, INSTR, spec_hash="other", seed=3, version="3")
    slot = ModelSlot(PolicyRunner.from_path(v1, LIVE), lambda src: PolicyRunner.from_path(src, LIVE))
    f, e = np.ones(5), np.zeros(2)
    out1 = slot.current.decide(f, e).copy()

    slot.request(str(wrong), wait=True)
    assert slot.swap_if_ready() is None and slot.current.version == "1"
    assert slot.failures == 1 and "feature_spec_hash differs" in slot.last_error
    slot.request(str(tmp_path / "nope.onnx"), wait=True)
    assert slot.failures == 2 and "model file not found" in slot.last_error

    # a load in flight never changes the model used mid-decision; the swap happens at swap_if_ready
    gate = threading.Event()

    def slow_loader(src):
        gate.wait(5)
        return PolicyRunner.from_path(src, LIVE)

    slot._loader = slow_loader
    thread = slot.request(str(v2))
    for _ in range(50):
        np.testing.assert_array_equal(slot.current.decide(f, e), out1)
        assert slot.swap_if_ready() is None
    gate.set()
    thread.join(5)
    new = slot.swap_if_ready()
    assert new is slot.current and new.version == "2" and slot.swaps == 1
    assert not np.array_equal(slot.current.decide(f, e), out1)


def test_file_watcher_swaps_in_a_replaced_file(tmp_path):
    live_path = tmp_path / "model.onnx"
    build_onnx_policy(live_path, NAMES, INSTR, spec_hash="spec-1", seed=1, version="1")
    slot = ModelSlot(PolicyRunner.from_path(live_path, LIVE), lambda src: PolicyRunner.from_path(src, LIVE))
    probe = file_probe(str(live_path))
    watcher = ModelWatcher(slot, probe, lambda _token: str(live_path), initial=probe())
    assert watcher.poll_once() is False
    build_onnx_policy(tmp_path / "staged.onnx", NAMES, INSTR, spec_hash="spec-1", seed=5, version="2")
    # a deploy: the model, then its manifest (the watcher retries when the second lands)
    (tmp_path / "staged.onnx").replace(live_path)
    assert watcher.poll_once() is True
    slot.join(5)
    assert slot.swap_if_ready() is None and "does not match the manifest" in slot.last_error
    manifest_path(tmp_path / "staged.onnx").replace(manifest_path(live_path))
    assert watcher.poll_once() is True
    slot.join(5)
    assert slot.swap_if_ready() is not None and slot.current.version == "2"
