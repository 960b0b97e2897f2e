"""``dea retrain`` on answers known in advance (simulated market with a planted signal):
a challenger trained on shuffled labels is refused, a clearly better one is promoted, a stale
lock is cleared, a live lock makes the run exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from dea.cli.main import main
from training.retrain import retrain

CONFIG = Path(__file__).with_name("retrain_sim.yaml")
HOLD = textwrap.dedent(
    """
    import sys, time
    from training.retrain_lock import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def _holder(lock: Path, repo_root: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(seconds)], cwd=repo_root, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_worse_refused_better_promoted_and_stale_lock_cleared(tmp_path, monkeypatch, repo_root) -> None:
    monkeypatch.chdir(tmp_path)
    # the store is relative to the config's folder: run a copy so it lands in tmp_path
    config = tmp_path / CONFIG.name
    config.write_text(CONFIG.read_text())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # a previous run crashed while holding the lock
    dead = _holder(tmp_path / "retrain.lock", repo_root, 60)
    dead.send_signal(signal.SIGKILL)
    dead.wait()

    # 1. no champion yet: a model trained on shuffled labels becomes the (bad) champion
    bad = retrain(config, tracking_uri=uri, negative_control=True, out_dir=tmp_path / "r1")
    assert bad.stale_lock_cleared and f"pid {dead.pid}" in bad.stale_lock_cleared
    assert bad.decision.promote and bad.promoted_version == "1"

    # 2. a challenger trained on the real labels beats it clearly: promoted
    good = retrain(config, tracking_uri=uri, out_dir=tmp_path / "r2")
    assert good.decision.promote, good.format()
    assert good.champion_version == "1" and good.promoted_version == "2"
    assert good.challenger.value("sharpe") > good.champion.value("sharpe") + 1.0

    # 3. shuffled labels again, now against the good champion: refused
    worse = retrain(config, tracking_uri=uri, negative_control=True, dry_run=True, out_dir=tmp_path / "r3")
    assert not worse.decision.promote, worse.format()
    assert worse.champion_version == "2" and "kept the champion" in worse.decision.reason

    client = MlflowClient(uri)
    assert str(client.get_model_version_by_alias("retrain-sim", "champion").version) == "2"
    run = client.get_run(good.run_id)
    assert run.data.tags["dea.decision"] == "promote" and "beats champion" in run.data.tags["dea.reason"]
    assert {"champion.sharpe", "challenger.sharpe", "promoted"} <= set(run.data.metrics)
    doc = json.loads((tmp_path / "r3" / "decision.json").read_text())
    assert doc["would_promote"] is False and doc["champion_version"] == "2"
    # the exported challenger carries its training-time feature distribution for drift monitoring
    from dea.drift import load_reference

    ref = load_reference(good.challenger_path)
    assert ref.names and all(f.n > 100 for f in ref.features)


def test_a_live_lock_makes_the_run_exit_2(tmp_path, monkeypatch, repo_root, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    holder = _holder(tmp_path / "retrain.lock", repo_root, 30)
    try:
        code = main(["retrain", "--config", str(CONFIG), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    assert f"pid {holder.pid}" in capsys.readouterr().err


def test_if_flagged_without_a_flag_does_nothing(tmp_path, capsys) -> None:
    assert main(["retrain", "--config", str(CONFIG), "--if-flagged", str(tmp_path / "none.flag")]) == 0
    assert "no retrain requested" in capsys.readouterr().out
