"""Independent training tasks (folds, ensemble members, trials) in parallel processes.

:func:`run_parallel` maps a top-level, picklable callable over tasks in a process pool whose
workers start fresh (``spawn`` or ``forkserver``: no forked copy of the parent's torch, numba or
OpenMP thread state, which deadlocks or oversubscribes) and size every thread pool to their
share of the cores (:func:`training.threads.limit_threads` with
:func:`~training.threads.worker_threads`) before the first task runs. Results come back in task
order (``on_result`` sees each as it arrives, for progress lines); a task's exception is
re-raised in the caller with the task named in a note, so a failed fold says which fold it was,
and the workers still fitting are stopped at once (as on a stop signal: a scheduler's SIGTERM
must not wait for minutes of fits that will be thrown away). ``workers=1`` runs in this process
(no pickling, same errors), which is also how tests and debuggers see the same code path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Literal, TypeVar, cast

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
                 start_method: StartMethod = "spawn",
                 on_result: Callable[[int, R], None] | None = None) -> list[R]:
    """``[fn(t) for t in tasks]`` on ``workers`` processes, each limited to
    ``worker_threads(workers, cores)`` threads per pool; results in task order.

    ``fn`` and the tasks must be picklable (``fn`` a module-level function). ``on_result(index,
    result)`` is called in this process as each task finishes (in the order they finish). When a
    task fails, the tasks not yet started are cancelled, the ones running are waited for, and the
    failed task first in task order has its exception re-raised with a note naming it.
    ``workers=1`` (or a single task) runs in-process, thread pools untouched.
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
            if on_result is not None:
                on_result(k, out[-1])
        return out
    threads = worker_threads(n, cores)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=get_context(start_method), initializer=_init_worker,
                               initargs=(threads,))
    try:
        futures: list[Future[R]] = [pool.submit(fn, task) for task in items]
        index = {id(f): k for k, f in enumerate(futures)}
        pending: set[Future[R]] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            failed = [f for f in done if not f.cancelled() and f.exception() is not None]
            if failed:  # the worker's traceback is its __cause__; a dead worker: BrokenProcessPool
                first = min(failed, key=lambda f: index[id(f)])
                exc = cast(BaseException, first.exception())
                _name_task(exc, index[id(first)], items[index[id(first)]])
                raise exc
            if on_result is not None:
                for f in sorted(done, key=lambda f: index[id(f)]):
                    on_result(index[id(f)], f.result())
        return [f.result() for f in futures]
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (``shutdown`` alone waits for running tasks to end).
    ``_processes`` is the executor's own table of its workers (CPython 3.11-3.13 have no public
    way; 3.14's ``terminate_workers`` is used where it exists)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
