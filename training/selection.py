"""Honest model selection: combinatorial purged cross-validation, the probability of backtest
overfitting, and a nested choice among configured candidates.

Why: picking the best of several candidates (model kinds, bases, losses) on the same rows that
report its performance overstates it. Three tools keep the choice honest:

- :func:`combinatorial_purged_cv` -- López de Prado's combinatorial purged cross-validation
  (*AFML* ch. 12) on DEA's decision clock, from skfolio's
  :class:`~skfolio.model_selection.CombinatorialPurgedCV`: the span is cut into ``n_folds``
  contiguous groups; every choice of ``n_test_folds`` groups is a test set, the rest (less
  ``purge`` rows on both sides of each test group and ``embargo`` more after it) the training
  set. The test groups recombine into ``n_paths`` complete out-of-sample histories
  (:meth:`CPCVLayout.recombine`), a distribution of backtests instead of one.
- :func:`probability_of_backtest_overfitting` -- Bailey, Borwein, López de Prado & Zhu (2017),
  combinatorially symmetric cross-validation (CSCV): over every half/half split of S blocks,
  how often the in-sample best candidate ranks below the out-of-sample median.
- :func:`select_candidate` -- the nested choice: the candidate with the best mean *validation*
  score over folds (ties to the earliest listed, i.e. the simplest when candidates are listed
  simplest first), with the number of candidates tried, which the deflated Sharpe ratio of the
  chosen policy must be deflated by.

Rows are ``[start, stop)`` ranges on the decision clock, like :class:`training.splits.Fold`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dea.config.learning import steps_of
from dea.errors import ConfigError, DataError

Segment = tuple[int, int]


def _segments(rows: np.ndarray) -> tuple[Segment, ...]:
    """Sorted row indices -> maximal contiguous ``[start, stop)`` runs."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return ()
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return tuple((int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops))


def _rows(segments: Sequence[Segment]) -> np.ndarray:
    return np.concatenate([np.arange(a, b) for a, b in segments]) if segments else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------------------- CPCV
@dataclass(frozen=True)
class CPCVSplit:
    """One train/test combination: training rows as contiguous segments (purged and embargoed
    around every test group), and the test groups with the recombined path each belongs to."""

    index: int
    train: tuple[Segment, ...]
    test: tuple[Segment, ...]  # one segment per test group, in time order
    test_groups: tuple[int, ...]  # the group id of each test segment
    path_ids: tuple[int, ...]  # the path each test segment is part of

    def train_rows(self) -> np.ndarray:
        return _rows(self.train)

    def test_rows(self) -> np.ndarray:
        return _rows(self.test)


@dataclass(frozen=True)
class CPCVLayout:
    """Every split of a combinatorial purged cross-validation over rows ``groups[0][0]`` ..
    ``groups[-1][1]`` of the decision clock."""

    groups: tuple[Segment, ...]
    splits: tuple[CPCVSplit, ...]
    n_paths: int
    purge: int
    embargo: int
    path_table: tuple[tuple[int, ...], ...]  # [group][path]: the split whose test supplies group g to path p

    @property
    def span(self) -> Segment:
        return (self.groups[0][0], self.groups[-1][1])

    def path_segments(self, path: int) -> list[tuple[int, int, Segment]]:
        """``(split index, group, rows)`` of the pieces of recombined path ``path``, in time order."""
        if not 0 <= path < self.n_paths:
            raise ValueError(f"path must be in [0, {self.n_paths}), got {path}")
        return [(self.path_table[g][path], g, self.groups[g]) for g in range(len(self.groups))]

    def recombine(self, values: Mapping[tuple[int, int], np.ndarray]) -> np.ndarray:
        """Stitch per-split test outputs into the ``n_paths`` out-of-sample paths.

        ``values[(split index, group)]`` is what the model trained on that split produced on that
        test group (first axis: the group's rows, e.g. net returns or exposures [rows, N]).
        Returns ``[n_paths, span rows, ...]``.
        """
        pieces = []
        for p in range(self.n_paths):
            path = []
            for s, g, (a, b) in self.path_segments(p):
                if (s, g) not in values:
                    raise DataError(f"CPCV recombine: no test output for split {s}, group {g} (rows [{a}, {b}))")
                v = np.asarray(values[(s, g)])
                if v.shape[:1] != (b - a,):
                    raise DataError(
                        f"CPCV recombine: split {s}, group {g} output has {v.shape[0] if v.ndim else 0} rows, "
                        f"its test group has {b - a} (rows [{a}, {b}))"
                    )
                path.append(v)
            pieces.append(np.concatenate(path, axis=0))
        return np.stack(pieces)


