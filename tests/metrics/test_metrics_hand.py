"""Metrics on returns small enough to check by hand, and the deflated Sharpe ratio against the
worked example of Bailey & López de Prado (2014)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dea.metrics import compute_metrics, deflated_sharpe_ratio, expected_max_sharpe, probabilistic_sharpe_ratio

R = np.array([0.10, -0.05, 0.02, -0.10, 0.05])


def test_return_metrics_by_hand():
    m = compute_metrics(R, periods_per_year=4)
    wealth = [1.1, 1.045, 1.0659, 0.95931, 1.0072755]
    assert m["total_return"] == pytest.approx(wealth[-1] - 1)
    assert m["annual_return"] == pytest.approx(wealth[-1] ** (4 / 5) - 1)
    mean, sd = 0.004, math.sqrt(sum((r - 0.004) ** 2 for r in R) / 4)
    assert m["annual_vol"] == pytest.approx(sd * 2)
    assert m["sharpe"] == pytest.approx(mean / sd * 2)
    assert m["sortino"] == pytest.approx(mean / math.sqrt((0.05**2 + 0.10**2) / 5) * 2)
    # peak 1.1 -> trough 0.95931: 12.79%, and still under water at the end: 4 steps
    assert m["max_drawdown"] == pytest.approx(1 - 0.95931 / 1.1)
    assert m["max_drawdown_duration"] == 4
    assert m["calmar"] == pytest.approx(m["annual_return"] / m["max_drawdown"])
    assert m["hit_rate"] == pytest.approx(3 / 5)
    assert m["var_95"] == pytest.approx(0.09)  # 5% quantile, linear interpolation: -0.10 + 0.2 * 0.05
    assert m["es_95"] == pytest.approx(0.10)  # the one return at or below the 5% quantile
    assert m["n_periods"] == 5


def test_drawdown_duration_counts_until_recovery():
    m = compute_metrics(np.array([0.1, -0.1, -0.1, 0.5, -0.01]), periods_per_year=12)
    # under water for steps 2, 3 (recovered at 4), then again at 5
    assert m["max_drawdown_duration"] == 2
    assert m["max_drawdown_duration_days"] == pytest.approx(2 * 365.25 / 12)


def test_degenerate_series_give_nan_not_zero():
    m = compute_metrics(np.zeros(10), periods_per_year=365)
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"]) and math.isnan(m["hit_rate"])
    assert m["max_drawdown"] == 0.0 and math.isnan(m["calmar"])
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics(np.array([0.1, np.nan]), periods_per_year=365)
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_metrics(R)


def test_deflated_sharpe_ratio_paper_example():
    # Bailey & Lopez de Prado (2014), section 4: annualised SR 2.5 over 5 years of daily data,
    # 100 trials with annualised SR variance 0.5, skew -3, kurtosis 10 -> SR0 = 0.1132, DSR = 0.9004
    dsr, sr0 = deflated_sharpe_ratio(2.5 / math.sqrt(250), n_trials=100, trials_sharpe_variance=0.5 / 250,
                                     n_obs=1250, skew=-3.0, kurtosis=10.0, return_threshold=True)
    assert sr0 == pytest.approx(0.1132, abs=5e-4)
    assert dsr == pytest.approx(0.9004, abs=5e-4)
    assert expected_max_sharpe(1, 1.0) == 0.0
    # more trials -> higher bar -> lower DSR
    assert deflated_sharpe_ratio(0.1, n_trials=1000, trials_sharpe_variance=0.002, n_obs=1250) < \
        deflated_sharpe_ratio(0.1, n_trials=10, trials_sharpe_variance=0.002, n_obs=1250)
    # PSR against zero of a Gaussian series with SR 0.1 over 101 points: Phi(0.1 * 10 / sqrt(1 + 0.01/2))
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(0.8407, abs=1e-4)


def test_compute_metrics_adds_dsr_when_trials_are_given():
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, 2000)
    m = compute_metrics(r, periods_per_year=365, n_trials=50, trials_sharpe_variance=0.5)
    assert 0.0 <= m["deflated_sharpe"] <= 1.0
    assert m["sharpe_threshold"] > 0
    sr = r.mean() / r.std(ddof=1)
    expected = deflated_sharpe_ratio(sr, n_trials=50, trials_sharpe_variance=0.5 / 365, n_obs=2000,
                                     skew=m["skew"], kurtosis=m["kurtosis"])
    assert m["deflated_sharpe"] == pytest.approx(expected)


def test_deflated_sharpe_without_the_trials_variance_uses_an_unskilled_trials():
    from dea.metrics import null_trials_sharpe_variance

    assert null_trials_sharpe_variance(101) == pytest.approx(0.01)
    r = np.random.default_rng(1).normal(0.001, 0.01, 500)
    m = compute_metrics(r, periods_per_year=365, n_trials=20)
    sr = m["sharpe"] / math.sqrt(365)
    expected, sr0 = deflated_sharpe_ratio(sr, n_trials=20, trials_sharpe_variance=1 / 499, n_obs=500,
                                          skew=m["skew"], kurtosis=m["kurtosis"], return_threshold=True)
    assert m["deflated_sharpe"] == pytest.approx(expected)
    assert m["sharpe_threshold"] == pytest.approx(sr0 * math.sqrt(365))
    # the same as passing that variance annualised
    same = compute_metrics(r, periods_per_year=365, n_trials=20, trials_sharpe_variance=365 / 499)
    assert same["deflated_sharpe"] == pytest.approx(m["deflated_sharpe"])
    single = compute_metrics(r, periods_per_year=365, n_trials=1)
    assert single["sharpe_threshold"] == 0.0 and single["deflated_sharpe"] > m["deflated_sharpe"]
