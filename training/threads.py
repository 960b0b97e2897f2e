"""Thread pools sized so that parallel training processes never oversubscribe the cores.

Every library DEA trains with keeps its own pool, each sized to all cores by default: torch's
intra-op and inter-op pools, numba's, and the OpenMP/BLAS pools threadpoolctl can see (OpenBLAS,
MKL, libgomp, the ones scikit-learn and numpy load). Two processes side by side then run 2× the
cores in threads that spin-wait on each other, which made one training an order of magnitude
slower. :func:`limit_threads` sizes them all at once and records what each got;
:func:`worker_threads` is the size a worker of a pool of ``workers`` processes should take.

torch and numba are imported only when this is called (so a spawned worker can set the
environment first), and only torch's inter-op pool cannot shrink once torch has run parallel
work: then it keeps its size and the record says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from dea.errors import ConfigError

# read by OpenMP/BLAS runtimes when they first start a pool: a worker sets them before importing
# them, so that even pools threadpoolctl cannot reach start at the right size. (Not
# NUMBA_NUM_THREADS: numba refuses a change of it once its pool runs; ``set_num_threads`` suffices.)
_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Threads per pool for each of ``workers`` processes sharing ``cores`` (default: the cores
    available here): ``cores // workers``, at least 1, so the processes together use no more
    threads than cores (beyond one each when there are more workers than cores)."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    c = available_cores() if cores is None else cores
    if c < 1:
        raise ConfigError(f"cores must be >= 1, got {c}")
    return max(1, c // workers)


@dataclass(frozen=True)
class ThreadSizes:
    """What each pool was sized to (``None``: the library is not installed).

    ``torch_interop`` may exceed the request: torch cannot resize that pool once it has run
    parallel work (``torch_interop_fixed`` then says so). ``native`` maps each OpenMP/BLAS
    library threadpoolctl found (``internal_api`` and file) to its thread count."""

    requested: int
    torch_intraop: int | None
    torch_interop: int | None
    torch_interop_fixed: bool
    numba: int | None
    native: dict[str, int] = field(default_factory=dict)


class limit_threads:  # noqa: N801 - used like a function (``limit_threads(2)``) and as a context manager
    """Size torch (intra- and inter-op), numba and the OpenMP/BLAS pools to ``n`` threads, now.

    Called as a function the limits stay (a worker's initializer); as a context manager they are
    restored on exit (except torch's inter-op pool, which cannot shrink back or grow once used).
    ``.sizes`` records what each pool got (:class:`ThreadSizes`); ``set_env`` also exports the
    size in the environment variables that pools started later (or by child processes) read.
    """

    def __init__(self, n: int, *, set_env: bool = True) -> None:
        if n < 1:
            raise ConfigError(f"thread limit must be >= 1, got {n}")
        self._saved_env = {k: os.environ.get(k) for k in _ENV_VARS} if set_env else {}
        if set_env:
            for k in _ENV_VARS:
                os.environ[k] = str(n)
        self._torch_prev: int | None = None
        self._numba_prev: int | None = None
        self._native: Any = None
        self.sizes = ThreadSizes(n, *self._size_torch(n), self._size_numba(n), self._size_native(n))

    def _size_torch(self, n: int) -> tuple[int | None, int | None, bool]:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a training dependency
            return None, None, False
        self._torch_prev = torch.get_num_threads()
        torch.set_num_threads(n)
        fixed = False
        if torch.get_num_interop_threads() != n:
            try:
                torch.set_num_interop_threads(n)
            except RuntimeError:  # parallel work already ran: the pool is fixed for this process
                fixed = True
        return torch.get_num_threads(), torch.get_num_interop_threads(), fixed

    def _size_numba(self, n: int) -> int | None:
        try:
            import numba
        except ImportError:  # pragma: no cover
            return None
        self._numba_prev = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # cannot exceed its pool
        return numba.get_num_threads()

    def _size_native(self, n: int) -> dict[str, int]:
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()
        self._native = controller.limit(limits=n)
        return {f"{p.internal_api}:{os.path.basename(p.filepath)}": p.num_threads
                for p in ThreadpoolController().lib_controllers}

    def restore(self) -> None:
        """Give every pool back the size it had (torch's inter-op pool excepted)."""
        if self._native is not None:
            self._native.restore_original_limits()
            self._native = None
        if self._torch_prev is not None:
            import torch

            torch.set_num_threads(self._torch_prev)
        if self._numba_prev is not None:
            import numba

            numba.set_num_threads(self._numba_prev)
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def __enter__(self) -> ThreadSizes:
        return self.sizes

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()
