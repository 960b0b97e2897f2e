"""The ``hold_weight`` feature, the input of ``model.base.kind: buy_and_hold``: an equal-value
portfolio bought at an anchor and drifted with prices, re-anchored on the UTC ``rebalance`` grid.

Hand-checkable paths; batch == streaming and no look-ahead are checked for every registered
feature in ``test_features_registry_properties.py``; here also a stream started late."""

from __future__ import annotations

import numpy as np

from dea.features.cross_asset import _HoldAnchor

DAY = 86_400 * 10**9


def test_weights_drift_with_prices_and_reanchor_on_the_grid() -> None:
    a = _HoldAnchor(2 * DAY, 2)  # re-bought every 2 days on the epoch grid: days 0-1, 2-3, ...
    # day 0: bought 50/50 at (100, 10); day 1: A +10 %, B -50 %: values 55 and 25 of 80
    np.testing.assert_allclose(a.weights(0, np.array([100.0, 10.0])), [0.5, 0.5])
    np.testing.assert_allclose(a.weights(DAY, np.array([110.0, 5.0])), [55 / 80, 25 / 80])
    # day 2: a new period: re-bought equal value at today's prices
    np.testing.assert_allclose(a.weights(2 * DAY, np.array([120.0, 6.0])), [0.5, 0.5])
    # day 3: B's bar is missing: it counts at its last good price (the holding is still there)
    np.testing.assert_allclose(a.weights(3 * DAY, np.array([240.0, np.nan])), [2 / 3, 1 / 3])


def test_an_instrument_without_a_price_at_the_anchor_is_held_from_the_next_one() -> None:
    a = _HoldAnchor(2 * DAY, 2)
    np.testing.assert_array_equal(a.weights(0, np.array([100.0, np.nan])), [1.0, np.nan])
    np.testing.assert_array_equal(a.weights(DAY, np.array([50.0, 7.0])), [1.0, np.nan])  # B lists, not held yet
    np.testing.assert_allclose(a.weights(2 * DAY, np.array([50.0, 7.0])), [0.5, 0.5])
    assert np.isnan(_HoldAnchor(DAY, 2).weights(0, np.array([np.nan, -1.0]))).all()  # nothing priced: unknown


def test_a_stream_started_late_matches_from_its_first_anchor() -> None:
    rng = np.random.default_rng(0)
    px = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (40, 3)), axis=0))
    t = np.arange(40) * DAY
    full, late = _HoldAnchor(7 * DAY, 3), _HoldAnchor(7 * DAY, 3)
    a = [full.weights(int(ti), p) for ti, p in zip(t, px)]
    b = [late.weights(int(ti), p) for ti, p in zip(t[10:], px[10:])]  # starts on day 10 (period 1)
    first_anchor = 14  # day 14 opens period 2: from there both hold the same portfolio
    np.testing.assert_allclose(np.array(a[first_anchor:]), np.array(b[first_anchor - 10:]), rtol=1e-12)
    assert not np.allclose(a[12], b[2])  # before it, the late stream's own anchor differs
    np.testing.assert_allclose(np.sum(a, axis=1), 1.0)
