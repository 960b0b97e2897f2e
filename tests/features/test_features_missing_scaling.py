"""Missing-data policy (mask / fill + indicator / error) and the robust scaler (train rows only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dea.data.panel import Panel
from dea.errors import FeatureError
from dea.features import FeatureMatrix, FeatureSet, fit_scaler, prepare_inputs, prepare_row
from dea.features.config import FeaturesConfig, MissingPolicy
from dea.features.scaling import IQR_TO_SIGMA, Scaler

NAN = np.nan


def _matrix() -> FeatureMatrix:
    values = np.array([[NAN, 1.0], [2.0, NAN], [3.0, 5.0], [4.0, 6.0]])
    return FeatureMatrix(
        clock=np.arange(4, dtype=np.int64), names=("a", "b"), values=values, valid=np.isfinite(values),
        fingerprint="x", warmups=(1, 0),
    )


def test_mask_policy_excludes_rows_and_keeps_nan_loud() -> None:
    X, rows, names = prepare_inputs(_matrix(), MissingPolicy(policy="mask"))
    assert names == ("a", "b") and X.dtype == np.float32
    np.testing.assert_array_equal(rows, [False, False, True, True])
    assert np.isnan(X[1, 1])  # never silently zero


def test_fill_policy_adds_indicators_and_drops_warmup_rows() -> None:
    X, rows, names = prepare_inputs(_matrix(), MissingPolicy(policy="fill", fill_value=-9.0, indicator=True))
    assert names == ("a", "b", "a__missing", "b__missing")
    np.testing.assert_array_equal(rows, [False, True, True, True])  # row 0 is inside a's warm-up
    np.testing.assert_array_equal(X[1], [2.0, -9.0, 0.0, 1.0])
    assert np.isfinite(X).all()
    X2, _, names2 = prepare_inputs(_matrix(), MissingPolicy(policy="fill", indicator=False))
    assert names2 == ("a", "b") and X2.shape == (4, 2)


def test_error_policy_names_feature_and_time() -> None:
    with pytest.raises(FeatureError, match=r"'b' is missing on 1 rows .*row 1"):
        prepare_inputs(_matrix(), MissingPolicy(policy="error"))
    ok = _matrix()
    ok.values[1, 1] = 7.0
    ok.valid[1, 1] = True
    X, rows, _ = prepare_inputs(ok, MissingPolicy(policy="error"))
    np.testing.assert_array_equal(rows, [False, True, True, True])


@pytest.mark.parametrize("policy", ["mask", "fill", "error"])
def test_prepare_row_matches_prepare_inputs(policy: str) -> None:
    m = _matrix()
    m.values[1, 1] = 7.0 if policy == "error" else NAN
    m.valid[:] = np.isfinite(m.values)
    pol = MissingPolicy(policy=policy)
    X, rows, names = prepare_inputs(m, pol)
    for i in range(1, 4):
        x, ok = prepare_row(m.values[i], pol, warm=i >= m.warmup, names=m.names)
        np.testing.assert_array_equal(x, X[i])
        assert ok == rows[i]


def test_real_matrix_under_each_policy(daily_cfg, daily_panel: Panel) -> None:
    fs = FeatureSet.from_config(daily_cfg.features, daily_panel.instruments)
    m = fs.batch(daily_panel)
    X, rows, _ = prepare_inputs(m, MissingPolicy(policy="mask"))
    assert not np.isnan(X[rows]).any() and rows.sum() > 0.5 * len(rows) and not rows[: fs.warmup].any()
    X, rows, names = prepare_inputs(m, MissingPolicy(policy="fill"))
    assert len(names) == 2 * len(m.names) and np.isfinite(X[rows]).all()


def test_scaler_is_fitted_on_training_rows_only_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, (1000, 3))
    X[:, 1] = 10.0 + 4.0 * X[:, 1]
    train = np.arange(1000) < 600
    s = fit_scaler(X, train, names=["a", "b", "b__missing"])
    # hand check: median and IQR of the training rows only
    q25, med, q75 = np.percentile(X[:600, 1], [25, 50, 75])
    assert s.center[1] == pytest.approx(med) and s.scale[1] == pytest.approx((q75 - q25) / IQR_TO_SIGMA)
    assert s.center[2] == 0.0 and s.scale[2] == 1.0  # indicator columns pass through
    # changing the non-training rows changes nothing
    X2 = X.copy()
    X2[600:] = 1e6
    s2 = fit_scaler(X2, np.nonzero(train)[0], names=["a", "b", "b__missing"])
    np.testing.assert_array_equal(s2.center, s.center)
    np.testing.assert_array_equal(s2.scale, s.scale)
    # JSON round trip, clip, NaN preserved
    back = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    Z = back.transform(np.array([[NAN, 1e9, 1.0]]))
    assert np.isnan(Z[0, 0]) and Z[0, 1] == pytest.approx(5.0) and Z[0, 2] == 1.0 and Z.dtype == np.float32


def test_scaler_edge_cases() -> None:
    X = np.column_stack([np.ones(10), np.arange(10.0)])
    s = fit_scaler(X, np.ones(10, bool))
    assert s.scale[0] == 1.0  # constant column: unit scale, not a division by zero
    with pytest.raises(FeatureError, match="no training rows"):
        fit_scaler(X, np.zeros(10, bool))
    with pytest.raises(FeatureError, match="no finite value"):
        fit_scaler(np.full((5, 1), NAN), np.ones(5, bool))
    with pytest.raises(FeatureError, match="scales"):
        Scaler.from_dict({"names": ["a"], "center": [0.0], "scale": [0.0]})
    with pytest.raises(FeatureError, match="2 features"):
        s.transform(np.ones((1, 3)))
