"""The oracle exposure: what it holds, that it earns with the signal and nothing without."""

from __future__ import annotations

import numpy as np

from dea.sim.config import SimConfig
from dea.sim.market import SimMarket, simulate
from dea.sim.moments import regime_moments
from dea.sim.oracle import annualised_sharpe, exposure_on_clock, oracle_sharpe, strategy_returns
from dea.timeutil import NS_PER_HOUR


def _sharpe_se(market: SimMarket) -> float:
    """Standard error of an annualised Sharpe ratio near 0 over the market's span."""
    return float(np.sqrt(market.config.periods_per_year / market.n_steps))


def test_oracle_earns_a_clearly_positive_sharpe_with_the_signal(signal_market: SimMarket) -> None:
    se = _sharpe_se(signal_market)
    gross = oracle_sharpe(signal_market, funding=False)
    net = oracle_sharpe(signal_market, funding=True, fee=0.0005)
    assert gross > 8 * se and net > 5 * se, (gross, net, se)
    assert net < gross  # funding and fees cost something
    # out of sample halves agree: the oracle has no look-ahead to lose
    half = signal_market.n_steps // 2
    first, second = oracle_sharpe(signal_market, stop=half), oracle_sharpe(signal_market, start=half)
    assert first > 5 * se and second > 5 * se


def test_no_signal_control_gives_the_oracle_nothing_to_hold(control_market: SimMarket) -> None:
    assert np.all(control_market.oracle_exposure == 0)
    assert np.all(control_market.expected_return == 0)
    # following the (now useless) alpha earns ~0; the same rule is strongly profitable with signal
    follow = np.clip(control_market.alpha, -1, 1) * 0.25
    sr = annualised_sharpe(
        strategy_returns(follow, control_market.returns), control_market.config.periods_per_year
    )
    assert abs(sr) < 4 * _sharpe_se(control_market), sr


def test_signal_following_strategy_earns_with_the_signal(signal_market: SimMarket) -> None:
    follow = np.clip(signal_market.alpha, -1, 1) * 0.25
    sr = annualised_sharpe(strategy_returns(follow, signal_market.returns), signal_market.config.periods_per_year)
    assert sr > 5 * _sharpe_se(signal_market)


def test_oracle_is_mean_variance_under_the_caps(signal_market: SimMarket) -> None:
    m = signal_market
    caps = m.config.oracle
    w = m.oracle_exposure
    assert np.all(np.abs(w) <= caps.max_exposure + 1e-12)
    assert np.all(np.abs(w).sum(1) <= caps.max_gross + 1e-9)
    mom = regime_moments(m.config)
    # away from the caps, w is proportional to Sigma^-1 mu with one constant for all rows
    free = (np.abs(w).max(1) < 0.9 * caps.max_exposure) & (np.abs(w).sum(1) < 0.99 * caps.max_gross)
    rows = np.flatnonzero(free)[:200]
    direction = np.stack([np.linalg.solve(mom.cov[m.regimes[t]], m.expected_return[t]) for t in rows])
    c = w[rows] / direction
    assert np.allclose(c, c.flat[0], rtol=1e-8)
    # the constant targets the configured ex-ante volatility (0.3 a year); caps only trim it
    exante = np.sqrt(np.einsum("ti,tij,tj->t", w, mom.cov[m.regimes], w).mean() * m.config.periods_per_year)
    assert 0.2 < exante <= 0.3 * 1.05


def test_strategy_returns_hand_case() -> None:
    w = np.array([[1.0, 0.0], [0.5, 0.0]])
    r = np.array([[0.01, 0.02], [-0.02, 0.0]])
    funding = np.array([[0.001, 0.0], [0.0, 0.0]])
    net = strategy_returns(w, r, funding, fee=0.001)
    # bar 0: 1 * (0.01 - 0.001) - 0.001 * |1 - 0|;  bar 1: 0.5 * -0.02 - 0.001 * |0.5 - 1|
    np.testing.assert_allclose(net, [0.008, -0.0105])
    assert annualised_sharpe(np.zeros(10), 365) == 0.0


def test_exposure_on_clock_is_as_of_and_never_invents_values() -> None:
    m = simulate(SimConfig(seed=0, n_assets=2, n_steps=10, signal_strength=0.3))
    assert m.exogenous["onchain_flow"].values.shape == (0, 2)  # no whole day simulated: nothing published
    t0 = int(m.clock[0])
    times = np.array([t0 - 1, t0, t0 + NS_PER_HOUR // 2, t0 + 9 * NS_PER_HOUR, t0 + 10 * NS_PER_HOUR])
    got = exposure_on_clock(m, times)
    assert np.isnan(got[0]).all() and np.isnan(got[4]).all()  # before the first bar, after the last
    np.testing.assert_array_equal(got[1], m.oracle_exposure[0])
    np.testing.assert_array_equal(got[2], m.oracle_exposure[0])  # mid-bar: the bar's open decision
    np.testing.assert_array_equal(got[3], m.oracle_exposure[9])
