"""Walk-forward folds with purging and embargo (López de Prado, *AFML* ch. 7).

Each fold is laid out on the decision clock as::

    [ fit ........ ][purge+embargo][ val ][purge+embargo][ test ]

* ``fit`` trains the policy and fits the scaler; ``val`` drives early stopping; ``test`` is the
  out-of-sample block. Test blocks of consecutive folds are adjacent and do not overlap, so their
  out-of-sample exposures stitch into one continuous out-of-sample history.
* ``expanding``: every fold's training part starts at the first usable row; ``sliding``: it keeps
  the first fold's length and slides forward.
* ``purge`` removes the rows just before an evaluation block whose label window (the return over
  (t, t+1], and any longer horizon a feature of the *label* would use) reaches into it;
  ``embargo`` removes further rows to absorb serial correlation. In a forward-only walk no
  training row follows an evaluation block, so both are applied as the gap before it.

``purge`` and ``embargo`` are decision steps or durations (``"30d"``: rounded up to whole steps of
the clock). With ``training.test_start`` the out-of-sample span is fixed in time instead of by
``train_min``: [test_start, end) is cut into ``n_folds`` adjacent test blocks (sizes differing by
at most one row) and each fold trains only on rows before its block.

Without ``test_start`` the outer train/test layout is scikit-learn's :class:`~sklearn.model_selection.TimeSeriesSplit`
(``gap`` = purge + embargo, ``max_train_size`` for sliding windows), so the split arithmetic is
the well-tested library's, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import TimeSeriesSplit

from dea.config.learning import SplitConfig
from dea.errors import ConfigError
from dea.timeutil import iso, parse_timestamp


@dataclass(frozen=True)
class Fold:
    """Row ranges ``[start, stop)`` on the panel's decision clock."""

    index: int
    fit: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def rows(self, part: str) -> np.ndarray:
        start, stop = getattr(self, part)
        return np.arange(start, stop)

    @property
    def train(self) -> tuple[int, int]:
        """The whole training part (fit through val)."""
        return (self.fit[0], self.val[1])

    def to_dict(self) -> dict[str, list[int] | int]:
        return {"index": self.index, "fit": list(self.fit), "val": list(self.val), "test": list(self.test)}


def clock_step(clock: np.ndarray | None, step_ns: int | None = None) -> int | None:
    """The decision-clock step in ns: ``step_ns`` if given, else the median spacing of ``clock``."""
    if step_ns is not None:
        return int(step_ns)
    if clock is None:
        return None
    clock = np.asarray(clock, dtype=np.int64)
    if clock.size < 2:
        raise ConfigError(f"training.splits: a clock of {clock.size} rows has no step; pass step_ns=")
    return int(np.median(np.diff(clock)))


def row_of_time(clock: np.ndarray, when: str | int) -> int:
    """First clock row at or after ``when`` (ISO string or int ns, UTC), e.g. where ``training.test_start`` begins."""
    return int(np.searchsorted(np.asarray(clock, dtype=np.int64), parse_timestamp(when), side="left"))


def _make_fold(k: int, t0: int, t1: int, test: tuple[int, int], gap: int, val_share: float, min_fit: int) -> Fold:
    """Fold ``k`` training on [t0, t1): its last ``val_share`` for validation, ``gap`` rows before it."""
    n_val = int(np.floor(val_share * (t1 - t0)))
    fit_stop = t1 - n_val - gap
    if n_val < 2 or fit_stop - t0 < min_fit:
        raise ConfigError(
            f"training.splits: fold {k} training part [{t0}, {t1}) of {t1 - t0} rows leaves "
            f"{max(fit_stop - t0, 0)} fit rows (need >= {min_fit}) and {n_val} validation rows "
            f"(need >= 2) after a gap of {gap}; lower n_folds/val_share or use more data"
        )
    return Fold(index=k, fit=(t0, fit_stop), val=(t1 - n_val, t1), test=test)


