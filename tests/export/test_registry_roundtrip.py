"""Registry round trip: export -> log + register (@challenger) -> promote (@champion) -> load by
alias in the serving runner -> a new champion is hot-swapped in; plus `dea export --run`."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dea.cli.main import main as dea_main
from dea.errors import ModelError
from serving.hotswap import ModelSlot, ModelWatcher, registry_probe
from serving.runner import LiveSpec, PolicyRunner
from training.policies import PolicySpec, build_policy
from training.registry import alias_version, export_and_register, promote

FEATURES = ("f_a", "f_b", "f_c", "f_d")
INSTRUMENTS = ("BTCUSDT", "ETHUSDT")


def _policy(seed: int):
    torch.manual_seed(seed)
    spec = PolicySpec(kind="mlp", feature_names=FEATURES, instruments=INSTRUMENTS, caps=(1.0, 1.0), max_gross=2.0, hidden=(8,))
    return build_policy(spec)


def _validation(seed: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(50, 4)).astype(np.float32), rng.uniform(-0.5, 0.5, size=(50, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A local MLflow tracking server (HTTP, one worker), as a serving host would reach it."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    tmp = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_cli), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", str(tmp / "artifacts")],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"),
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"mlflow server did not start: {(tmp / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        mp = pytest.MonkeyPatch()
        mp.chdir(tmp)
        yield tmp, uri
        mp.undo()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def first(store):
    tmp, uri = store
    return _train_and_register(1, tmp, uri)


def _train_and_register(seed, tmp_path, uri):
    return export_and_register(
        _policy(seed),
        feature_spec_hash="spec-1",
        train_window=("2024-01-01", "2024-02-01"),
        config_hash="cfg",
        data_fingerprint="fp",
        validation_inputs=_validation(seed),
        out_dir=tmp_path / f"out{seed}",
        registered_model="dea-test-policy",
        tracking_uri=uri,
        experiment="dea-test",
    )


def test_register_promote_load_by_alias_and_hot_swap(tmp_path, store, first):
    tracking_uri = store[1]
    assert first.registered is not None and first.registered.version == "1"
    assert alias_version("dea-test-policy", "challenger", tracking_uri=tracking_uri) == "1"
    with pytest.raises(ModelError, match="no alias @champion"):
        alias_version("dea-test-policy", "champion", tracking_uri=tracking_uri)

    assert dea_main(["promote", "--model", "dea-test-policy", "--version", "1", "--tracking-uri", tracking_uri]) == 0
    live = LiveSpec.of(FEATURES, "spec-1", INSTRUMENTS)
    # a serving process loads models:/NAME@champion over HTTP with the REST client only
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from serving.runner import LiveSpec, PolicyRunner\n"
        f"r = PolicyRunner.load('models:/dea-test-policy@champion', LiveSpec.of({list(FEATURES)!r}, 'spec-1', "
        f"{list(INSTRUMENTS)!r}), tracking_uri={tracking_uri!r}, cache_dir={str(tmp_path / 'c2')!r})\n"
        "print(json.dumps([r.version, [m for m in ('sqlalchemy', 'alembic', 'flask', 'torch') if m in sys.modules]]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["1", []]
    champion = PolicyRunner.load("models:/dea-test-policy@champion", live, tracking_uri=tracking_uri, cache_dir=tmp_path / "cache")
    local = PolicyRunner.from_path(first.path, live)
    assert champion.version == "1" and champion.metadata.model_version.startswith("run-")
    f, e = _validation(9)
    for i in range(5):
        np.testing.assert_array_equal(champion.decide(f[i], e[i]).copy(), local.decide(f[i], e[i]))

    # a second training run becomes challenger; champion stays on 1 until promoted
    second = _train_and_register(2, tmp_path, tracking_uri)
    assert second.registered.version == "2"
    assert alias_version("dea-test-policy", "champion", tracking_uri=tracking_uri) == "1"

    slot = ModelSlot(
        champion,
        lambda src: PolicyRunner.load(src, live, tracking_uri=tracking_uri, cache_dir=tmp_path / "cache"),
    )
    watcher = ModelWatcher(
        slot,
        registry_probe("dea-test-policy", "champion", tracking_uri),
        lambda v: f"models:/dea-test-policy/{v}",
        initial="1",
    )
    assert watcher.poll_once() is False  # nothing changed
    promote("dea-test-policy", 2, tracking_uri=tracking_uri)
    assert watcher.poll_once() is True
    slot.join()
    swapped = slot.swap_if_ready()
    assert swapped is not None and slot.current.version == "2" and slot.swaps == 1
    want = PolicyRunner.from_path(second.path, live).decide(f[0], e[0]).copy()
    np.testing.assert_array_equal(slot.current.decide(f[0], e[0]), want)

    with pytest.raises(ModelError, match="cannot promote 'dea-test-policy' version 9"):
        promote("dea-test-policy", 9, tracking_uri=tracking_uri)


def test_dea_export_run_reexports_an_earlier_run(tmp_path, store, first, capsys):
    tracking_uri = store[1]
    run_id = first.registered.run_id
    code = dea_main(["export", "--run", run_id, "--tracking-uri", tracking_uri, "--out", str(tmp_path / "re")])
    assert code == 0
    captured = capsys.readouterr()
    out = captured.out
    import re

    m = re.search(r"registered dea-test-policy version (\d+) @challenger", out)
    assert m and int(m.group(1)) > int(first.registered.version)  # a new version of the same model
    # one registration line while it works (DEA's, with the digest), not MLflow's two prints besides
    said = [ln for ln in captured.err.splitlines() if "regist" in ln.lower() or "Created version" in ln]
    assert len(said) == 1 and said[0].startswith(f"registered model dea-test-policy version {m.group(1)} @challenger (sha256 "), said
    again = PolicyRunner.from_path(tmp_path / "re" / "policy.onnx")
    orig = PolicyRunner.from_path(first.path)
    f, e = _validation(4)
    np.testing.assert_array_equal(again.decide(f[0], e[0]).copy(), orig.decide(f[0], e[0]))
    assert again.metadata == orig.metadata

    assert dea_main(["export", "--run", "0" * 32, "--tracking-uri", tracking_uri]) == 2
    assert "cannot read its 'export_bundle' artifact" in capsys.readouterr().err


def test_dea_export_run_rebuilds_from_what_dea_train_logs(store, tmp_path, repo_root, capsys):
    """A run holding only ``config/config.resolved.yaml`` and ``model/policy`` (what ``dea train``
    logs): the data are prepared again from the config and the export is parity-gated on them."""
    import mlflow
    import yaml

    from dea.config import load_config
    from dea.features import FeatureSet
    from dea.features.missing import input_names
    from training.policies import save_policy

    _, uri = store
    raw = yaml.safe_load((repo_root / "configs" / "sim.yaml").read_text())
    for src in raw["data"]["sources"]:
        src["options"] = dict(src["options"], n_steps=300)
    raw["tracking"] = {"experiment": "dea-test", "registered_model": "dea-sim-rebuilt"}
    raw["model"]["base"]["vol_lookback"] = "6h"  # 300 hourly steps: the base's 30-day window would never warm up
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(tmp_path / "sim.yaml")
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    names = input_names(fs.names, cfg.features.missing)
    torch.manual_seed(0)
    policy = build_policy(PolicySpec(kind="mlp", feature_names=tuple(names), instruments=tuple(cfg.data.symbols),
                                     caps=(1.0,) * 4, max_gross=2.0, hidden=(8,)))
    save_policy(policy, tmp_path / "policy")
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("dea-test") or client.get_experiment(client.create_experiment("dea-test"))
    run = client.create_run(exp.experiment_id)
    client.log_text(run.info.run_id, yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config/config.resolved.yaml")
    client.log_artifacts(run.info.run_id, str(tmp_path / "policy"), "model/policy")
    client.set_terminated(run.info.run_id)

    assert dea_main(["export", "--run", run.info.run_id, "--tracking-uri", uri, "--out", str(tmp_path / "re")]) == 0
    assert "registered dea-sim-rebuilt version 1 @challenger" in capsys.readouterr().out
    runner = PolicyRunner.from_path(tmp_path / "re" / "policy.onnx", LiveSpec.of(names, fs.spec_hash, cfg.data.symbols))
    assert runner.metadata.model_version == f"run-{run.info.run_id}"


def test_registered_versions_carry_the_digest_and_a_tampered_download_is_refused(tmp_path, store, first):
    import mlflow

    from dea.model_artifact import TAG_GIT_COMMIT, TAG_SHA256, TrustPolicy, read_manifest

    tracking_uri = store[1]
    mv = mlflow.MlflowClient(tracking_uri=tracking_uri).get_model_version("dea-test-policy", first.registered.version)
    assert mv.tags[TAG_SHA256] == read_manifest(first.path).sha256
    assert mv.tags[TAG_GIT_COMMIT] == "unknown" or len(mv.tags[TAG_GIT_COMMIT]) == 40
    uri = f"models:/dea-test-policy/{first.registered.version}"
    cache = tmp_path / "cache"
    runner = PolicyRunner.load(uri, tracking_uri=tracking_uri, cache_dir=cache, trust=TrustPolicy())
    assert runner.sha256 == mv.tags[TAG_SHA256]  # the registry stores exactly the exported bytes
    cached = next(cache.rglob("*.onnx"))
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0x10
    cached.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the registry tag"):
        PolicyRunner.load(uri, tracking_uri=tracking_uri, cache_dir=cache, trust=TrustPolicy())


def test_tracking_block_leaves_mlflow_state_as_it_found_it(tmp_path, monkeypatch) -> None:
    """An experiment made active inside ``tracking(uri)`` belongs to that store, and one active
    before it to another: either, left active, makes ``start_run(run_id=...)`` refuse the store's
    own run as foreign (this broke registration after an execution report in the same process)."""
    import mlflow
    from mlflow.tracking import fluent

    from training.registry import tracking

    before = (mlflow.get_tracking_uri(), fluent._active_experiment_id, os.environ.get("MLFLOW_EXPERIMENT_ID"))
    with tracking(f"sqlite:///{tmp_path / 'a.db'}"):
        mlflow.set_experiment("elsewhere")
        assert fluent._active_experiment_id is not None
    assert (mlflow.get_tracking_uri(), fluent._active_experiment_id, os.environ.get("MLFLOW_EXPERIMENT_ID")) == before
    uri_b = f"sqlite:///{tmp_path / 'b.db'}"
    monkeypatch.setattr(fluent, "_active_experiment_id", "424242")  # another store's, active before the block
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "424242")
    with tracking(uri_b):
        client = mlflow.MlflowClient(uri_b)
        run = client.create_run(client.create_experiment("mine"))
        with mlflow.start_run(run_id=run.info.run_id) as active:  # not refused as foreign
            assert active.info.run_id == run.info.run_id
    assert fluent._active_experiment_id == "424242" and os.environ["MLFLOW_EXPERIMENT_ID"] == "424242"  # restored
