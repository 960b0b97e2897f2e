"""Calibration statistics on cases whose answer is known (simulated GARCH, hand-computed tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dea.calibration import (
    Garch11,
    christoffersen_independence,
    ewma_variance,
    fit_garch11,
    kupiec_pof,
    normal_var_es,
    var_coverage,
    vol_reliability,
)
from dea.errors import DataError


def _simulate_garch(params: Garch11, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r, v = np.empty(n), np.empty(n)
    v[0] = params.long_run_variance
    for t in range(n):
        if t:
            v[t] = params.omega + params.alpha * r[t - 1] ** 2 + params.beta * v[t - 1]
        r[t] = math.sqrt(v[t]) * rng.standard_normal()
    return r, v


TRUE = Garch11(omega=2e-6, alpha=0.08, beta=0.9)


def test_ewma_matches_the_recursion() -> None:
    r = np.random.default_rng(0).normal(0, 0.01, 500)
    v = ewma_variance(r, halflife=10, init=1e-4)
    lam = 0.5 ** 0.1
    ref = [1e-4]
    for t in range(1, r.size):
        ref.append(lam * ref[-1] + (1 - lam) * r[t - 1] ** 2)
    np.testing.assert_allclose(v, ref, rtol=1e-12)


def test_garch_fit_recovers_simulated_parameters() -> None:
    r, _ = _simulate_garch(TRUE, 8000, seed=1)
    fit = fit_garch11(r)
    assert fit.alpha == pytest.approx(TRUE.alpha, abs=0.03)
    assert fit.beta == pytest.approx(TRUE.beta, abs=0.04)
    np.testing.assert_allclose(TRUE.variance(r, init=TRUE.long_run_variance)[1:], _simulate_garch(TRUE, 8000, 1)[1][1:], rtol=1e-9)


def test_true_variance_is_reliable_and_a_halved_one_is_not() -> None:
    r, v = _simulate_garch(TRUE, 6000, seed=2)
    good = vol_reliability(v, r)
    assert good.slope == pytest.approx(1.0, abs=0.25) and good.ratio == pytest.approx(1.0, abs=0.06)
    bad = vol_reliability(v / 4, r)  # vol halved
    assert bad.ratio == pytest.approx(2.0, abs=0.15)
    assert bad.qlike > good.qlike
    # binned table: realised rises with forecast when the forecast is informative
    assert np.corrcoef(good.bins_forecast, good.bins_realised)[0, 1] > 0.9


def test_kupiec_by_hand_and_against_coverage() -> None:
    # no exceedances in 250 days at 1 %: LR = -2 * 250 * ln(0.99)
    lr, p = kupiec_pof(0, 250, 0.01)
    assert lr == pytest.approx(-2 * 250 * math.log(0.99))
    assert p == pytest.approx(math.erfc(math.sqrt(lr / 2)))  # chi2(1) survival function
    assert kupiec_pof(25, 2500, 0.01)[1] == pytest.approx(1.0)
    with pytest.raises(DataError):
        kupiec_pof(3, 2, 0.01)


def test_var_coverage_accepts_honest_and_rejects_understated_var() -> None:
    r, v = _simulate_garch(TRUE, 6000, seed=3)
    var, es = normal_var_es(np.sqrt(v), 0.99)
    honest = var_coverage(r, var, es, 0.99)
    assert not honest.rejected and honest.es_ratio == pytest.approx(1.0, abs=0.2)
    low = var_coverage(r, var * 0.6, es * 0.6, 0.99)
    assert low.rejected and low.exceedances > 2 * honest.exceedances


def test_christoffersen_flags_clustered_hits() -> None:
    scattered = np.zeros(1000, dtype=bool)
    scattered[::100] = True
    clustered = np.zeros(1000, dtype=bool)
    clustered[500:510] = True
    assert christoffersen_independence(scattered)[1] > 0.05
    assert christoffersen_independence(clustered)[1] < 0.01


def test_nan_returns_are_refused() -> None:
    with pytest.raises(DataError, match="index 2"):
        ewma_variance(np.array([0.01, 0.02, np.nan, 0.01]), 5)