def walk_forward_folds(usable: np.ndarray, cfg: SplitConfig, *, min_fit: int = 2, clock: np.ndarray | None = None,
                       step_ns: int | None = None, test_start: str | int | None = None) -> list[Fold]:
    """Folds over the span from the first to the last usable row of ``usable`` [T] (bool).

    ``clock`` [T] (int64 ns) and/or ``step_ns`` are needed when ``purge``/``embargo`` are
    durations (the step defaults to the clock's median spacing); ``test_start`` (ISO date or int
    ns; ``training.test_start``) needs ``clock``. Raises :class:`ConfigError` when the data are
    too short for the requested layout, naming the sizes involved.
    """
    usable = np.asarray(usable, dtype=bool)
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        raise ConfigError("training.splits: no usable rows (every row has invalid features or no forward return)")
    first, last = int(idx[0]), int(idx[-1])
    if clock is not None and len(clock) != len(usable):
        raise ConfigError(f"training.splits: clock has {len(clock)} rows but usable has {len(usable)}")
    gap = cfg.gap_steps(clock_step(clock, step_ns))
    if test_start is not None:
        return _folds_from_test_start(cfg, first, last, gap, min_fit, clock, test_start)
    n = last - first + 1
    train0 = int(np.floor(cfg.train_min * n))
    test_size = (n - train0 - gap) // cfg.n_folds
    if test_size < 1:
        raise ConfigError(
            f"training.splits: {n} usable rows cannot hold a first training part of {train0} rows "
            f"(train_min={cfg.train_min}), a gap of {gap} and {cfg.n_folds} test blocks"
        )
    splitter = TimeSeriesSplit(
        n_splits=cfg.n_folds,
        test_size=test_size,
        gap=gap,
        max_train_size=train0 if cfg.scheme == "sliding" else None,
    )
    folds: list[Fold] = []
    for k, (train, test) in enumerate(splitter.split(np.arange(n))):
        t0, t1 = first + int(train[0]), first + int(train[-1]) + 1
        folds.append(_make_fold(k, t0, t1, (first + int(test[0]), first + int(test[-1]) + 1), gap, cfg.val_share, min_fit))
    return folds


def _folds_from_test_start(cfg: SplitConfig, first: int, last: int, gap: int, min_fit: int,
                           clock: np.ndarray | None, test_start: str | int) -> list[Fold]:
    if clock is None:
        raise ConfigError(f"training.test_start={test_start!r} needs the decision clock (pass clock=)")
    clock = np.asarray(clock, dtype=np.int64)
    a = row_of_time(clock, test_start)
    span = f"usable rows {iso(clock[first])} .. {iso(clock[last])}"
    if a > last:
        raise ConfigError(f"training.test_start={test_start!r} is after the last usable row ({span}): no test rows")
    if a - gap <= first:
        raise ConfigError(
            f"training.test_start={test_start!r} (row {a}) leaves no training rows before it after a gap of {gap} ({span})"
        )
    n_test = last + 1 - a
    if n_test < cfg.n_folds:
        raise ConfigError(
            f"training.test_start={test_start!r}: {n_test} test rows cannot hold {cfg.n_folds} test blocks (n_folds)"
        )
    bounds = [a + (n_test * k) // cfg.n_folds for k in range(cfg.n_folds + 1)]
    train_len = a - gap - first  # the first fold's training part; a sliding window keeps it
    folds: list[Fold] = []
    for k in range(cfg.n_folds):
        t1 = bounds[k] - gap
        t0 = first if cfg.scheme == "expanding" else max(first, t1 - train_len)
        folds.append(_make_fold(k, t0, t1, (bounds[k], bounds[k + 1]), gap, cfg.val_share, min_fit))
    return folds


def final_fold(usable: np.ndarray, cfg: SplitConfig, *, min_fit: int = 2, clock: np.ndarray | None = None,
               step_ns: int | None = None) -> Fold:
    """The deployment fold: fit on everything but the most recent validation block.

    Same layout as a walk-forward fold with no test block (``test`` is empty at the end), so the
    model that is exported has seen the most recent data the validation allows. ``clock`` /
    ``step_ns`` as in :func:`walk_forward_folds` (needed for duration purges/embargoes).
    """
    idx = np.flatnonzero(np.asarray(usable, dtype=bool))
    if idx.size == 0:
        raise ConfigError("training.splits: no usable rows for the final model")
    first, stop = int(idx[0]), int(idx[-1]) + 1
    gap = cfg.gap_steps(clock_step(clock, step_ns))
    n_val = int(np.floor(cfg.val_share * (stop - first)))
    fit_stop = stop - n_val - gap
    if n_val < 2 or fit_stop - first < min_fit:
        raise ConfigError(
            f"training.splits: the final model's {stop - first} usable rows leave {max(fit_stop - first, 0)} fit rows "
            f"and {n_val} validation rows after a gap of {gap}"
        )
    return Fold(index=-1, fit=(first, fit_stop), val=(stop - n_val, stop), test=(stop, stop))
