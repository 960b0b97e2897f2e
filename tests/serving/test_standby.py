"""Single writer and hot standby: a journal's lease admits one trading process; a standby takes
over when the primary dies (SIGKILL at random write-ahead points, in a real subprocess) and the
session ends with exactly the orders and fills of a run that never died: 0 lost, 0 duplicated."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from serving_helpers import export_config_policy, sim_config

from serving.app import run_serve
from serving.journal import Journal, LeaseError
from serving.standby import wait_for_lease

HERE = Path(__file__).parent


def journal_state(path: Path) -> tuple[list, list, list]:
    """Orders, fills (the ledger) and decisions: what must be identical to the reference."""
    j = Journal(path)
    orders = [(o.client_id, o.qty, o.status) for o in j.orders()]
    fills = [(f.fill_id, f.client_id, f.ts, f.qty, f.price, f.fee, f.spread, f.impact) for f in j.fills()]
    decisions = [(d["t_ns"], d["target"], d["allowed"], d["equity"]) for d in j.decisions()]
    j.close()
    return orders, fills, decisions


def fill_faults(state: tuple[list, list, list], ref: tuple[list, list, list]) -> tuple[int, int]:
    """(lost, duplicated) fills against the reference, by venue fill id and client id."""
    got = [f[1] for f in state[1]]
    want = [f[1] for f in ref[1]]
    return len(set(want) - set(got)), len(got) - len(set(got))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("standby")
    cfg = sim_config(tmp, repo_root, n_steps=200).with_overrides(["costs.latency=20m"])
    raw = yaml.safe_load((tmp / "sim.yaml").read_text())
    raw["costs"]["latency"] = "20m"
    raw["serving"] = {"journal_sync": "normal", "model_poll": None, "lease_ttl": "800ms"}
    path = tmp / "standby.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    model = export_config_policy(cfg, tmp / "m.onnx", seed=2)
    ref_journal = tmp / "ref.sqlite"
    out = subprocess.run([sys.executable, str(HERE / "serving_primary.py"), str(path), str(model), str(ref_journal), "0"],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    hook_calls = int(out.stdout.split("hook_calls=")[1].split()[0])
    ref = journal_state(ref_journal)
    assert len(ref[1]) > 20 and hook_calls > 100
    return path, model, ref, hook_calls


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(HERE.parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, str(HERE), env.get("PYTHONPATH", "")])
    return env


def kill_and_take_over(config: Path, model: Path, journal: Path, k: int) -> tuple[int, object, str]:
    """Start a primary that SIGKILLs itself at write-ahead point ``k``; a standby in this process
    waits on the lease, takes over and finishes the session. Returns (primary rc, summary, primary stderr)."""
    from dea.config import load_config

    proc = subprocess.Popen([sys.executable, str(HERE / "serving_primary.py"), str(config), str(model), str(journal), str(k)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 60
    while not journal.exists() or Journal(journal).lease() is None:  # the primary holds the journal
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.02)
    summary = run_serve(load_config(config), model=str(model), feed="replay", exchange="paper", journal=str(journal),
                        standby=True)
    rc = proc.wait(timeout=60)
    return rc, summary, proc.stderr.read()[-3000:]


@pytest.mark.parametrize("seed", range(5))
def test_standby_takes_over_a_killed_primary_with_no_fill_lost_or_repeated(setup, tmp_path, seed):
    config, model, ref, hook_calls = setup
    k = random.Random(seed).randrange(1, hook_calls)
    journal = tmp_path / "live.sqlite"
    rc, summary, proc_err = kill_and_take_over(config, model, journal, k)
    assert rc == -9, proc_err  # died by SIGKILL, mid-session
    state = journal_state(journal)
    assert fill_faults(state, ref) == (0, 0)
    assert state == ref  # orders, fills and decisions exactly those of the run that never died
    j = Journal(journal)
    assert len(j.events("takeover")) == 1 and summary.reconciled == 1
    assert summary.silent_decisions > 0 or k < 5


def test_a_second_writer_is_refused_and_a_lost_lease_fences_writes(tmp_path):
    a, b = Journal(tmp_path / "j.sqlite"), Journal(tmp_path / "j.sqlite")
    la = a.acquire_lease("primary", int(5e9))
    with pytest.raises(LeaseError, match="held by 'primary'.*--standby"):
        b.acquire_lease("second", int(5e9))
    a.set_meta("x", "1")  # the holder writes
    # the primary stalls past its lease; a standby takes over with a new epoch
    a.renew_lease(int(1e6))
    time.sleep(0.01)
    lb = b.acquire_lease("standby", int(5e9))
    assert lb.epoch == la.epoch + 1
    with pytest.raises(LeaseError, match="lease lost to 'standby'"):
        a.set_meta("x", "2")  # the stale primary can no longer write anything
    assert b.get_meta("x") == "1"
    with pytest.raises(LeaseError):
        a.renew_lease(int(5e9))


def test_standby_gives_up_waiting_when_stopped(tmp_path):
    import threading

    a, b = Journal(tmp_path / "j.sqlite"), Journal(tmp_path / "j.sqlite")
    a.acquire_lease("primary", int(60e9))
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert wait_for_lease(b, "standby", int(60e9), poll_s=0.02, stop=stop) is None
    a.release_lease()
    assert wait_for_lease(b, "standby", int(60e9), poll_s=0.02, timeout_s=5).holder == "standby"
