"""Selection machinery on cases small enough to check by hand: CPCV layouts, the probability of
backtest overfitting (CSCV) and the nested choice among candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dea.errors import ConfigError, DataError
from training.selection import (
    combinatorial_purged_cv,
    pbo_from_scores,
    probability_of_backtest_overfitting,
    select_candidate,
)

HOUR = 3_600_000_000_000


def _usable(T: int = 100) -> np.ndarray:
    u = np.ones(T, bool)
    u[:4] = False  # warm-up
    u[-1] = False  # no forward return
    return u


# ---------------------------------------------------------------------------------------- CPCV
def test_cpcv_layout_by_hand():
    layout = combinatorial_purged_cv(_usable(), n_folds=4, n_test_folds=2, purge=1, embargo=1)
    # usable rows 4..98 (95 rows): groups of 95 // 4 = 23, the last one takes the remainder
    assert layout.groups == ((4, 27), (27, 50), (50, 73), (73, 99))
    assert len(layout.splits) == 6 and layout.n_paths == 3  # C(4, 2) splits; 6 * 2 / 4 paths
    s1 = layout.splits[1]
    assert s1.test_groups == (0, 2) and s1.test == ((4, 27), (50, 73))
    # 27, 28 after test group 0 (purge 1 + embargo 1), 49 before group 2 (purge 1), 73, 74 after it
    assert s1.train == ((29, 49), (75, 99))
    for s in layout.splits:
        train, test = set(s.train_rows().tolist()), set(s.test_rows().tolist())
        assert not train & test
        assert train | test | set(range(4, 99)) == set(range(4, 99))
        for a, b in s.test:
            assert a - 1 not in train or a == 4  # one purged row before every test group
            assert b not in train and b + 1 not in train  # purge + embargo after it


def test_cpcv_paths_cover_every_group_once_and_recombine():
    layout = combinatorial_purged_cv(_usable(), n_folds=4, n_test_folds=2)
    values = {}
    for s in layout.splits:
        for g, (a, b), p in zip(s.test_groups, s.test, s.path_ids):
            values[(s.index, g)] = np.full((b - a, 2), 10.0 * s.index + g)
            assert layout.path_table[g][p] == s.index
    paths = layout.recombine(values)
    assert paths.shape == (3, 95, 2)
    for p in range(3):
        pieces = layout.path_segments(p)
        assert [g for _, g, _ in pieces] == [0, 1, 2, 3]  # every group once, in time order
        for s, g, (a, b) in pieces:
            np.testing.assert_array_equal(paths[p, a - 4 : b - 4], 10.0 * s + g)
    # the splits that supply a group to the 3 paths are the 3 splits that test it
    for g in range(4):
        assert sorted(layout.path_table[g]) == [s.index for s in layout.splits if g in s.test_groups]
    del values[(0, 1)]
    with pytest.raises(DataError, match="split 0, group 1"):
        layout.recombine(values)


def test_cpcv_durations_and_stop_before_the_test_period():
    by_rows = combinatorial_purged_cv(_usable(), 4, 2, purge=2, embargo=1)
    by_time = combinatorial_purged_cv(_usable(), 4, 2, purge="2h", embargo="30m", step_ns=HOUR)
    assert by_rows == by_time
    short = combinatorial_purged_cv(_usable(), 3, 2, stop=64)
    assert short.span == (4, 64) and max(s.train_rows().max() for s in short.splits) < 64
    with pytest.raises(ConfigError, match="is a duration"):
        combinatorial_purged_cv(_usable(), 4, 2, purge="1d")


@pytest.mark.parametrize("kw, why", [
    ({"n_folds": 2, "n_test_folds": 1}, "n_folds must be >= 3"),
    ({"n_folds": 4, "n_test_folds": 4}, "n_test_folds must be in"),
    ({"n_folds": 4, "n_test_folds": 2, "purge": 15, "embargo": 7}, "purge 15 \\+ embargo 7 rows must be < 22"),
])
def test_cpcv_bad_layouts_are_config_errors(kw, why):
    with pytest.raises(ConfigError, match=why):
        combinatorial_purged_cv(_usable(), **kw)


# ---------------------------------------------------------------------------------------- PBO
def test_pbo_tiny_score_matrices_by_hand():
    # 2 blocks, 2 candidates, each best where the other is worst: the in-sample winner always loses
    r = pbo_from_scores(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert r.pbo == 1.0 and np.allclose(r.logits, math.log(0.5))  # rank 1 of 2: w = 1/3
    dominant = pbo_from_scores(np.array([[1.0, 0.0], [2.0, 0.0]]))
    assert dominant.pbo == 0.0 and np.allclose(dominant.logits, math.log(2.0))  # w = 2/3

    # 4 blocks x 3 candidates; halves in itertools order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    scores = np.array([[4, 1, 0], [0, 2, 1], [1, 0, 3], [2, 0, 1]], dtype=float)
    r = pbo_from_scores(scores)
    # (0,1): IS sums [4,3,1] -> c0; OOS [3,0,4]: c0 in the middle, w = 2/4
    # (0,2): IS [5,1,3] -> c0; OOS [2,2,2]: a three-way tie, average rank 2, w = 1/2
    # (0,3): IS [6,1,1] -> c0; OOS [1,2,4]: last, w = 1/4
    # (1,2): IS [1,2,4] -> c2; OOS [6,1,1]: tied last with c1, rank 1.5, w = 3/8
    # (1,3): IS [2,2,2] -> c0 (tie: earliest); OOS [5,1,3]: first, w = 3/4
    # (2,3): IS [3,0,4] -> c2; OOS [4,3,1]: last, w = 1/4
    w = np.array([0.5, 0.5, 0.25, 0.375, 0.75, 0.25])
    np.testing.assert_allclose(r.oos_rank, w)
    np.testing.assert_allclose(r.logits, np.log(w / (1 - w)))
    assert r.best_in_sample.tolist() == [0, 0, 0, 2, 0, 2]
    assert r.pbo == pytest.approx((3 + 0.5 * 2) / 6)  # 3 below the median, 2 exactly at it
    assert r.n_combinations == 6 and r.n_blocks == 4 and r.n_candidates == 3


def test_pbo_from_returns_is_the_sharpe_of_the_concatenated_halves():
    rng = np.random.default_rng(4)
    ret = rng.normal(0.0, 0.01, (40, 3)) + np.array([0.0, 0.002, 0.001])

    def sharpe(x):
        return x.mean(0) / x.std(0, ddof=1)

    two = probability_of_backtest_overfitting(ret, n_blocks=2)  # each half is one block
    by_block = pbo_from_scores(np.stack([sharpe(ret[:20]), sharpe(ret[20:])]))
    np.testing.assert_allclose(two.is_performance, by_block.is_performance)
    np.testing.assert_allclose(two.oos_performance, by_block.oos_performance)
    assert two.pbo == by_block.pbo and two.best_in_sample.tolist() == by_block.best_in_sample.tolist()
    four = probability_of_backtest_overfitting(ret, n_blocks=4)
    # half (0, 2) is rows 0-9 and 20-29
    is_rows = np.r_[0:10, 20:30]
    best = int(np.argmax(sharpe(ret[is_rows])))
    assert four.best_in_sample[1] == best
    assert four.is_performance[1] == pytest.approx(sharpe(ret[is_rows])[best])
    assert four.oos_performance[1] == pytest.approx(sharpe(ret[np.r_[10:20, 30:40]])[best])


def test_pbo_no_skill_is_a_coin_flip_and_a_dominant_candidate_is_never_overfit():
    pbos = []
    for seed in range(20):
        ret = np.random.default_rng(seed).normal(0.0, 0.01, (400, 8))
        pbos.append(probability_of_backtest_overfitting(ret, n_blocks=8).pbo)
    assert 0.35 < float(np.mean(pbos)) < 0.65
    ident = np.tile(np.random.default_rng(0).normal(0, 0.01, (400, 1)), (1, 5))
    assert probability_of_backtest_overfitting(ident, n_blocks=8).pbo == 0.5  # K identical candidates
    ret = np.random.default_rng(1).normal(0.0, 0.01, (800, 8))
    ret[:, 5] += 0.004
    r = probability_of_backtest_overfitting(ret, n_blocks=10)
    assert r.pbo == 0.0 and set(r.best_in_sample.tolist()) == {5} and r.prob_oos_loss == 0.0


def test_a_flat_candidate_is_never_the_in_sample_best():
    rng = np.random.default_rng(2)
    ret = np.column_stack([np.zeros(200), rng.normal(-0.001, 0.01, 200)])
    r = probability_of_backtest_overfitting(ret, n_blocks=4)
    assert set(r.best_in_sample.tolist()) == {1}


def test_pbo_bad_input():
    with pytest.raises(ConfigError, match="even"):
        probability_of_backtest_overfitting(np.zeros((50, 3)), n_blocks=5)
    with pytest.raises(DataError, match=">= 2 candidates"):
        probability_of_backtest_overfitting(np.zeros((50, 1)))
    bad = np.zeros((50, 3))
    bad[7, 2] = np.nan
    with pytest.raises(DataError, match="row 7, candidate 2"):
        probability_of_backtest_overfitting(bad, n_blocks=4)


# ---------------------------------------------------------------------------------------- nested choice
def test_select_candidate_ties_go_to_the_earliest_listed():
    s = select_candidate({"linear": [0.5, 0.7], "mlp": [0.7, 0.5], "gru": [0.2, 0.1]})
    assert s.choice == "linear" and s.index == 0 and s.n_trials == 3
    assert s.mean_scores == {"linear": 0.6, "mlp": 0.6, "gru": pytest.approx(0.15)}
    assert s.score_variance == pytest.approx(np.var([0.6, 0.6, 0.15], ddof=1))
    assert select_candidate({"a": [1.0, 2.0], "b": [0.0, 0.5]}, maximize=False).choice == "b"


def test_one_standard_error_rule_prefers_the_simpler_candidate():
    scores = {"base_only": [1.0, 1.0, 1.0, 1.0], "adjusted": [0.4, 1.8, 0.6, 1.4]}  # mean 1.05, se 0.33
    assert select_candidate(scores).choice == "adjusted"
    one_se = select_candidate(scores, rule="one_se")
    assert one_se.choice == "base_only"
    assert one_se.tolerance == pytest.approx(np.std([0.4, 1.8, 0.6, 1.4], ddof=1) / 2)


def test_failed_candidates_raise_or_are_excluded_but_still_counted():
    scores = {"a": [0.1, 0.2], "b": [float("nan"), 0.9], "c": [0.3, 0.1]}
    with pytest.raises(DataError, match="'b' has a non-finite validation score on fold 0"):
        select_candidate(scores)
    s = select_candidate(scores, on_failure="exclude")
    assert s.choice == "c" and s.excluded == ("b",) and s.n_trials == 3 and math.isnan(s.mean_scores["b"])
    with pytest.raises(DataError, match="same folds"):
        select_candidate({"a": [0.1, 0.2], "b": [0.3]})


# ---------------------------------------------------------------------------------------- deflated Sharpe
def _result(returns: np.ndarray):
    from dea.backtest.result import BacktestResult

    T = len(returns)
    z = np.zeros(T)
    return BacktestResult(
        name="policy", clock=np.arange(T, dtype=np.int64), instruments=("X",), initial_equity=1.0,
        equity=np.cumprod(1 + returns), returns=returns, gross_returns=returns, costs={"fee": z}, turnover=z,
        exposures=np.ones((T, 1)), margin_use=z, instrument_costs={"fee": np.zeros(1)}, instrument_pnl=np.zeros(1),
        traded_notional=np.zeros(1), events=(), interventions={}, intervention_mask=np.zeros(T, np.int32),
        periods_per_year=365.0,
    )


def test_deflated_sharpe_counts_the_candidates_tried():
    from dea.metrics import compute_metrics
    from training.metrics_adapter import deflated_sharpe_of

    r = np.random.default_rng(3).normal(0.0015, 0.01, 600)
    res = _result(r)
    sel = select_candidate({"a": [1.0, 1.2], "b": [0.4, 0.6], "c": [0.9, 0.7], "d": [0.1, 0.3]})
    got = deflated_sharpe_of(res, 100, 400, n_trials=sel.n_trials, trials_sharpe_variance=sel.score_variance)
    want = compute_metrics(r[100:401], 365.0, n_trials=4, trials_sharpe_variance=sel.score_variance)  # rows [100, 401)
    assert got["deflated_sharpe"] == pytest.approx(want["deflated_sharpe"])
    assert got["n_trials"] == 4 and got["trials_sharpe_variance"] == sel.score_variance
    null = deflated_sharpe_of(res, 100, 400, n_trials=4)
    assert null["trials_sharpe_variance"] == pytest.approx(365.0 / 300)
    more = deflated_sharpe_of(res, 100, 400, n_trials=40)
    assert more["deflated_sharpe"] < null["deflated_sharpe"] and more["sharpe_threshold"] > null["sharpe_threshold"]

