"""Walk-forward folds: purge/embargo gaps, no overlap, expanding vs sliding, windows, scaling."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dea.config.learning import SplitConfig
from dea.errors import ConfigError
from dea.features.config import ScalingConfig
from training.datamodule import window_starts
from training.scaling import fit_fold_scaler
from training.splits import walk_forward_folds


def _usable(T: int, warmup: int) -> np.ndarray:
    u = np.ones(T, bool)
    u[:warmup] = False
    u[-1] = False  # last row has no forward return
    return u


@pytest.mark.parametrize("scheme", ["expanding", "sliding"])
def test_folds_respect_purge_and_embargo_and_never_overlap(scheme):
    cfg = SplitConfig(scheme=scheme, n_folds=4, train_min=0.4, val_share=0.2, purge=3, embargo=2)
    usable = _usable(1000, warmup=50)
    folds = walk_forward_folds(usable, cfg)
    assert len(folds) == 4
    gap = 5
    for f in folds:
        assert f.fit[1] + gap == f.val[0], "purge+embargo rows between fit and validation"
        assert f.val[1] + gap == f.test[0], "purge+embargo rows between validation and test"
        assert f.fit[0] >= 50, "warm-up rows are never used"
        assert f.test[1] <= 999
    for a, b in zip(folds, folds[1:]):
        assert a.test[1] == b.test[0], "test blocks are adjacent: they stitch into one OOS history"
        assert b.train[1] + gap == b.test[0]
    if scheme == "expanding":
        assert {f.fit[0] for f in folds} == {50}
    else:
        lengths = {f.train[1] - f.train[0] for f in folds}
        assert len(lengths) == 1, "a sliding window keeps its length"
        assert folds[1].fit[0] > folds[0].fit[0]


def test_no_training_row_sees_its_test_block():
    cfg = SplitConfig(n_folds=3, purge=4, embargo=0)
    for f in walk_forward_folds(_usable(600, 10), cfg):
        # a training row t is labelled with the return over (t, t+1]; with the purge its label
        # ends >= purge rows before the test block starts
        last_train_label_end = f.train[1] - 1 + 1
        assert last_train_label_end + cfg.purge <= f.test[0]


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ConfigError, match="usable rows"):
        walk_forward_folds(_usable(30, 5), SplitConfig(n_folds=20, purge=5))
    with pytest.raises(ConfigError, match="validation rows"):
        walk_forward_folds(_usable(30, 5), SplitConfig(n_folds=10, purge=5))
    with pytest.raises(ConfigError, match="no usable rows"):
        walk_forward_folds(np.zeros(100, bool), SplitConfig())


def test_training_windows_stay_inside_the_block_and_skip_unusable_rows():
    usable = np.ones(200, bool)
    usable[60:63] = False
    starts = window_starts(usable, 20, 120, seq_len=10, stride=5)
    assert starts.size > 0
    for s in starts:
        assert 20 <= s and s + 10 <= 120
        assert usable[s : s + 10].all()
    assert np.all(np.diff(starts) >= 5)
    assert any(s >= 63 for s in starts), "windows resume after the gap"


def test_scaler_uses_fit_rows_only():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))
    fit_rows = np.arange(0, 100)
    a = fit_fold_scaler(X, fit_rows, ScalingConfig(method="robust"))
    X2 = X.copy()
    X2[100:] = 1e6  # poison everything after the fit block
    b = fit_fold_scaler(X2, fit_rows, ScalingConfig(method="robust"))
    c1, s1, c2, s2 = a.center, a.scale, b.center, b.scale
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(c1, np.median(X[:100], axis=0))


def test_constant_feature_gets_unit_scale():
    X = np.ones((50, 1))
    sc = fit_fold_scaler(X, np.arange(50), ScalingConfig(method="standard"))
    assert sc.scale[0] == 1.0 and sc.center[0] == 1.0


# ------------------------------------------------------------------ durations and training.test_start
HOUR = 3_600_000_000_000
DAY = 24 * HOUR
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def _clock(T: int, step: int) -> np.ndarray:
    return T0 + step * np.arange(T, dtype=np.int64)


def test_duration_purge_and_embargo_round_up_to_whole_clock_steps():
    cfg = SplitConfig(n_folds=3, purge="30h", embargo="1d")
    assert cfg.steps("purge", 12 * HOUR) == 3  # 30h / 12h = 2.5 -> 3: a purge covers at least 30h
    assert cfg.steps("embargo", 12 * HOUR) == 2
    assert cfg.gap_steps(HOUR) == 54
    usable = _usable(600, 10)
    by_duration = walk_forward_folds(usable, cfg, clock=_clock(600, 12 * HOUR))
    by_rows = walk_forward_folds(usable, SplitConfig(n_folds=3, purge=3, embargo=2))
    assert by_duration == by_rows
    assert walk_forward_folds(usable, cfg, step_ns=12 * HOUR) == by_rows
    with pytest.raises(ConfigError, match=r"purge='30h' is a duration.*clock= or step_ns="):
        walk_forward_folds(usable, cfg)


def test_split_config_validates_purge_and_embargo():
    assert SplitConfig(purge=4, embargo=0).gap_steps() == 4  # ints need no clock
    for bad, why in [({"purge": -1}, ">= 0"), ({"embargo": "3 fortnights"}, "cannot parse duration"),
                     ({"purge": "-2d"}, "non-negative"), ({"purge": True}, "decision steps"),
                     ({"embargo": 1.5}, "decision steps")]:
        with pytest.raises(ValueError, match=why):
            SplitConfig(**bad)


def test_test_start_fixes_where_out_of_sample_begins():
    from training.splits import row_of_time

    T = 400
    clock = _clock(T, DAY)
    usable = _usable(T, 20)  # usable rows 20 .. 398
    cfg = SplitConfig(n_folds=3, purge="2d", embargo=1, val_share=0.2, train_min=0.9)
    folds = walk_forward_folds(usable, cfg, clock=clock, test_start="2024-07-01")
    a = row_of_time(clock, "2024-07-01")
    assert a == 182 and clock[a] == T0 + 182 * DAY  # 2024 is a leap year: Jan..Jun = 182 days
    assert [f.test for f in folds] == [(182, 254), (254, 326), (326, 399)]  # [test_start, end) in 3 blocks
    for f in folds:
        assert f.train[1] + 3 == f.test[0] and f.fit[1] + 3 == f.val[0]  # purge 2 rows + embargo 1
        assert f.fit[0] == 20  # expanding; train_min is not used
    assert folds[0].val == (179 - int(0.2 * 159), 179)
    sliding = walk_forward_folds(usable, cfg.model_copy(update={"scheme": "sliding"}), clock=clock,
                                 test_start=int(clock[a]))
    assert [f.test for f in sliding] == [f.test for f in folds]
    assert {f.train[1] - f.train[0] for f in sliding} == {159}
    assert sliding[2].fit[0] == 323 - 159


def test_test_start_errors_name_the_problem():
    T = 200
    clock = _clock(T, DAY)
    usable = _usable(T, 10)
    cfg = SplitConfig(n_folds=4, purge=5)
    with pytest.raises(ConfigError, match="needs the decision clock"):
        walk_forward_folds(usable, cfg, test_start="2024-03-01")
    with pytest.raises(ConfigError, match=r"after the last usable row \(usable rows 2024-01-11T00:00:00Z"):
        walk_forward_folds(usable, cfg, clock=clock, test_start="2030-01-01")
    with pytest.raises(ConfigError, match="no training rows before it"):
        walk_forward_folds(usable, cfg, clock=clock, test_start="2024-01-13")
    with pytest.raises(ConfigError, match="3 test rows cannot hold 4 test blocks"):
        walk_forward_folds(usable, cfg, clock=clock, test_start=int(clock[196]))
    with pytest.raises(ConfigError, match="fold 0 training part"):
        walk_forward_folds(usable, cfg, clock=clock, test_start="2024-01-20", min_fit=50)


def test_training_test_start_is_validated_in_the_config():
    from dea.config.learning import TrainingConfig

    assert TrainingConfig(test_start="2024-01-01").test_start == "2024-01-01"
    assert TrainingConfig(test_start=yaml.safe_load("2024-01-01")).test_start == "2024-01-01"  # unquoted in YAML
    assert TrainingConfig().test_start is None
    with pytest.raises(ValueError, match="test_start must be an ISO date"):
        TrainingConfig(test_start="next tuesday")


def test_final_fold_resolves_duration_gaps():
    from training.splits import final_fold

    usable = _usable(300, 10)
    got = final_fold(usable, SplitConfig(purge="3d", embargo="12h"), clock=_clock(300, DAY))
    assert got == final_fold(usable, SplitConfig(purge=3, embargo=1))
