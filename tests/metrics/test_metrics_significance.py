"""Sharpe-ratio difference tests on cases with a known answer: identical series, a constant
drift added to a series, and iid normal pairs whose standard error has a closed form (Memmel 2003:
Var(SR1 - SR2) = [2(1 - rho) + (SR1^2 + SR2^2 - 2 SR1 SR2 rho^2) / 2] / T, per period)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dea.errors import DataError
from dea.metrics.significance import (
    hac_covariance,
    ledoit_wolf_se,
    mean_block_length,
    sharpe_difference,
    sharpe_differences,
)

METHODS = ["bootstrap", "ledoit_wolf"]


def _returns(n: int = 1500, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0008, 0.01, n)
    return a, 0.5 * a + rng.normal(0.0, 0.01, n)


def _memmel_se(sr1: float, sr2: float, rho: float, T: int) -> float:
    return math.sqrt((2 * (1 - rho) + 0.5 * (sr1**2 + sr2**2 - 2 * sr1 * sr2 * rho**2)) / T)


@pytest.mark.parametrize("method", METHODS)
def test_identical_series_differ_by_exactly_zero(method):
    a, _ = _returns()
    d = sharpe_difference(a, a.copy(), 365, method=method, n_boot=200)
    assert d.diff == 0.0
    assert d.lo <= 0.0 <= d.hi
    assert d.p_value == 1.0
    assert d.verdict == "not distinguishable"
    assert d.sharpe_a == d.sharpe_b == pytest.approx(a.mean() / a.std(ddof=1) * math.sqrt(365))


@pytest.mark.parametrize("method", METHODS)
def test_constant_positive_drift_is_significantly_better(method):
    a, _ = _returns()
    d = sharpe_difference(a + 0.001, a, 365, method=method, n_boot=300)
    expected = ((a.mean() + 0.001) - a.mean()) / a.std(ddof=1) * math.sqrt(365)  # same std: only the mean moves
    assert d.diff == pytest.approx(expected)
    assert d.lo > 0 and d.p_value < 0.01 and d.verdict == "better"
    reverse = sharpe_difference(a, a + 0.001, 365, method=method, n_boot=300)
    assert reverse.diff == pytest.approx(-d.diff)
    assert reverse.hi < 0 and reverse.verdict == "worse"


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_ledoit_wolf_se_matches_the_iid_normal_closed_form(rho):
    rng = np.random.default_rng(11)
    T, m1, m2 = 20_000, 0.05, 0.02
    z = rng.standard_normal((T, 2))
    a = m1 + z[:, 0]
    b = m2 + rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1]
    closed = _memmel_se(m1, m2, rho, T)
    assert ledoit_wolf_se(a, b, hac=False) == pytest.approx(closed, rel=0.04)
    assert ledoit_wolf_se(a, b) == pytest.approx(closed, rel=0.06)  # HAC adds only noise lags on iid data
    d = sharpe_difference(a, b, 252, method="ledoit_wolf")
    z975 = 1.959963984540054
    assert d.se == pytest.approx(ledoit_wolf_se(a, b) * math.sqrt(252))
    assert d.hi - d.diff == pytest.approx(z975 * d.se) and d.diff - d.lo == pytest.approx(z975 * d.se)
    assert d.p_value == pytest.approx(math.erfc(abs(d.diff) / d.se / math.sqrt(2)))


def test_hac_covariance_is_ledoit_wolfs_parzen_sum():
    """Psi-hat written out term by term as in Ledoit & Wolf's code, on a small AR(1) sample."""
    rng = np.random.default_rng(5)
    T = 60
    e = rng.standard_normal((T, 2))
    v = np.zeros_like(e)
    for t in range(1, T):
        v[t] = 0.7 * v[t - 1] + e[t]
    v -= v.mean(0)
    num = den = 0.0
    for j in range(2):
        x = v[:, j] - v[:, j].mean()
        rho = float(x[:-1] @ x[1:] / (x[:-1] @ x[:-1]))
        s2 = float(np.mean((x[1:] - rho * x[:-1]) ** 2))
        num += 4 * rho**2 * s2**2 / (1 - rho) ** 8
        den += s2**2 / (1 - rho) ** 4
    s_star = 2.6614 * (num / den * T) ** 0.2
    psi = sum(np.outer(v[i], v[i]) for i in range(T)) / T
    j = 1
    while j < s_star:
        g = sum(np.outer(v[i], v[i - j]) for i in range(j, T)) / T
        x = j / s_star
        k = 1 - 6 * x**2 + 6 * x**3 if x <= 0.5 else 2 * (1 - x) ** 3
        psi = psi + k * (g + g.T)
        j += 1
    assert s_star > 2  # the AR(1) dependence makes the kernel reach several lags
    np.testing.assert_allclose(hac_covariance(v), psi * T / (T - 4), rtol=1e-12)


