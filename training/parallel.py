"""Independent training tasks (folds, ensemble members, trials) in parallel processes.

:func:`run_parallel` maps a top-level, picklable callable over tasks in a process pool whose
workers start fresh (``spawn`` or ``forkserver``: no forked copy of the parent's torch, numba or
OpenMP thread state, which deadlocks or oversubscribes) and size every thread pool to their
share of the cores (:func:`training.threads.limit_threads` with
:func:`~training.threads.worker_threads`) before the first task runs. Results come back in task
order; a task's exception is re-raised in the caller with the task named in a note, so a failed
fold says which fold it was. ``workers=1`` runs in this process (no pickling, same errors),
which is also how tests and debuggers see the same code path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Literal, TypeVar

from dea.errors import ConfigError
from training.threads import limit_threads, worker_threads

T = TypeVar("T")
R = TypeVar("R")
StartMethod = Literal["spawn", "forkserver"]


def _init_worker(threads: int) -> None:
    """Worker initializer: size the thread pools before any task imports or runs anything."""
    limit_threads(threads)


def _name_task(exc: BaseException, index: int, task: object) -> None:
    text = repr(task)
    if len(text) > 200:
        text = text[:197] + "..."
    exc.add_note(f"run_parallel: raised by task {index} ({text})")


def run_parallel(fn: Callable[[T], R], tasks: Sequence[T], workers: int, *, cores: int | None = None,
                 start_method: StartMethod = "spawn") -> list[R]:
    """``[fn(t) for t in tasks]`` on ``workers`` processes, each limited to
    ``worker_threads(workers, cores)`` threads per pool; results in task order.

    ``fn`` and the tasks must be picklable (``fn`` a module-level function). The first task to
    fail (in task order) has its exception re-raised with a note naming it, after the tasks not
    yet started are cancelled. ``workers=1`` (or a single task) runs in-process, thread pools
    untouched.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if start_method not in ("spawn", "forkserver"):
        raise ConfigError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
    items = list(tasks)
    n = min(workers, len(items))
    if n <= 1:
        out = []
        for k, task in enumerate(items):
            try:
                out.append(fn(task))
            except Exception as exc:
                _name_task(exc, k, task)
                raise
        return out
    threads = worker_threads(n, cores)
    with ProcessPoolExecutor(max_workers=n, mp_context=get_context(start_method), initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures: list[Future[R]] = [pool.submit(fn, task) for task in items]
        results: list[R] = []
        for k, fut in enumerate(futures):
            try:
                results.append(fut.result())
            except Exception as exc:  # the worker's traceback is its __cause__; a dead worker: BrokenProcessPool
                for f in futures:
                    f.cancel()
                _name_task(exc, k, items[k])
                raise
        return results
