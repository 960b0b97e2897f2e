"""Walk-forward folds: purge/embargo gaps, no overlap, expanding vs sliding, windows, scaling."""

from __future__ import annotations

import numpy as np
import pytest

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
