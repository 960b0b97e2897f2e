"""The ``hrp_weight`` feature and its numpy HRP (:mod:`dea.allocation.hrp`), the input of
``model.base.kind: hrp``.

Hand-checkable 2- and 3-instrument cases, scipy's leaf order, skfolio's
``HierarchicalRiskParity`` with the same settings on real returns, batch == streaming (also for a
stream started later, once it has refitted on the epoch grid), and no look-ahead.
Real data: Binance BTC/ETH/LTC 5-minute bars and Coin Metrics daily prices (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from features_realdata import assert_parity, replay

from dea.allocation.hrp import hrp_weights, recursive_bisection, single_linkage_order
from dea.data.panel import Panel
from dea.features import FeatureSet
from dea.features.config import FeaturesConfig


def _returns_with_covariance(cov: np.ndarray, rows: int = 50, seed: int = 0) -> np.ndarray:
    """Returns whose sample covariance (ddof 1) is exactly ``cov`` (up to rounding)."""
    z = np.random.default_rng(seed).standard_normal((rows, cov.shape[0]))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / (rows - 1))).T  # whitened: sample cov = I
    return z @ np.linalg.cholesky(cov).T


def _fs(item: dict, panel: Panel) -> FeatureSet:
    return FeatureSet.from_config(FeaturesConfig.model_validate({"set": [item]}), panel.instruments)


def test_two_instruments_get_inverse_variance_weights() -> None:
    x = _returns_with_covariance(np.array([[1.0, 0.3], [0.3, 4.0]]))
    np.testing.assert_allclose(hrp_weights(x), [0.8, 0.2], atol=1e-12)  # 1/1 : 1/4


def test_three_instruments_by_hand() -> None:
    """A and B are correlated (0.8), C is not: single linkage joins A, B first, so the order is
    [C, A, B]; C against the inverse-variance portfolio of {A, B} (variance
    0.8² + 0.2²·4 + 2·0.8·0.2·1.6 = 1.312), then A against B (1/1 : 1/4)."""
    cov = np.array([[1.0, 1.6, 0.0], [1.6, 4.0, 0.0], [0.0, 0.0, 1.0]])
    sd = np.sqrt(np.diag(cov))
    dist = np.sqrt(0.5 * (1 - cov / np.outer(sd, sd)))
    assert single_linkage_order(dist) == [2, 0, 1]
    right = 1.0 / 2.312
    expected = [0.8 * right, 0.2 * right, 1.312 / 2.312]
    np.testing.assert_allclose(recursive_bisection(cov, [2, 0, 1]), expected, atol=1e-12)
    np.testing.assert_allclose(hrp_weights(_returns_with_covariance(cov)), expected, atol=1e-10)


def test_single_linkage_order_equals_scipys_leaf_order() -> None:
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 8, 13, 20):
        pts = rng.normal(size=(n, 4))
        d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        assert single_linkage_order(d) == list(leaves_list(linkage(squareform(d, checks=False), "single")))


def test_instruments_without_a_complete_window_take_no_part() -> None:
    x = _returns_with_covariance(np.diag([1.0, 4.0, 2.0]))
    x[10, 1] = np.nan
    w = hrp_weights(x)
    assert np.isnan(w[1]) and np.isclose(np.nansum(w), 1.0)
    np.testing.assert_allclose(w[[0, 2]], [2 / 3, 1 / 3], atol=1e-12)
    x[:, 2] = 0.0  # a constant price: no risk estimate
    np.testing.assert_array_equal(hrp_weights(x), [1.0, np.nan, np.nan])
    assert np.isnan(hrp_weights(x[:1])).all()


def _skfolio_hrp(window: np.ndarray) -> np.ndarray:
    from skfolio import RiskMeasure
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.seriation import HierarchicalSeriation

    model = HierarchicalRiskParity(
        risk_measure=RiskMeasure.VARIANCE,
        seriation_estimator=HierarchicalSeriation(
            hierarchical_clustering_estimator=HierarchicalClustering(linkage_method=LinkageMethod.SINGLE),
            optimal_ordering=False,
        ),
    )
    model.fit(window)
    return np.asarray(model.weights_)


def test_the_feature_equals_skfolio_hrp_on_real_returns(daily_panel: Panel) -> None:
    fs = _fs({"name": "hrp_weight", "params": {"window": 90, "refit": "7d"}}, daily_panel)
    assert fs.names == ("hrp_weight_90_7d@BTC", "hrp_weight_90_7d@ETH", "hrp_weight_90_7d@LTC")
    values = fs.batch(daily_panel).values
    lc = np.log(daily_panel.fields["close"])
    r = np.diff(lc, axis=0, prepend=np.nan)
    checked = 0
    for i in range(90, len(daily_panel), 37):
        window = r[i - 89 : i + 1]
        if not np.isfinite(window).all():
            continue
        # the value at row i is the fit at the latest refit row <= i
        j = i
        while j > 90 and np.array_equal(values[j - 1], values[i]):
            j -= 1
        np.testing.assert_allclose(values[i], _skfolio_hrp(r[j - 89 : j + 1]), rtol=1e-9, atol=1e-12)
        checked += 1
    assert checked >= 15
    w = values[90:]
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert (w.std(axis=0) > 0.01).all()  # the weights move with the market


def test_batch_equals_streaming_and_a_late_stream_joins_on_the_refit_grid(perps_panel: Panel) -> None:
    """5-minute bars, 1-day window, refit every hour (a refit every 12 rows, held in between)."""
    fs = _fs({"name": "hrp_weight", "params": {"window": 288, "refit": "1h"}}, perps_panel)
    batch = fs.batch(perps_panel).values
    stream = replay(fs.streaming(step_ns=perps_panel.step_ns), perps_panel)
    assert_parity(batch, stream, fs.names)
    valid = batch[288:]
    assert np.isfinite(valid).mean() > 0.95
    changes = (np.abs(np.diff(valid, axis=0)) > 0).any(axis=1)
    assert 0 < changes.sum() <= len(valid) // 12 + 1  # held between hourly refits
    # a stream started at row 1000 (serving restarted): own warm-up, then first fit, then the grid
    start = 1000
    cut = lambda m: {k: v[start:] for k, v in m.items()}  # noqa: E731
    late_panel = Panel(clock=perps_panel.clock[start:], step_ns=perps_panel.step_ns,
                       instruments=perps_panel.instruments, fields=cut(perps_panel.fields),
                       series=cut(perps_panel.series), age=cut(perps_panel.age), fingerprint="late")
    late = replay(fs.streaming(step_ns=perps_panel.step_ns), late_panel)
    hour = 3600 * 10**9
    first_fit = start + 288
    buckets = perps_panel.clock // hour
    joined = int(np.flatnonzero(buckets > buckets[first_fit])[0])  # the next epoch-grid refit
    assert not np.allclose(late[first_fit - start], batch[first_fit])  # its first fit is its own
    ok = np.isfinite(batch[joined:]).all(axis=1)
    np.testing.assert_allclose(late[joined - start:][ok], batch[joined:][ok], rtol=1e-9)


def test_no_look_ahead_on_a_truncated_panel(daily_panel: Panel) -> None:
    fs = _fs({"name": "hrp_weight", "params": {"window": 60, "refit": "3d"}}, daily_panel)
    full = fs.batch(daily_panel).values
    for k in (200, 451):
        part = fs.batch(daily_panel.head(k)).values
        np.testing.assert_array_equal(part, full[:k])


def test_bad_params_are_refused() -> None:
    from dea.errors import FeatureError
    from dea.features import registry

    with pytest.raises(FeatureError, match="refit"):
        registry.get("hrp_weight").from_item({"refit": "-1d"}, ["BTC", "ETH"])
    with pytest.raises(FeatureError, match="window"):
        registry.get("hrp_weight").from_item({"window": 2}, ["BTC", "ETH"])
