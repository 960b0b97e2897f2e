"""Contract arithmetic as the exchanges compute it: PnL, fees, funding, margin and liquidation
price of linear and inverse contracts, in the settlement currency. Plain Python on floats.

Why one module: the backtest ledger (:mod:`dea.backtest.ledger`), the paper venue and the risk
checks must agree on what an inverse contract earns and when an account is liquidated; each
formula is written here once.

Conventions. A **linear** position is ``q`` base units (signed); it settles in the quote currency:
PnL ``q * (P1 - P0)``, fee ``rate * |q| * P``, funding ``q * P_mark * rate``, maintenance margin
``mm * |q| * P``. An **inverse** (coin-margined) position is ``n`` contracts of ``C`` quote units
each, i.e. a signed quote notional ``N = n * C`` that does not move with the price; it settles in
the base coin: PnL ``N * (1/P0 - 1/P1)``, fee ``rate * |N| / P``, funding ``N / P_mark * rate``,
maintenance margin ``mm * |N| / P`` (Binance COIN-M, Deribit, BitMEX XBTUSD all work so).

Valued in the quote currency at the exit price, an inverse position's PnL is
``P1 * N * (1/P0 - 1/P1) = N * (P1/P0 - 1)``: that of a linear position of ``N / P0`` coins. What
differs is where it sits: in the coin, so a coin-margined account's equity in USD moves with the
coin even with no position open.
"""

from __future__ import annotations

import math

from dea.errors import RiskError


def pnl(inverse: bool, size: float, entry: float, exit_: float) -> float:
    """PnL in the settlement currency of ``size`` (base units if linear, quote notional if
    inverse) opened at ``entry`` and marked or closed at ``exit_``."""
    _check_price(entry)
    _check_price(exit_)
    if inverse:
        return size * (1.0 / entry - 1.0 / exit_)
    return size * (exit_ - entry)


def notional_settle(inverse: bool, size: float, price: float) -> float:
    """|Notional| in the settlement currency: ``|q| * P`` (linear) or ``|N| / P`` (inverse)."""
    _check_price(price)
    return abs(size) / price if inverse else abs(size) * price


def fee(inverse: bool, size: float, price: float, rate: float) -> float:
    """Trading fee in the settlement currency on a fill of ``size`` at ``price``."""
    return rate * notional_settle(inverse, size, price)


def funding(inverse: bool, size: float, mark: float, rate: float) -> float:
    """Funding paid (positive) or received (negative) at one settlement, in the settlement
    currency: longs pay a positive rate."""
    _check_price(mark)
    return rate * (size / mark if inverse else size * mark)


def maintenance_margin(inverse: bool, size: float, price: float, mm: float) -> float:
    """Maintenance margin in the settlement currency."""
    return mm * notional_settle(inverse, size, price)


def liquidation_price(inverse: bool, size: float, entry: float, collateral: float, mm: float) -> float:
    """Price at which a single position with ``collateral`` (settlement currency, the isolated
    margin or a one-position cross wallet) reaches its maintenance margin.

    linear: ``M + q (P - E) = mm |q| P``  ->  ``P = (q E - M) / (q - mm |q|)``;
    inverse: ``M + N (1/E - 1/P) = mm |N| / P``  ->  ``P = (N + mm |N|) / (M + N / E)``.
    Returns 0.0 when the position cannot be liquidated by a falling price (a long covered by its
    collateral) and +inf when no rising price liquidates it; NaN for no position.
    """
    _check_price(entry)
    if size == 0.0:
        return math.nan
    if inverse:
        den = collateral + size / entry
        num = size + mm * abs(size)
        p = num / den if den != 0.0 else math.inf
        return p if p > 0.0 else (0.0 if size > 0 else math.inf)
    den = size - mm * abs(size)
    p = (size * entry - collateral) / den
    if size > 0:
        return max(p, 0.0)
    return p if p > 0.0 else math.inf


def contract_notional_after(n0, q0, q1, price):  # noqa: ANN001, ANN201 - plain scalars, numba compiles it
    """Open contract notional ``N`` of an inverse position after its linear equivalent (the
    backtest's and the venue's unit, ``N / P_entry`` coins) moved from ``q0`` to ``q1`` at
    ``price``, as the exchange books it: opening or adding buys ``(q1 - q0) * price`` of
    contracts; reducing closes contracts pro rata, at the position's entry price ``n0 / q0``
    (which a reduction does not change); flat holds none; a reversal closes all and opens
    ``q1 * price``. Written once for the vectorised kernel (JIT-compiled there) and the paper
    venue's statement."""
    if q1 == 0.0:
        return 0.0
    if q0 == 0.0 or (q0 > 0.0) != (q1 > 0.0):
        return q1 * price
    if abs(q1) >= abs(q0):
        return n0 + (q1 - q0) * price
    return n0 * (q1 / q0)


def collateral_value(amount: float, fx: float, haircut: float = 0.0) -> float:
    """Collateral ``amount`` converted to the reporting currency at ``fx`` (reporting units per
    collateral unit), less the ``haircut`` share; a negative balance (a debt) is not haircut."""
    if not (fx > 0.0) or not math.isfinite(fx):
        raise RiskError(f"collateral conversion rate is {fx}; must be a positive finite price")
    value = amount * fx
    return value * (1.0 - haircut) if value > 0.0 else value


def _check_price(p: float) -> None:
    if not (p > 0.0) or not math.isfinite(p):
        raise RiskError(f"price {p} is not a positive finite number")
