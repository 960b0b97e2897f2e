"""Implied volatility from a Black-76 price, vectorised (safeguarded Newton, bisection fallback).

Why not a library: ``py_lets_be_rational`` / ``vollib`` (Jäckel's algorithm) are scalar pure
Python (one interpreted call per option: milliseconds for a chain, and no arrays), and the
vectorised wrapper ``py_vollib_vectorized`` is unmaintained since 2021 and pulls in pandas and
numba, which serving may not import. This solver is numpy only, works on whole chains at once,
and is checked by round trips in the tests.

Method: the price is converted to the out-of-the-money option of the same strike (put-call
parity), whose time value is well conditioned; each element then runs Newton steps on the log
of the price in sigma, started at the inflection point ``sqrt(2|ln F/K| / T)`` and kept inside a
bracket that every evaluation narrows; a step leaving the bracket is replaced by bisection, so
every element converges. Converged elements drop out of the iteration.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dea.options.black76 import OptionError, greeks, price_and_vega

SIGMA_LOW = 1e-4
SIGMA_HIGH = 20.0


def implied_vol(
    option_price,  # noqa: ANN001 - array-likes
    forward,  # noqa: ANN001
    strike,  # noqa: ANN001
    t_years,  # noqa: ANN001
    is_call,  # noqa: ANN001
    rate=0.0,  # noqa: ANN001
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    on_invalid: Literal["raise", "nan"] = "raise",
) -> np.ndarray:
    """Volatility (fraction) whose Black-76 price equals ``option_price`` (quote currency per unit).

    A price outside the no-arbitrage range (below the discounted intrinsic value or at/above the
    discounted forward or strike), or an expired option, has no implied volatility: it raises
    naming the first such element, or gives NaN there with ``on_invalid="nan"``.
    """
    p, f, k, t, c, r = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (option_price, forward, strike, t_years)),
        np.asarray(is_call, dtype=bool),
        np.asarray(rate, dtype=np.float64),
    )
    p, f, k, t, c, r = (np.array(a, copy=True).ravel() for a in (p, f, k, t, c, r))
    disc = np.exp(-r * np.maximum(t, 0.0))
    # Out-of-the-money equivalent: an in-the-money call is a put plus the discounted (F - K).
    otm_call = f < k
    parity = disc * (f - k)
    p_otm = np.where(c == otm_call, p, np.where(c, p - parity, p + parity))
    upper = disc * np.where(otm_call, f, k)
    bad = ~np.isfinite(p) | ~np.isfinite(f) | ~np.isfinite(k) | ~np.isfinite(t) | (t <= 0) | (f <= 0) | (k <= 0)
    # At (or, by float cancellation, just below) the intrinsic value there is no time value left
    # to invert: refused rather than answered with 0.
    bad |= (p_otm <= 0) | (p_otm >= upper)
    if bad.any() and on_invalid == "raise":
        i = int(np.argmax(bad))
        raise OptionError(
            f"no implied volatility for element {i}: price {p[i]!r} with forward {f[i]!r}, strike {k[i]!r}, "
            f"T {t[i]!r} years is outside the no-arbitrage range (above intrinsic, below {'forward' if c[i] else 'strike'})"
        )
    work = ~bad
    sigma = np.full(p.shape, np.nan)
    idx = np.nonzero(work)[0]
    if idx.size:
        sigma[idx] = _solve(p_otm[idx], f[idx], k[idx], t[idx], otm_call[idx], r[idx], tol, max_iter)
    return sigma.reshape(np.broadcast_shapes(*(np.shape(a) for a in (option_price, forward, strike, t_years, is_call, rate))))


def _solve(target, f, k, t, is_call, r, tol, max_iter):  # noqa: ANN001, ANN202 - internal
    lo = np.full(target.shape, SIGMA_LOW)
    hi = np.full(target.shape, SIGMA_HIGH)
    x = np.clip(np.sqrt(2.0 * np.abs(np.log(f / k)) / t), 0.05, SIGMA_HIGH / 2)
    scale = np.maximum(np.maximum(target, 1e-300), 1e-12 * f)
    act = np.arange(target.size)  # elements still iterating: converged ones drop out
    for _ in range(max_iter):
        px, vega = price_and_vega(f[act], k[act], t[act], x[act], is_call[act], r[act])
        err = px - target[act]
        done = (np.abs(err) <= tol * scale[act]) | (hi[act] - lo[act] <= 1e-15 * hi[act])
        keep = ~done
        act, err, vega = act[keep], err[keep], vega[keep]
        if not act.size:
            break
        xa = x[act]
        hi[act] = np.where(err > 0, np.minimum(hi[act], xa), hi[act])
        lo[act] = np.where(err < 0, np.maximum(lo[act], xa), lo[act])
        with np.errstate(divide="ignore", invalid="ignore"):
            # Newton on log(price) (Jäckel's observation): far out of the money the price is
            # exponentially small in 1/sigma and plain Newton crawls; in logs it converges fast.
            step = xa - np.log1p(err / target[act]) * (target[act] + err) / vega
        inside = np.isfinite(step) & (step > lo[act]) & (step < hi[act])
        x[act] = np.where(inside, step, 0.5 * (lo[act] + hi[act]))
    err = np.abs(greeks(f, k, t, x, is_call, r).price - target)
    failed = err > 1e-6 * scale
    if failed.any():
        i = int(np.argmax(failed))
        raise OptionError(f"implied volatility did not converge for element {i} (price {target[i]!r}, forward {f[i]!r}, strike {k[i]!r})")
    return x
