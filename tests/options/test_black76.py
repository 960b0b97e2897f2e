"""Black-76 prices and greeks: closed forms, finite differences, parity, the normal CDF."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from dea.options import OptionError, greeks, implied_vol, price
from dea.options.normal import norm_cdf

RNG = np.random.default_rng(7)
N = 400
F = RNG.uniform(1_000, 60_000, N)
K = F * np.exp(RNG.uniform(-0.8, 0.8, N))
T = RNG.uniform(2 / 365, 1.5, N)
SIG = RNG.uniform(0.2, 2.0, N)
CALL = RNG.random(N) < 0.5
R = RNG.choice([0.0, 0.03], N)


def test_norm_cdf_matches_scipy_to_double_precision() -> None:
    x = np.linspace(-38.0, 38.0, 100_001)
    assert np.max(np.abs(norm_cdf(x) - ndtr(x))) < 1e-15
    left = x[(x > -30) & (x < 0)]
    assert np.max(np.abs(norm_cdf(left) / ndtr(left) - 1)) < 1e-7
    assert np.isnan(norm_cdf(np.array([np.nan]))[0])


def test_atm_price_closed_form() -> None:
    # At F == K, r == 0: C = P = F * (2 N(sigma sqrt(T) / 2) - 1), with N written via math.erf.
    f, t, s = 40_000.0, 30 / 365, 0.7
    expected = f * (2 * (0.5 * (1 + math.erf(s * math.sqrt(t) / 2 / math.sqrt(2)))) - 1)
    assert price(f, f, t, s, True) == pytest.approx(expected, rel=1e-12)
    assert price(f, f, t, s, False) == pytest.approx(expected, rel=1e-12)


def test_put_call_parity() -> None:
    c = price(F, K, T, SIG, True, R)
    p = price(F, K, T, SIG, False, R)
    np.testing.assert_allclose(c - p, np.exp(-R * T) * (F - K), rtol=0, atol=1e-9 * F.max())


def test_greeks_match_finite_differences() -> None:
    g = greeks(F, K, T, SIG, CALL, R)
    h = 1e-4 * F
    p = lambda f=F, t=T, s=SIG: price(f, K, t, s, CALL, R)  # noqa: E731
    np.testing.assert_allclose(g.delta, (p(F + h) - p(F - h)) / (2 * h), atol=1e-7)
    d = lambda f: greeks(f, K, T, SIG, CALL, R).delta  # noqa: E731
    np.testing.assert_allclose(g.gamma, (d(F + h) - d(F - h)) / (2 * h), rtol=1e-5, atol=1e-12)
    ds = 1e-5
    np.testing.assert_allclose(g.vega, (p(s=SIG + ds) - p(s=SIG - ds)) / (2 * ds) / 100, rtol=1e-6, atol=1e-9 * F.max())
    dt = 1e-6
    # theta is per calendar day: d price / d(-T) divided by 365
    np.testing.assert_allclose(g.theta, -(p(t=T + dt) - p(t=T - dt)) / (2 * dt) / 365, rtol=1e-5, atol=1e-9 * F.max())


def test_expired_option_is_intrinsic_with_no_time_greeks() -> None:
    g = greeks([100.0, 100.0], [90.0, 110.0], 0.0, 0.5, [True, True])
    np.testing.assert_array_equal(g.price, [10.0, 0.0])
    np.testing.assert_array_equal(g.delta, [1.0, 0.0])
    assert not g.gamma.any() and not g.vega.any() and not g.theta.any()


def test_bad_inputs_are_refused_naming_the_element() -> None:
    with pytest.raises(OptionError, match="strike must be finite and > 0; element 1"):
        price([100.0, 100.0], [90.0, -1.0], 0.1, 0.5, True)
    with pytest.raises(OptionError, match="sigma"):
        price(100.0, 90.0, 0.1, np.nan, True)


def test_implied_vol_round_trip_across_the_chain() -> None:
    # Where the option's time value is below ~1e-9 of the forward, an in-the-money price cannot
    # carry it (float cancellation), so the round trip is checked where there is time value.
    p = price(F, K, T, SIG, CALL, R)
    otm = price(F, K, T, SIG, F < K, R)
    ok = otm > 1e-6 * F
    assert ok.sum() > 300
    iv = implied_vol(p[ok], F[ok], K[ok], T[ok], CALL[ok], R[ok])
    np.testing.assert_allclose(iv, SIG[ok], rtol=1e-6)
    out_of_money = implied_vol(otm[ok], F[ok], K[ok], T[ok], (F < K)[ok], R[ok])
    np.testing.assert_allclose(out_of_money, SIG[ok], rtol=1e-9)


def test_implied_vol_refuses_prices_outside_no_arbitrage() -> None:
    with pytest.raises(OptionError, match="element 0.*no-arbitrage"):
        implied_vol(5.0, 100.0, 90.0, 0.1, True)  # below intrinsic 10
    out = implied_vol([5.0, 120.0, price(100.0, 90.0, 0.1, 0.6, True)], 100.0, 90.0, 0.1, True, on_invalid="nan")
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == pytest.approx(0.6, rel=1e-8)


def test_coin_delta_is_the_coin_value_sensitivity() -> None:
    from dea.options import coin_delta

    g = greeks(F, K, T, SIG, CALL, R)
    h = 1e-4 * F
    coin = lambda f: price(f, K, T, SIG, CALL, R) / f  # noqa: E731 - the premium in coin
    np.testing.assert_allclose(coin_delta(g, F), F * (coin(F + h) - coin(F - h)) / (2 * h), atol=1e-7)
