"""Module-level task functions for the run_parallel tests (spawned workers import them by name)."""

from __future__ import annotations

import os


def report_threads(task: int) -> tuple[int, int, int, int, int]:
    """``(task squared, worker pid, torch intra-op threads, numba threads, OMP_NUM_THREADS)``;
    ``OMP_NUM_THREADS`` is 0 where the process never set it (an in-process run)."""
    import numba
    import torch

    return task * task, os.getpid(), torch.get_num_threads(), numba.get_num_threads(), int(os.environ.get("OMP_NUM_THREADS", "0"))


def fail_on_two(task: int) -> int:
    """``task``, except task 2 raises."""
    if task == 2:
        raise ValueError(f"task {task} cannot be done")
    return task


def check_limit_threads_sizes_every_pool_and_restores_them() -> None:
    """The body of the limit_threads test; run in a fresh interpreter, because torch's inter-op
    pool cannot be resized once another test in the same process has started it."""
    import numba
    import torch
    from threadpoolctl import threadpool_info

    from dea.errors import ConfigError
    from training.threads import limit_threads

    before = (torch.get_num_threads(), numba.get_num_threads(), os.environ.get("OPENBLAS_NUM_THREADS"))
    native_before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    with limit_threads(1) as sizes:
        assert sizes.requested == 1
        assert sizes.torch_intraop == torch.get_num_threads() == 1
        assert sizes.numba == numba.get_num_threads() == 1
        assert sizes.native and set(sizes.native.values()) == {1}
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert (torch.get_num_threads(), numba.get_num_threads(), os.environ.get("OPENBLAS_NUM_THREADS")) == before
    assert {p["filepath"]: p["num_threads"] for p in threadpool_info()} == native_before
    try:
        limit_threads(0)
    except ConfigError as exc:
        assert "thread limit" in str(exc)
    else:
        raise AssertionError("limit_threads(0) was accepted")


def sleep_or_fail(task: tuple[int, str]) -> int:
    """Task ``(0, pidfile)`` writes its process id to ``pidfile`` and sleeps for 10 minutes; any
    other task waits for that file, then raises."""
    import time
    from pathlib import Path

    k, pidfile = task
    path = Path(pidfile)
    if k == 0:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(path)  # whole, or not there
        time.sleep(600)
        return k
    while not path.exists():
        time.sleep(0.05)
    raise RuntimeError(f"task {k} failed while task 0 was still running")
