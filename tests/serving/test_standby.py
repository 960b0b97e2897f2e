"""Single writer + hot standby, as processes: a second ``dea serve`` on a held journal refuses to
trade; ``dea serve --standby`` takes over after the primary is SIGKILLed at random points and the
journal ends exactly as an uninterrupted run's (no fill lost, none duplicated)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from serving_helpers import export_config_policy, sim_config

from serving.failover import failover_trial, reference_run, serve_command


@pytest.fixture(scope="module")
def setup(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("standby")
    cfg = sim_config(tmp, repo_root, n_steps=900)
    model = export_config_policy(cfg, tmp / "m.onnx", seed=4)
    ref = reference_run(tmp / "sim.yaml", model, tmp / "ref.sqlite")
    assert len(ref["fills"]) > 20
    return tmp / "sim.yaml", model, ref


def test_primary_killed_at_random_points_the_standby_takes_over(setup, tmp_path):
    cfg_path, model, ref = setup
    rng = np.random.default_rng(11)
    n = len(ref["decisions"])
    for k, kill_after in enumerate(sorted(int(x) for x in rng.integers(n // 5, (4 * n) // 5, size=2))):
        res = failover_trial(cfg_path, model, tmp_path / f"j{k}.sqlite", ref, kill_after)
        assert res.error is None and res.standby_rc == 0, res.error
        assert res.killed_after >= kill_after and res.took_over
        assert (res.lost_fills, res.duplicated_fills, res.extra_fills, res.duplicated_orders, res.wrong_decisions) == \
            (0, 0, 0, 0, 0), res
        assert res.detail["orders_equal"]
        assert res.detail["standby_summary"]["this_run"]["replayed_silently"] >= kill_after - 1


def test_a_second_writer_on_a_held_journal_refuses_to_trade(setup, tmp_path):
    cfg_path, model, _ = setup
    journal = tmp_path / "j.sqlite"
    from serving.journal import Journal

    Journal(journal).acquire_lease("someone-else", 60 * 10**9)  # a live writer
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run(serve_command(cfg_path, model, journal), capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert "held by a live writer someone-else" in out.stderr and "--standby" in out.stderr
    assert Journal(journal).decisions() == []
