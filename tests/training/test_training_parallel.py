"""Thread-pool sizing (training.threads) and the process pool for independent tasks (training.parallel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
import torch
from threadpoolctl import threadpool_info
from training_parallel_tasks import fail_on_two, report_threads, sleep_or_fail

from dea.errors import ConfigError
from training.parallel import run_parallel
from training.threads import limit_threads, worker_threads


def test_worker_threads_share_the_cores():
    assert worker_threads(2, 8) == 4
    assert worker_threads(3, 8) == 2  # never more threads than cores in all
    assert worker_threads(16, 2) == 1  # at least one each
    assert worker_threads(1, 6) == 6
    assert 1 <= worker_threads(1) <= (os.cpu_count() or 1)
    with pytest.raises(ConfigError, match="workers"):
        worker_threads(0, 4)
    with pytest.raises(ConfigError, match="cores"):
        worker_threads(2, 0)


def test_limit_threads_sizes_every_pool_and_restores_them():
    # In a fresh interpreter: torch's inter-op pool is fixed once any test here has used torch.
    here = Path(__file__).parent
    code = "import training_parallel_tasks as t; t.check_limit_threads_sizes_every_pool_and_restores_them()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_run_parallel_in_task_order_with_threads_limited_per_worker():
    got = run_parallel(report_threads, [0, 1, 2, 3, 4], workers=2, cores=4)
    assert [g[0] for g in got] == [0, 1, 4, 9, 16]
    pids = {g[1] for g in got}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # cores // workers = 2 threads in torch and OpenMP (this test process runs with 1), numba
    # capped by the pool size the environment gave it
    assert {g[2:] for g in got} == {(2, min(2, numba.config.NUMBA_NUM_THREADS), 2)}


def test_run_parallel_in_process_when_one_worker():
    got = run_parallel(report_threads, [3], workers=1)
    assert got[0][0] == 9 and got[0][1] == os.getpid()
    assert run_parallel(report_threads, [], workers=4) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_run_parallel_names_the_failing_task(workers: int):
    with pytest.raises(ValueError, match="task 2 cannot be done") as err:
        run_parallel(fail_on_two, [0, 1, 2, 3], workers=workers, cores=2)
    assert any("task 2 (2)" in note for note in err.value.__notes__)
    with pytest.raises(ConfigError, match="workers"):
        run_parallel(fail_on_two, [0], workers=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_parallel_reports_each_result_as_it_arrives(workers: int):
    seen: list[tuple[int, int]] = []
    got = run_parallel(fail_on_two, [0, 1, 3, 4], workers=workers, cores=2, on_result=lambda k, r: seen.append((k, r)))
    assert got == [0, 1, 3, 4]
    assert sorted(seen) == [(0, 0), (1, 1), (2, 3), (3, 4)]  # every task once, index with its own result
    seen.clear()
    with pytest.raises(ValueError, match="task 2 cannot be done"):
        run_parallel(fail_on_two, [0, 1, 2], workers=workers, cores=2, on_result=lambda k, r: seen.append((k, r)))
    assert (2, 2) not in seen  # a failed task is never reported as a result


def test_a_failed_task_stops_the_workers_still_running(tmp_path):
    pidfile = str(tmp_path / "sleeper.pid")
    with pytest.raises(RuntimeError, match="task 1 failed while task 0 was still running") as err:
        run_parallel(sleep_or_fail, [(0, pidfile), (1, pidfile)], workers=2, cores=2)
    assert any("task 1" in note for note in err.value.__notes__)
    sleeper = int(open(pidfile).read())
    with pytest.raises(ProcessLookupError):  # terminated and reaped, not left sleeping for 10 minutes
        os.kill(sleeper, 0)
