"""Module-level task functions for the run_parallel tests (spawned workers import them by name)."""

from __future__ import annotations

import os


def report_threads(task: int) -> tuple[int, int, int, int, int]:
    """``(task squared, worker pid, torch intra-op threads, numba threads, OMP_NUM_THREADS)``."""
    import numba
    import torch

    return task * task, os.getpid(), torch.get_num_threads(), numba.get_num_threads(), int(os.environ["OMP_NUM_THREADS"])


def fail_on_two(task: int) -> int:
    """``task``, except task 2 raises."""
    if task == 2:
        raise ValueError(f"task {task} cannot be done")
    return task
