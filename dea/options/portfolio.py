"""Portfolio greeks per underlying, as fractions of account equity.

Why fractions of equity: DEA's exposure ``w`` is signed notional / equity (DESIGN.md), so an
option position's delta, expressed the same way, simply adds to the linear exposure of its
underlying (a long put of delta -0.4 on 1 BTC at 50,000 USD in a 100,000 USD account is
exposure -0.2 on BTC). The other greeks follow the same scaling, so budgets read the same at any
account size:

- ``delta``: USD delta / equity (an exposure);
- ``gamma``: change of that exposure for a 1% move of the underlying (Γ·S²/100 / equity);
- ``vega``: USD value change for +1 volatility point / equity;
- ``theta``: USD value change over one day / equity.

Quantities are in contracts; each contract is ``multiplier`` units of the underlying. The
aggregation is one ``bincount`` per greek over an integer code per underlying (microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dea.options.black76 import Greeks, OptionError


@dataclass(frozen=True)
class GreekExposure:
    """Greeks of positions on one underlying, as fractions of equity (units: module doc)."""

    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0

    def __add__(self, other: "GreekExposure") -> "GreekExposure":
        return GreekExposure(self.delta + other.delta, self.gamma + other.gamma, self.vega + other.vega, self.theta + other.theta)

    def scaled(self, k: float) -> "GreekExposure":
        return GreekExposure(self.delta * k, self.gamma * k, self.vega * k, self.theta * k)


@dataclass(frozen=True)
class PortfolioGreeks:
    """Arrays indexed by underlying code (``underlyings[i]`` names code ``i``)."""

    underlyings: tuple[str, ...]
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray

    def of(self, underlying: str) -> GreekExposure:
        if underlying not in self.underlyings:
            return GreekExposure()
        i = self.underlyings.index(underlying)
        return GreekExposure(float(self.delta[i]), float(self.gamma[i]), float(self.vega[i]), float(self.theta[i]))


def position_greeks(g: Greeks, quantity, multiplier, underlying_price, equity: float) -> GreekExposure:  # noqa: ANN001
    """Greeks of ``quantity`` contracts of one option (``g`` per unit of underlying) as fractions of equity."""
    if not equity > 0:
        raise OptionError(f"equity must be positive to express greeks as fractions of it, got {equity!r}")
    units = float(quantity) * float(multiplier)
    s = float(underlying_price)
    return GreekExposure(
        delta=float(g.delta) * units * s / equity,
        gamma=float(g.gamma) * units * s * s / 100.0 / equity,
        vega=float(g.vega) * units / equity,
        theta=float(g.theta) * units / equity,
    )


def aggregate(
    g: Greeks,
    quantity: np.ndarray,
    multiplier: np.ndarray,
    underlying_price: np.ndarray,
    codes: np.ndarray,
    underlyings: tuple[str, ...],
    equity: float,
    linear_exposure: np.ndarray | None = None,
) -> PortfolioGreeks:
    """Sum option positions' greeks per underlying; ``linear_exposure[i]`` (perpetual, future or
    spot exposure of underlying ``i``) is added to its delta, so the result is the whole book's
    exposure to each underlying."""
    if not equity > 0:
        raise OptionError(f"equity must be positive to express greeks as fractions of it, got {equity!r}")
    n = len(underlyings)
    units = np.asarray(quantity, dtype=np.float64) * np.asarray(multiplier, dtype=np.float64)
    s = np.asarray(underlying_price, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.intp)
    if codes.size and (codes.min() < 0 or codes.max() >= n):
        raise OptionError(f"underlying codes must lie in 0..{n - 1}")
    for name, v in (("quantity", units), ("underlying_price", s), ("delta", g.delta), ("gamma", g.gamma), ("vega", g.vega), ("theta", g.theta)):
        if not np.isfinite(v).all():
            raise OptionError(f"{name} is not finite at position {int(np.argmax(~np.isfinite(v)))}; a missing value cannot count as 0")
    us = units * s
    delta = np.bincount(codes, weights=g.delta * us, minlength=n) / equity
    if linear_exposure is not None:
        lin = np.asarray(linear_exposure, dtype=np.float64)
        if lin.shape != (n,) or not np.isfinite(lin).all():
            raise OptionError(f"linear_exposure must be {n} finite values, one per underlying")
        delta = delta + lin
    return PortfolioGreeks(
        underlyings=tuple(underlyings),
        delta=delta,
        gamma=np.bincount(codes, weights=g.gamma * us * s / 100.0, minlength=n) / equity,
        vega=np.bincount(codes, weights=g.vega * units, minlength=n) / equity,
        theta=np.bincount(codes, weights=g.theta * units, minlength=n) / equity,
    )
