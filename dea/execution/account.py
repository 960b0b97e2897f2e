"""Account accounting shared by the event-driven backtest and the live paper exchange.

One margin account in the quote currency: ``equity = cash + sum(q_i * price_i)`` (for linear
perpetuals and futures the "cash" is collateral plus realised PnL; for spot it is cash; the
formula is the same). Fills move cash by ``-q * price - costs``; funding at a settlement moves it
by ``-q * price * rate`` (longs pay a positive rate); a position is marked at the last known
price of its instrument. Costs are also accumulated per instrument for reports.

An inverse (coin-margined) contract is held in its linear equivalent ``q = N / P_entry`` coins
(:mod:`dea.risk.margin`), which values it correctly in the quote currency; the account also keeps
its open contract notional ``N`` as the exchange books it
(:func:`dea.risk.margin.contract_notional_after`, the vectorised kernel's rule) and charges its
funding on ``N``: ``rate * N / P_mark`` coins, worth ``rate * N`` here (not ``rate * q * P``).

Liquidation: when equity falls to the maintenance margin ``sum(|q_i| price_i mm_i)`` every
position is closed at the current price paying the taker fee, spread and impact; if equity is
then not positive the account is bankrupt (equity floored at zero, as a venue's insurance fund
absorbs the rest) and trading stops. Numpy + stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.errors import RiskError
from dea.execution.fills import Fill
from dea.risk.margin import contract_notional_after


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """Something that happened to the account rather than to one order (liquidation, bankruptcy)."""

    ts: int
    kind: str
    equity: float
    detail: str


class Account:
    """Cash, positions (base units) and last prices of ``n`` instruments; ``inverse`` flags the
    inverse contracts (``[i.inverse for i in instruments]``; none by default)."""

    def __init__(self, n: int, initial_equity: float, inverse: Sequence[bool] | None = None) -> None:
        self.n = n
        self.cash = float(initial_equity)
        if inverse is not None and len(inverse) != n:
            raise RiskError(f"inverse flags for {len(inverse)} instruments; the account holds {n}")
        self.inverse = [False] * n if inverse is None else [bool(x) for x in inverse]
        #: open contract notional ``N`` (quote units) of each inverse position; 0 when flat
        self.contract_n = [0.0] * n
        self.qty = [0.0] * n
        self.price = [math.nan] * n
        self.bankrupt = False
        self.fees = [0.0] * n
        self.spread = [0.0] * n
        self.impact = [0.0] * n
        self.funding = [0.0] * n
        self.traded = [0.0] * n
        self.trade_cash = [0.0] * n  # -sum(q * price) over fills: price PnL = trade_cash + q * price

    # -- valuation ---------------------------------------------------------------------------------
    def mark(self, index: int, price: float) -> None:
        if price > 0.0:
            self.price[index] = price

    def mark_all(self, prices: Sequence[float]) -> None:
        for i in range(self.n):
            p = prices[i]
            if p > 0.0:
                self.price[i] = p

    def equity(self) -> float:
        """cash + sum_i q_i p_i (the sum first, in instrument order: the vectorised kernel adds in
        exactly this order, so both engines agree to the last bit)."""
        held = 0.0
        for i in range(self.n):
            q = self.qty[i]
            if q != 0.0:
                held += q * self.price[i]
        return self.cash + held

    def exposure(self, pending: Sequence[float] | None = None, equity: float | None = None) -> np.ndarray:
        """Exposure of positions (plus ``pending`` quantities) as a fraction of equity."""
        e = self.equity() if equity is None else equity
        out = np.zeros(self.n)
        if e > 0.0:
            inv = 1.0 / e
            for i in range(self.n):
                q = self.qty[i] + (pending[i] if pending is not None else 0.0)
                if q != 0.0:
                    out[i] = q * self.price[i] * inv
        return out

    def maintenance_margin(self, mm: Sequence[float]) -> float:
        m = 0.0
        for i in range(self.n):
            q = self.qty[i]
            if q != 0.0:
                m += abs(q * self.price[i]) * mm[i]
        return m

    def margin_state(self, mm: Sequence[float]) -> tuple[float, float, float]:
        """``(equity(), maintenance_margin(mm), gross notional)`` in one pass over the positions,
        each sum in the same order as its own method (so equal to them bit for bit)."""
        held = 0.0
        m = 0.0
        gross = 0.0
        qty, price = self.qty, self.price
        for i in range(self.n):
            q = qty[i]
            if q != 0.0:
                v = q * price[i]
                held += v
                a = abs(v)
                m += a * mm[i]
                gross += a
        return self.cash + held, m, gross

    def gross_notional(self) -> float:
        return sum(abs(self.qty[i]) * self.price[i] for i in range(self.n) if self.qty[i] != 0.0)

    # -- cash movements ----------------------------------------------------------------------------
    def cost_notional(self, index: int, qty: float, price: float) -> float:
        """Quote notional a fill of ``qty`` at ``price`` trades, the base of its bar costs:
        ``|qty| * price``, or for an inverse contract the contract notional it opens or closes,
        ``|N_after - N_before|`` (a reduction closes at the entry price; the vectorised kernel
        charges the same)."""
        if not self.inverse[index]:
            return abs(qty) * price
        q0 = self.qty[index]
        qi = q0 + qty
        q1 = 0.0 if abs(qi) <= 1e-12 * abs(qty) else qi
        n0 = self.contract_n[index]
        return abs(contract_notional_after(n0, q0, q1, price) - n0)

    def apply_fill(self, fill: Fill) -> None:
        i = fill.index
        notional = fill.qty * fill.price
        self.cash -= notional + fill.fee + fill.spread + fill.impact
        q0 = self.qty[i]
        self.qty[i] += fill.qty
        self.fees[i] += fill.fee
        self.spread[i] += fill.spread
        self.impact[i] += fill.impact
        self.traded[i] += abs(notional)
        self.trade_cash[i] -= notional
        if self.qty[i] != 0.0 and abs(self.qty[i]) <= 1e-12 * abs(fill.qty):
            self.qty[i] = 0.0  # exact closes only; float residue of a full close is not a position
        if self.inverse[i]:
            self.contract_n[i] = contract_notional_after(self.contract_n[i], q0, self.qty[i], fill.price)

    def settle_funding(self, index: int, rate: float) -> float:
        """Charge funding on the position held now; returns what was paid (quote units). Linear:
        ``q * P_mark * rate`` at the last price; inverse: ``N * rate`` on the open contract
        notional (``rate * N / P_mark`` coins at the mark), as the vectorised kernel charges it."""
        q = self.qty[index]
        if q == 0.0 or rate == 0.0:
            return 0.0
        paid = (self.contract_n[index] if self.inverse[index] else q * self.price[index]) * rate
        self.cash -= paid
        self.funding[index] += paid
        return paid

    def floor_at_zero(self) -> None:
        """Bankruptcy: the account cannot owe more than it holds."""
        self.cash = 0.0
        for i in range(self.n):
            self.qty[i] = 0.0
            self.contract_n[i] = 0.0
        self.bankrupt = True

    def price_pnl(self) -> np.ndarray:
        return np.array([self.trade_cash[i] + self.qty[i] * (self.price[i] if self.qty[i] else 0.0) for i in range(self.n)])
