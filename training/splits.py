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

The outer train/test layout is scikit-learn's :class:`~sklearn.model_selection.TimeSeriesSplit`
(``gap`` = purge + embargo, ``max_train_size`` for sliding windows), so the split arithmetic is
the well-tested library's, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import TimeSeriesSplit

from dea.config.learning import SplitConfig
from dea.errors import ConfigError


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


def walk_forward_folds(usable: np.ndarray, cfg: SplitConfig, *, min_fit: int = 2) -> list[Fold]:
    """Folds over the span from the first to the last usable row of ``usable`` [T] (bool).

    Raises :class:`ConfigError` when the data are too short for the requested layout, naming the
    sizes involved.
    """
    usable = np.asarray(usable, dtype=bool)
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        raise ConfigError("training.splits: no usable rows (every row has invalid features or no forward return)")
    first, last = int(idx[0]), int(idx[-1])
    n = last - first + 1
    gap = cfg.purge + cfg.embargo
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
        n_val = int(np.floor(cfg.val_share * (t1 - t0)))
        fit_stop = t1 - n_val - gap
        if n_val < 2 or fit_stop - t0 < min_fit:
            raise ConfigError(
                f"training.splits: fold {k} training part [{t0}, {t1}) of {t1 - t0} rows leaves "
                f"{max(fit_stop - t0, 0)} fit rows (need >= {min_fit}) and {n_val} validation rows "
                f"(need >= 2) after a gap of {gap}; lower n_folds/val_share or use more data"
            )
        folds.append(
            Fold(
                index=k,
                fit=(t0, fit_stop),
                val=(t1 - n_val, t1),
                test=(first + int(test[0]), first + int(test[-1]) + 1),
            )
        )
    return folds


def final_fold(usable: np.ndarray, cfg: SplitConfig, *, min_fit: int = 2) -> Fold:
    """The deployment fold: fit on everything but the most recent validation block.

    Same layout as a walk-forward fold with no test block (``test`` is empty at the end), so the
    model that is exported has seen the most recent data the validation allows.
    """
    idx = np.flatnonzero(np.asarray(usable, dtype=bool))
    if idx.size == 0:
        raise ConfigError("training.splits: no usable rows for the final model")
    first, stop = int(idx[0]), int(idx[-1]) + 1
    gap = cfg.purge + cfg.embargo
    n_val = int(np.floor(cfg.val_share * (stop - first)))
    fit_stop = stop - n_val - gap
    if n_val < 2 or fit_stop - first < min_fit:
        raise ConfigError(
            f"training.splits: the final model's {stop - first} usable rows leave {max(fit_stop - first, 0)} fit rows "
            f"and {n_val} validation rows after a gap of {gap}"
        )
    return Fold(index=-1, fit=(first, fit_stop), val=(stop - n_val, stop), test=(stop, stop))
