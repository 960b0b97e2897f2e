"""The walk-forward's gradient-descent fits, trained up front on parallel processes.

Each fit of a walk-forward (one candidate, one fold, one ensemble member's seed) depends only on
its config, the data, its fold and its seed, so they can all run at once. :func:`fit_members`
names a policy's fits (the seeds, labels and metric prefixes
:func:`training.pipeline.fit_policy` uses); :func:`run_fits` trains a list of them on
``training.workers`` processes (:func:`training.parallel.run_parallel`) and returns a
:class:`FitBank` that ``fit_policy`` draws from instead of fitting in turn.

The weights are the same as fitting in turn: a fit seeds itself (``lightning.seed_everything``)
and runs on ``training.num_threads`` threads in either path (``tests/training/
test_training_fit_bank.py`` compares them bit for bit). The closed-form kinds (``base``,
``forecast``) take well under a second and stay in the calling process.

Why processes and one thread each rather than one process with all the threads: DEA's policies
are small, so a second torch thread buys nothing (an hourly fit: 22.8 s on one thread, 21.9 s on
two), while a process per fit uses every core.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dea.config import ExperimentConfig
from dea.progress import Progress
from training.datamodule import TrainingData
from training.ensemble import member_seeds
from training.fit import CLOSED_FORM, FoldFit, fit_fold, fit_summary
from training.parallel import run_parallel
from training.splits import Fold
from training.threads import available_cores

log = logging.getLogger("dea.progress.fit")

#: ``workers: auto`` starts processes only for data at least this long: a worker's start (~5 s of
#: importing torch and Lightning) pays only for fits that take longer than that
AUTO_MIN_ROWS = 10_000

FitKey = tuple[str, int, tuple[int, int], tuple[int, int], tuple[int, int], int]


@dataclass(frozen=True)
class Member:
    """One fit of a policy: its seed, its label in progress lines and its MLflow metric prefix
    (``""`` for a single model, ``member<i>_`` in an ensemble)."""

    seed: int
    label: str
    prefix: str


def fit_members(cfg: ExperimentConfig, seed: int, label: str) -> list[Member]:
    """The fits a policy of ``cfg`` takes: one, or ``model.ensemble`` members from spread seeds
    (closed-form kinds are deterministic, so always one)."""
    k = cfg.model.ensemble if cfg.model.kind not in CLOSED_FORM else 1
    if k == 1:
        return [Member(seed, label, "")]
    return [Member(s, f"{label} member {i + 1}/{k}", f"member{i}_") for i, s in enumerate(member_seeds(seed, k))]


def fit_key(cfg: ExperimentConfig, fold: Fold, seed: int) -> FitKey:
    """What identifies a fit: the whole config, the fold's row ranges and the seed."""
    return cfg.model_dump_json(), fold.index, fold.fit, fold.val, fold.test, seed


@dataclass(frozen=True, repr=False)
class FitTask:
    """One fit to run in a worker (picklable: the config, the data and the fold travel with it)."""

    cfg: ExperimentConfig
    data: TrainingData
    fold: Fold
    member: Member

    def __repr__(self) -> str:  # what a failed fit's error note names
        return f"FitTask({self.member.label}, seed {self.member.seed})"


class FitBank:
    """Fits trained ahead on ``workers`` processes, each taken once by its config, fold and seed
    (:func:`fit_key`)."""

    def __init__(self, fits: Mapping[FitKey, FoldFit], workers: int) -> None:
        self._fits = dict(fits)
        self.workers = workers

    def take(self, cfg: ExperimentConfig, fold: Fold, seed: int) -> FoldFit | None:
        """The fit trained for ``(cfg, fold, seed)``, removed from the bank; ``None`` if there is none."""
        return self._fits.pop(fit_key(cfg, fold, seed), None)

    def __len__(self) -> int:
        return len(self._fits)


def resolve_workers(setting: int | Literal["auto"], *, usable_rows: int, n_fits: int, num_threads: int,
                    cores: int | None = None) -> int:
    """Processes to fit ``n_fits`` fits on (see ``training.workers``): never more than the fits,
    and 1 inside a daemonic process (a ``multiprocessing.Pool`` worker may not start children).
    ``auto``: 1 below :data:`AUTO_MIN_ROWS` usable rows or for a single fit, else
    ``cores // num_threads``."""
    if n_fits < 2 or multiprocessing.current_process().daemon:
        return 1
    if setting != "auto":
        return min(int(setting), n_fits)
    if usable_rows < AUTO_MIN_ROWS:
        return 1
    c = available_cores() if cores is None else cores
    return max(1, min(n_fits, c // num_threads))


def summary_line(label: str, fit: FoldFit, monitor: str) -> str:
    """The line a fit in this process logs when it ends (``FitLines``), for a fit from a worker:
    its best epoch is the first with the lowest finite ``monitor`` of its history."""
    scored = [(row[monitor], i, row) for i, row in enumerate(fit.history) if math.isfinite(row.get(monitor, math.nan))]
    best = None if not scored else min(scored, key=lambda t: (t[0], t[1]))[1:]
    return fit_summary(label, len(fit.history), fit.fit_seconds, best, monitor)


def _fit_task(task: FitTask) -> FoldFit:
    """Worker side: one fit, without a live progress bar (workers share the terminal)."""
    cfg = task.cfg.model_copy(update={"training": task.cfg.training.model_copy(update={"progress_bar": False})})
    return fit_fold(cfg, task.data, task.fold, seed=task.member.seed, label=task.member.label)


def run_fits(tasks: Sequence[FitTask], workers: int, *, num_threads: int, name: str = "fits") -> FitBank:
    """Train ``tasks`` on ``workers`` processes of ``num_threads`` threads each; a line per fit
    as it ends and a progress line, like the fits in this process log."""
    items = list(tasks)
    progress = Progress(name, total=len(items), unit="fit")
    log.info("%s: %d fits on %d processes of %d thread%s", name, len(items), workers, num_threads,
             "" if num_threads == 1 else "s")

    def done(k: int, fit: FoldFit) -> None:
        log.info(summary_line(items[k].member.label, fit, items[k].cfg.training.monitor))
        progress.advance(detail=items[k].member.label)

    try:
        fits = run_parallel(_fit_task, items, workers, cores=workers * num_threads, on_result=done)
    finally:
        progress.close()
    return FitBank({fit_key(t.cfg, t.fold, t.member.seed): f for t, f in zip(items, fits)}, workers)


__all__ = ["AUTO_MIN_ROWS", "FitBank", "FitTask", "Member", "fit_key", "fit_members", "resolve_workers",
           "run_fits", "summary_line"]
