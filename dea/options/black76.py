"""Black-76 prices and greeks on a forward, vectorised over whole chains.

Why Black-76: a crypto option is priced off the future (or the exchange's synthetic forward,
Deribit's ``underlying_price``) that expires with it, so the forward ``F`` replaces spot and
carry; with the venue's interest rate (0 on Deribit) the discount factor is ``exp(-r T)``.

Units (the same as Deribit's published greeks, so they compare one to one):
- prices are in the quote currency (USD) per one unit of underlying;
- ``delta``: d price / d F (per coin), ``gamma``: d delta / d F (per coin per USD);
- ``vega``: price change for a 1 volatility point move (sigma + 0.01);
- ``theta``: price change for one calendar day passing (365-day year), negative for a long option.
``T`` is in years of 365 days; ``sigma`` is a fraction (0.8 = 80%). At or after expiry
(``T <= 0``) the price is the intrinsic value and gamma, vega and theta are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dea.errors import DeaError
from dea.options.normal import norm_cdf, norm_pdf

DAYS_PER_YEAR = 365.0
SECONDS_PER_YEAR = DAYS_PER_YEAR * 86400.0


class OptionError(DeaError):
    """Option inputs that cannot be priced or inverted (negative strike, price below intrinsic...)."""


@dataclass(frozen=True)
class Greeks:
    """Price and greeks per unit of underlying, arrays of one broadcast shape (units: module doc)."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray


def _check(forward: np.ndarray, strike: np.ndarray, sigma: np.ndarray) -> None:
    for name, v, allow_zero in (("forward", forward, False), ("strike", strike, False), ("sigma", sigma, True)):
        bad = ~np.isfinite(v) | ((v < 0) if allow_zero else (v <= 0))
        if bad.any():
            i = int(np.argmax(bad.ravel()))
            raise OptionError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}; element {i} is {v.ravel()[i]!r}")


def _inputs(forward, strike, t_years, sigma, is_call, rate):  # noqa: ANN001, ANN202 - internal broadcast helper
    f, k, t, s, c, r = np.broadcast_arrays(
        np.asarray(forward, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(t_years, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
        np.asarray(is_call, dtype=bool),
        np.asarray(rate, dtype=np.float64),
    )
    _check(f, k, s)
    if np.isnan(t).any():
        raise OptionError(f"time to expiry is NaN at element {int(np.argmax(np.isnan(t).ravel()))}")
    return f, k, t, s, c, r


def price(forward, strike, t_years, sigma, is_call, rate=0.0) -> np.ndarray:  # noqa: ANN001 - array-likes
    """Black-76 price in the quote currency per unit of underlying."""
    return greeks(forward, strike, t_years, sigma, is_call, rate).price


def greeks(forward, strike, t_years, sigma, is_call, rate=0.0) -> Greeks:  # noqa: ANN001 - array-likes
    """Price, delta, gamma, vega (per vol point) and theta (per day), elementwise."""
    f, k, t, s, c, r = _inputs(forward, strike, t_years, sigma, is_call, rate)
    live = (t > 0) & (s > 0)
    tt = np.where(live, t, 1.0)
    ss = np.where(live, s, 1.0)
    sqrt_t = np.sqrt(tt)
    sd = ss * sqrt_t
    d1 = (np.log(f / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    disc = np.exp(-r * np.maximum(t, 0.0))
    sign = np.where(c, 1.0, -1.0)
    nd1 = norm_cdf(sign * d1)
    nd2 = norm_cdf(sign * d2)
    pdf = norm_pdf(d1)
    px_live = disc * sign * (f * nd1 - k * nd2)
    delta_live = disc * sign * nd1
    gamma_live = disc * pdf / (f * sd)
    vega_live = disc * f * pdf * sqrt_t
    theta_live = r * px_live - disc * f * pdf * ss / (2.0 * sqrt_t)
    intrinsic = disc * np.maximum(sign * (f - k), 0.0)
    delta_dead = disc * np.where(sign * (f - k) > 0, sign, 0.0)
    zero = np.zeros_like(f)
    return Greeks(
        price=np.where(live, px_live, intrinsic),
        delta=np.where(live, delta_live, delta_dead),
        gamma=np.where(live, gamma_live, zero),
        vega=np.where(live, vega_live / 100.0, zero),
        theta=np.where(live, theta_live / DAYS_PER_YEAR, zero),
    )


def year_fraction(ts_ns, expiry_ns) -> np.ndarray:  # noqa: ANN001 - array-likes
    """Years of 365 days from ``ts_ns`` to ``expiry_ns`` (int64 ns UTC); negative after expiry."""
    return (np.asarray(expiry_ns, dtype=np.int64) - np.asarray(ts_ns, dtype=np.int64)) / 1e9 / SECONDS_PER_YEAR


def coin_delta(g: Greeks, forward) -> np.ndarray:  # noqa: ANN001 - array-likes
    """Delta of an inverse (coin-settled) option's value *in the coin*, per coin: ``Δ - V/F``.

    Why: a Deribit BTC option's premium is BTC, so a coin-margined account's BTC equity moves by
    ``d(V/F)/dF = (Δ - V/F) / F`` per USD move; scaled by ``F`` that is the coin delta Deribit's
    portfolio view shows. A USD-reporting account uses ``Δ`` itself.
    """
    return g.delta - g.price / np.asarray(forward, dtype=np.float64)


def price_and_vega(f: np.ndarray, k: np.ndarray, t: np.ndarray, s: np.ndarray, is_call: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Price and vega per unit of sigma for live options (``t > 0``, ``s > 0``), inputs already
    checked and broadcast: the inner loop of the implied-volatility solver, without the greeks
    it does not need."""
    sqrt_t = np.sqrt(t)
    sd = s * sqrt_t
    d1 = (np.log(f / k) + 0.5 * sd * sd) / sd
    disc = np.exp(-r * t)
    sign = np.where(is_call, 1.0, -1.0)
    px = disc * sign * (f * norm_cdf(sign * d1) - k * norm_cdf(sign * (d1 - sd)))
    return px, disc * f * norm_pdf(d1) * sqrt_t