def combinatorial_purged_cv(usable: np.ndarray, n_folds: int, n_test_folds: int, *, purge: int | str = 0,
                            embargo: int | str = 0, step_ns: int | None = None, stop: int | None = None
                            ) -> CPCVLayout:
    """Combinatorial purged CV over the rows from the first usable row to the last usable row
    before ``stop`` (e.g. the row of ``training.test_start``, so selection never sees the test).

    ``purge``/``embargo`` are rows or durations (``"30d"``, rounded up to clock steps; they then
    need ``step_ns``), with skfolio's meaning: ``purge`` rows are removed from the training set on
    both sides of each test group, ``embargo`` more after it. Raises :class:`ConfigError` for a
    layout the data cannot hold.
    """
    from skfolio.model_selection import CombinatorialPurgedCV

    usable = np.asarray(usable, dtype=bool)
    if stop is not None:
        usable = usable[:stop]
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        raise ConfigError("selection CPCV: no usable rows" + (f" before row {stop}" if stop is not None else ""))
    first, n = int(idx[0]), int(idx[-1]) - int(idx[0]) + 1
    p, e = steps_of(purge, step_ns, "selection CPCV purge"), steps_of(embargo, step_ns, "selection CPCV embargo")
    if n_folds < 3:
        raise ConfigError(f"selection CPCV: n_folds must be >= 3, got {n_folds}")
    if not 2 <= n_test_folds < n_folds:
        raise ConfigError(f"selection CPCV: n_test_folds must be in [2, n_folds={n_folds}), got {n_test_folds}")
    group = n // n_folds
    if p + e >= group - 1:
        raise ConfigError(
            f"selection CPCV: purge {p} + embargo {e} rows must be < {group - 1}: {n} usable rows in "
            f"{n_folds} groups of {group}; use fewer folds, a shorter purge or more data"
        )
    try:
        cv = CombinatorialPurgedCV(n_folds=n_folds, n_test_folds=n_test_folds, purged_size=p, embargo_size=e)
        raw = list(cv.split(np.zeros((n, 1))))
    except ValueError as exc:
        raise ConfigError(f"selection CPCV: {exc}") from None
    path_ids = cv.get_path_ids()
    # skfolio's groups: n_folds - 1 of n // n_folds rows, the last one takes the remainder
    groups = tuple((first + g * group, first + (n if g == n_folds - 1 else (g + 1) * group)) for g in range(n_folds))
    test_groups = cv.test_set_index
    splits = tuple(
        CPCVSplit(
            index=i,
            train=_segments(first + train),
            test=tuple((first + int(t[0]), first + int(t[-1]) + 1) for t in tests),
            test_groups=tuple(int(g) for g in test_groups[i]),
            path_ids=tuple(int(q) for q in path_ids[i]),
        )
        for i, (train, tests) in enumerate(raw)
    )
    return CPCVLayout(groups=groups, splits=splits, n_paths=int(cv.n_test_paths), purge=p, embargo=e,
                      path_table=tuple(tuple(int(s) for s in row) for row in cv.recombined_paths))


# ---------------------------------------------------------------------------------------- PBO
@dataclass(frozen=True, eq=False)
class PBOResult:
    """CSCV over ``n_blocks`` blocks: one entry per combination of half the blocks as in-sample."""

    pbo: float
    logits: np.ndarray  # [C] lambda = log(w / (1 - w)) of the in-sample best's out-of-sample rank
    best_in_sample: np.ndarray  # [C] index of the candidate chosen in sample
    oos_rank: np.ndarray  # [C] its relative out-of-sample rank w in (0, 1) (1 = best)
    is_performance: np.ndarray  # [C] its in-sample performance
    oos_performance: np.ndarray  # [C] its out-of-sample performance
    n_blocks: int
    n_candidates: int

    @property
    def n_combinations(self) -> int:
        return int(self.logits.size)

    @property
    def prob_oos_loss(self) -> float:
        """Share of combinations whose in-sample best loses (performance < 0) out of sample."""
        return float(np.mean(self.oos_performance < 0))

    @property
    def degradation_slope(self) -> float:
        """Slope of out-of-sample on in-sample performance of the chosen candidate (< 0: overfit)."""
        ok = np.isfinite(self.is_performance) & np.isfinite(self.oos_performance)
        x, y = self.is_performance[ok], self.oos_performance[ok]
        return float(np.polyfit(x, y, 1)[0]) if x.size > 1 and np.ptp(x) > 0 else math.nan


