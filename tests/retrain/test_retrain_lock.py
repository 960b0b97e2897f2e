"""The retrain lock: exclusive while held, cleared safely after a crash (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from training.retrain_lock import LockHeldError, RunLock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from training.retrain_lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def _start_holder(path: Path, repo_root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=repo_root, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_is_refused_while_the_first_is_alive(tmp_path, repo_root) -> None:
    path = tmp_path / "retrain.lock"
    proc = _start_holder(path, repo_root)
    try:
        with pytest.raises(LockHeldError, match=f"pid {proc.pid}"):
            RunLock(path).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_of_a_killed_run_is_detected_and_cleared(tmp_path, repo_root) -> None:
    path = tmp_path / "retrain.lock"
    proc = _start_holder(path, repo_root)
    proc.send_signal(signal.SIGKILL)  # crash: no cleanup runs
    proc.wait()
    assert json.loads(path.read_text())["pid"] == proc.pid  # the dead run's file is still there
    with RunLock(path) as lock:
        assert lock.stale_cleared is not None and lock.stale_cleared.pid == proc.pid
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()  # a clean release leaves nothing behind
    with RunLock(path) as again:
        assert again.stale_cleared is None


def test_lock_is_exclusive_within_one_process_too(tmp_path) -> None:
    path = tmp_path / "l"
    with RunLock(path):
        with pytest.raises(LockHeldError, match=str(os.getpid())):
            RunLock(path).acquire()


def test_hung_holder_is_reported_not_broken(tmp_path, repo_root) -> None:
    path = tmp_path / "retrain.lock"
    proc = _start_holder(path, repo_root)
    try:
        time.sleep(0.05)
        with pytest.raises(LockHeldError, match="may be hung"):
            RunLock(path, stale_note_after_s=0.01).acquire()
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