def test_serial_dependence_widens_both_intervals():
    rng = np.random.default_rng(2)
    T = 3000
    e = rng.standard_normal((T, 2)) * 0.01
    x = np.zeros_like(e)
    for t in range(1, T):
        x[t] = 0.6 * x[t - 1] + e[t]
    a, b = x[:, 0] + 0.0005, x[:, 1]
    assert ledoit_wolf_se(a, b) > 1.5 * ledoit_wolf_se(a, b, hac=False)
    assert mean_block_length(a, b) > 3  # Politis-White sees the dependence
    assert mean_block_length(*_returns()) < 3  # ...and not where there is none


def test_bootstrap_is_deterministic_given_the_seed_and_agrees_with_ledoit_wolf():
    a, b = _returns(2000)
    one = sharpe_difference(a, b, 365, n_boot=1000, seed=7)
    assert one == sharpe_difference(a, b, 365, n_boot=1000, seed=7)
    other = sharpe_difference(a, b, 365, n_boot=1000, seed=8)
    assert other.diff == one.diff and (other.lo, other.hi) != (one.lo, one.hi)
    lw = sharpe_difference(a, b, 365, method="ledoit_wolf")
    assert one.se == pytest.approx(lw.se, rel=0.15)
    assert one.lo == pytest.approx(lw.lo, abs=0.3 * lw.se) and one.hi == pytest.approx(lw.hi, abs=0.3 * lw.se)
    assert one.block_length >= 1 and one.n_boot == 1000 and one.n == 2000


def test_against_every_baseline_and_flat_series_are_undefined():
    a, b = _returns(400)
    flat = np.zeros_like(a)
    table = sharpe_differences(a, {"buy_and_hold": b, "cash": flat, "drifted": a - 0.002}, 365,
                               method="ledoit_wolf")
    assert list(table) == ["buy_and_hold", "cash", "drifted"]
    assert table["buy_and_hold"] == sharpe_difference(a, b, 365, method="ledoit_wolf")
    assert table["drifted"].verdict == "better"
    cash = table["cash"]
    assert math.isnan(cash.diff) and math.isnan(cash.sharpe_b) and cash.verdict == "undefined"
    assert sharpe_difference(a, flat, 365).verdict == "undefined"
    row = table["drifted"].to_dict("vs_drifted")
    assert set(row) == {"vs_drifted", "vs_drifted_lo", "vs_drifted_hi", "vs_drifted_p", "vs_drifted_se"}
    assert "better" in table["drifted"].describe() and table["drifted"].as_record()["verdict"] == "better"


def test_bad_input_is_refused_with_the_reason():
    a, b = _returns(100)
    bad = a.copy()
    bad[42] = np.nan
    with pytest.raises(DataError, match="row 42"):
        sharpe_difference(bad, b, 365)
    with pytest.raises(DataError, match="shapes"):
        sharpe_difference(a, b[:-1], 365)
    with pytest.raises(DataError, match="at least"):
        sharpe_difference(a[:5], b[:5], 365)
    with pytest.raises(ValueError, match="method"):
        sharpe_difference(a, b, 365, method="t-test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        sharpe_difference(a, b, 365, alpha=1.5)