def _halves(n_blocks: int) -> np.ndarray:
    """[C, S] 0/1: every choice of S/2 blocks as in-sample (the CSCV combinations)."""
    combos = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    m = np.zeros((len(combos), n_blocks))
    m[np.arange(len(combos))[:, None], np.array(combos)] = 1.0
    return m


def _cscv(is_perf: np.ndarray, oos_perf: np.ndarray, n_blocks: int) -> PBOResult:
    C, K = is_perf.shape
    best = np.argmax(is_perf, axis=1)  # ties: the earliest listed
    rows = np.arange(C)
    chosen = oos_perf[rows, best]
    below = np.sum(oos_perf < chosen[:, None], axis=1)
    tied = np.sum(oos_perf == chosen[:, None], axis=1) - 1
    w = (1 + below + 0.5 * tied) / (K + 1)  # average rank of ties, 1 = worst
    logits = np.log(w / (1 - w))
    # the in-sample best is "overfit" when it falls below the out-of-sample median (lambda < 0);
    # exactly at the median (lambda = 0, e.g. identical candidates) counts half
    pbo = float(np.mean(logits < 0) + 0.5 * np.mean(logits == 0))
    return PBOResult(pbo=pbo, logits=logits, best_in_sample=best, oos_rank=w, is_performance=is_perf[rows, best],
                     oos_performance=chosen, n_blocks=n_blocks, n_candidates=K)


def _check_blocks(n_blocks: int, n_rows: int, what: str) -> None:
    if n_blocks < 2 or n_blocks % 2:
        raise ConfigError(f"PBO: n_blocks must be an even number >= 2, got {n_blocks}")
    if n_blocks > 24:
        raise ConfigError(f"PBO: n_blocks={n_blocks} makes {math.comb(n_blocks, n_blocks // 2):,} combinations; use <= 24")
    if n_rows < n_blocks:
        raise DataError(f"PBO: {n_rows} {what} cannot be cut into {n_blocks} blocks")


def _matrix(x: np.ndarray, what: str) -> np.ndarray:
    m = np.asarray(x, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise DataError(f"PBO: need a 2-D {what} matrix with >= 2 candidates (columns), got shape {m.shape}")
    bad = np.argwhere(~np.isfinite(m))
    if bad.size:
        r, c = bad[0]
        raise DataError(f"PBO: {what} has {len(bad)} NaN/inf values (first at row {r}, candidate {c})")
    return m


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 16) -> PBOResult:
    """PBO of choosing by Sharpe ratio among the K columns of a per-period ``returns`` matrix
    [T, K] (the candidates' returns on the same rows), by CSCV over ``n_blocks`` contiguous
    blocks (sizes differ by at most one row).

    A candidate with zero variance on a half has Sharpe -inf there (it is never the best and
    ranks last), so a flat candidate cannot look good by having no returns.
    """
    r = _matrix(returns, "returns")
    _check_blocks(n_blocks, r.shape[0], "rows")
    bounds = np.linspace(0, r.shape[0], n_blocks + 1).round().astype(int)
    s1 = np.add.reduceat(r, bounds[:-1], axis=0)  # [S, K] block sums
    s2 = np.add.reduceat(r * r, bounds[:-1], axis=0)
    cnt = np.diff(bounds).astype(np.float64)

    def sharpe(m: np.ndarray) -> np.ndarray:
        n = (m @ cnt)[:, None]
        mean = (m @ s1) / n
        var = ((m @ s2) - n * mean**2) / (n - 1)
        sd = np.sqrt(np.maximum(var, 0.0))
        flat = sd <= 1e-12 * np.sqrt(np.maximum((m @ s2) / n, 0.0))  # constant up to rounding
        return np.where(flat, -np.inf, mean / np.where(flat, 1.0, sd))

    halves = _halves(n_blocks)
    return _cscv(sharpe(halves), sharpe(1.0 - halves), n_blocks)


