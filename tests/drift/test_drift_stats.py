"""PSI / KS statistics: hand-checkable cases and agreement with scipy's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dea.drift import build_reference, ks_2samp_statistic, ks_pvalue, ks_statistic, psi_from_shares
from dea.drift.stats import bin_counts
from dea.errors import DataError


def test_psi_by_hand() -> None:
    e = np.array([0.5, 0.5])
    a = np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi_from_shares(e, a) == pytest.approx(expected)
    assert psi_from_shares(e, e) == 0.0


def test_bin_counts_keeps_nan_in_its_own_bin() -> None:
    counts = bin_counts(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan, np.nan]), np.array([0.0, 1.0]))
    # bins: (-inf,0) [0,1) [1,inf) NaN
    assert counts.tolist() == [1, 2, 2, 2]


def test_two_sample_ks_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=700)
    b = rng.normal(0.3, 1.2, size=400)
    assert ks_2samp_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_one_sample_ks_against_quantile_reference_matches_scipy() -> None:
    """With a fine quantile grid the piecewise-linear reference CDF is the true CDF to ~1e-3."""
    rng = np.random.default_rng(2)
    sample = rng.normal(0.2, 1.0, size=3000)
    q_probs = np.linspace(0, 1, 2001)
    q_values = stats.norm.ppf(np.clip(q_probs, 1e-9, 1 - 1e-9))
    exact = stats.kstest(sample, "norm").statistic
    assert ks_statistic(sample, q_values, q_probs) == pytest.approx(exact, abs=2e-3)


def test_ks_handles_point_masses() -> None:
    """A 0/1 indicator: reference 20 % ones; current 60 % ones -> distance 0.4.

    The reference CDF is known only at the stored quantile grid, so the distance is exact to one
    grid step (1/100 with the default 101 quantiles), never smeared over the whole jump.
    """
    ref = build_reference(np.r_[np.zeros(80), np.ones(20)][:, None], ["ind"])
    step = 1 / (ref.q_probs.size - 1)
    cur = np.r_[np.zeros(40), np.ones(60)]
    f = ref.features[0]
    assert ks_statistic(cur, f.quantiles, ref.q_probs) == pytest.approx(0.4, abs=step + 1e-12)
    assert ks_statistic(np.r_[np.zeros(80), np.ones(20)], f.quantiles, ref.q_probs) <= step + 1e-12


def test_ks_pvalue_matches_scipy_asymptotic() -> None:
    for d, n in [(0.05, 500), (0.1, 200), (0.02, 5000)]:
        assert ks_pvalue(d, n) == pytest.approx(stats.kstwobign.sf(d * (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n))), rel=1e-6)


def test_empty_window_is_an_error() -> None:
    with pytest.raises(DataError, match="at least one finite value"):
        ks_statistic(np.array([np.nan]), np.array([0.0, 1.0]), np.array([0.0, 1.0]))
