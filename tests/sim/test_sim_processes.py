"""The simulator's building blocks against hand-checkable references."""

from __future__ import annotations

import numpy as np

from dea.sim.processes import (
    ar1_filter,
    ar1_unit,
    bridge_extremes,
    component_rng,
    compound_poisson,
    halflife_phi,
    markov_regimes,
    stationary_shares,
)


def _naive_ar1(shocks: np.ndarray, phi: float, x0: np.ndarray) -> np.ndarray:
    out = np.empty_like(shocks)
    prev = x0
    for t in range(shocks.shape[0]):
        prev = phi * prev + shocks[t]
        out[t] = prev
    return out


def test_ar1_filter_matches_the_recursion_across_block_boundaries() -> None:
    rng = np.random.default_rng(0)
    shocks = rng.standard_normal((200, 3))  # 200 = 3 blocks of 64 + a partial one
    x0 = np.array([1.0, -2.0, 0.5])
    for phi in (0.0, 0.5, 0.97, 1.0):
        np.testing.assert_allclose(ar1_filter(shocks, phi, x0), _naive_ar1(shocks, phi, x0), atol=1e-10)


def test_ar1_filter_hand_case() -> None:
    # x = 0.5 * x_prev + s with x_prev = 2: 0.5*2+1 = 2, 0.5*2+0 = 1, 0.5*1+0 = 0.5
    np.testing.assert_allclose(ar1_filter(np.array([1.0, 0.0, 0.0]), 0.5, 2.0), [2.0, 1.0, 0.5])


def test_ar1_unit_is_stationary_with_the_requested_autocorrelation() -> None:
    phi = halflife_phi(10, 1)  # half-life 10 steps
    assert np.isclose(phi**10, 0.5)
    x = ar1_unit(component_rng(1, "t"), (50_000, 2), phi)
    assert abs(x.std() - 1.0) < 0.05
    lag1 = np.corrcoef(x[1:, 0], x[:-1, 0])[0, 1]
    assert abs(lag1 - phi) < 0.02


def test_markov_regimes_time_shares_and_sojourns() -> None:
    exit_prob = np.array([0.01, 0.04])  # mean sojourns 100 and 25 steps -> shares 0.8 / 0.2
    assert np.allclose(stationary_shares(exit_prob), [0.8, 0.2])
    reg = markov_regimes(component_rng(3, "regimes"), 200_000, exit_prob)
    assert reg.dtype == np.int8 and set(np.unique(reg)) == {0, 1}
    assert abs((reg == 0).mean() - 0.8) < 0.04
    switches = np.flatnonzero(np.diff(reg) != 0)
    runs = np.diff(switches)
    first_regime_runs = runs[reg[switches[1:]] == 0]
    assert abs(first_regime_runs.mean() - 100) < 10


def test_component_streams_are_independent_and_reproducible() -> None:
    a1 = component_rng(5, "alpha").standard_normal(4)
    a2 = component_rng(5, "alpha").standard_normal(4)
    b = component_rng(5, "book").standard_normal(4)
    c = component_rng(6, "alpha").standard_normal(4)
    assert np.array_equal(a1, a2)
    assert not np.array_equal(a1, b) and not np.array_equal(a1, c)


def test_compound_poisson_moments() -> None:
    lam = np.full(400_000, 0.1)
    total, counts = compound_poisson(component_rng(0, "j"), lam, mean=-0.02, std=0.05)
    assert np.all(total[counts == 0] == 0)
    assert abs(counts.mean() - 0.1) < 0.003
    assert abs(total.mean() - 0.1 * -0.02) < 3e-4  # lam * mean
    assert abs(total.var() - 0.1 * (0.02**2 + 0.05**2)) < 2e-5  # lam * E[J^2]


def test_bridge_extremes_bracket_open_and_close() -> None:
    rng = component_rng(0, "b")
    move = rng.normal(0, 0.01, 10_000)
    sigma = np.full_like(move, 0.01)
    hi, lo = bridge_extremes(rng, move, sigma)
    assert np.all(hi >= np.maximum(0.0, move)) and np.all(lo <= np.minimum(0.0, move))
    # b ~ N(0, sigma^2) makes the bridge an unconditioned Brownian bar: E[max] = -E[min] =
    # sigma * sqrt(2 / pi), so the mean range is 2 * sigma * sqrt(2 / pi) = 0.01596 here
    assert abs((hi - lo).mean() - 2 * 0.01 * np.sqrt(2 / np.pi)) < 3e-4