def pbo_from_scores(scores: np.ndarray) -> PBOResult:
    """PBO from a per-block performance matrix [S, K] (e.g. each candidate's Sharpe on each of S
    folds): a half's performance is the mean of its blocks' scores."""
    m = _matrix(scores, "scores")
    _check_blocks(m.shape[0], m.shape[0], "blocks")
    halves = _halves(m.shape[0])
    k = m.shape[0] // 2
    return _cscv(halves @ m / k, (1.0 - halves) @ m / k, m.shape[0])


# ---------------------------------------------------------------------------------------- nested choice
@dataclass(frozen=True)
class NestedChoice:
    """The nested choice among candidates, from validation scores only."""

    choice: str
    index: int
    mean_scores: dict[str, float]
    fold_scores: dict[str, tuple[float, ...]]
    n_trials: int  # every candidate tried, failed ones included: the deflated Sharpe's trial count
    excluded: tuple[str, ...]  # candidates with a non-finite fold score (on_failure="exclude")
    rule: str
    tolerance: float  # scores within this of the best counted as ties

    @property
    def score_variance(self) -> float:
        """Variance (ddof=1) of the candidates' mean scores; with annualised Sharpe scores this is
        the ``trials_sharpe_variance`` of the deflated Sharpe ratio (NaN with < 2 candidates)."""
        v = [s for s in self.mean_scores.values() if math.isfinite(s)]
        return float(np.var(v, ddof=1)) if len(v) > 1 else math.nan


def select_candidate(val_scores: Mapping[str, Sequence[float]], *, maximize: bool = True,
                     rule: Literal["best", "one_se"] = "best",
                     on_failure: Literal["raise", "exclude"] = "raise") -> NestedChoice:
    """Choose among candidates by their mean validation score over folds (never test scores).

    ``val_scores`` maps candidate names, listed simplest first, to one score per fold (every
    candidate the same folds). ``rule="best"``: the best mean, ties to the earliest listed;
    ``"one_se"``: the earliest candidate within one standard error (over folds) of the best --
    Breiman's one-standard-error rule, preferring the simpler model unless the better one is
    better by more than noise. A non-finite score (a failed fit) raises :class:`DataError`, or
    with ``on_failure="exclude"`` drops that candidate (still counted in ``n_trials``).
    """
    if rule not in ("best", "one_se"):
        raise ValueError(f"rule must be 'best' or 'one_se', got {rule!r}")
    if on_failure not in ("raise", "exclude"):
        raise ValueError(f"on_failure must be 'raise' or 'exclude', got {on_failure!r}")
    names = list(val_scores)
    if not names:
        raise DataError("select_candidate: no candidates")
    folds = {n: tuple(float(x) for x in val_scores[n]) for n in names}
    lengths = {len(v) for v in folds.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise DataError(f"select_candidate: every candidate needs a score on the same folds, got {{name: n_folds}} = "
                        f"{ {n: len(v) for n, v in folds.items()} }")
    excluded = []
    for n, v in folds.items():
        bad = [k for k, x in enumerate(v) if not math.isfinite(x)]
        if bad:
            if on_failure == "raise":
                raise DataError(f"select_candidate: candidate {n!r} has a non-finite validation score on fold {bad[0]}")
            excluded.append(n)
    live = [n for n in names if n not in excluded]
    if not live:
        raise DataError(f"select_candidate: every candidate failed ({names})")
    sign = 1.0 if maximize else -1.0
    means = {n: float(np.mean(folds[n])) if n in live else math.nan for n in names}
    best = max(live, key=lambda n: (sign * means[n], -names.index(n)))
    tol = 1e-12 * max(1.0, abs(means[best]))
    if rule == "one_se" and len(folds[best]) > 1:
        tol += float(np.std(folds[best], ddof=1) / math.sqrt(len(folds[best])))
    choice = next(n for n in live if sign * means[n] >= sign * means[best] - tol)
    return NestedChoice(choice=choice, index=names.index(choice), mean_scores=means, fold_scores=folds,
                     n_trials=len(names), excluded=tuple(excluded), rule=rule, tolerance=tol)
