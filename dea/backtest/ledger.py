"""Per-account ledger in each account's collateral currency: what an exchange statement shows.

Why beside the kernel: the vectorised backtest keeps one reporting-currency account, which values
every contract correctly in that currency (an inverse contract is worth, in USD, what a linear
position of ``N / P_entry`` coins is worth: :mod:`dea.risk.margin`) but cannot say what a
coin-margined account holds in BTC, what its margin is in BTC, when that account alone is
liquidated, or what a haircut on coin collateral leaves. The ledger does, with the formulas of
:mod:`dea.risk.margin`, fed fill by fill (the paper venue and :func:`ledger_from_fills` feed it
the event backtest's fills).

Sizes are in each instrument's own unit: base units for spot and linear contracts, quote notional
``N = contracts * contract_size`` for inverse contracts (:meth:`ContractLedger.contracts` gives the
count). Each position keeps ``cost``, its cumulated fill value in the settlement currency
(linear ``sum dq * P``, inverse ``sum dN / P``), so that its unrealised value is ``q * P - cost``
(linear) or ``cost - N / P`` (inverse); fees and funding move the account's ``wallet``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dea.config.accounts import AccountConfig, AccountsConfig, resolve_accounts
from dea.errors import RiskError
from dea.instruments import Instrument, refuse_options
from dea.risk import margin as M

_DUST = 1e-12


@dataclass
class AccountState:
    """One account's balances in its collateral currency."""

    config: AccountConfig
    wallet: float
    members: list[int] = field(default_factory=list)
    liquidated: bool = False


class ContractLedger:
    """Accounts, positions and marks for ``instruments``; ``initial`` maps an account name to its
    starting collateral (collateral currency units; accounts not named start at 0)."""

    def __init__(self, instruments: Sequence[Instrument], accounts: AccountsConfig | None = None,
                 initial: Mapping[str, float] | None = None) -> None:
        refuse_options(instruments, "ContractLedger")
        self.instruments = tuple(instruments)
        self.accounts_cfg = accounts or AccountsConfig()
        self.reporting = self.accounts_cfg.reporting_currency
        accs = resolve_accounts(instruments, accounts)
        self.account_of = [a.name for a in accs]
        self.accounts: dict[str, AccountState] = {}
        for i, a in enumerate(accs):
            st = self.accounts.setdefault(a.name, AccountState(a, 0.0))
            st.members.append(i)
        unknown = sorted(set(initial or {}) - set(self.accounts))
        if unknown:
            raise RiskError(f"initial collateral for unknown accounts {unknown}; accounts: {sorted(self.accounts)}")
        for name, amount in (initial or {}).items():
            if not (amount >= 0.0) or not math.isfinite(amount):
                raise RiskError(f"initial collateral of account {name!r} is {amount}; must be finite and >= 0")
            self.accounts[name].wallet = float(amount)
        n = len(instruments)
        self.size = [0.0] * n
        self.cost = [0.0] * n
        self.price = [math.nan] * n
        self.fees = [0.0] * n
        self.funding_paid = [0.0] * n
        self.settled = [False] * n
        self.iso_margin = [0.0] * n  # isolated accounts: each position's own margin

    # -- events -----------------------------------------------------------------------------------
    def fill(self, i: int, size: float, price: float, fee_rate: float = 0.0, *, strict: bool = True) -> float:
        """Apply a fill of ``size`` (instrument units) at ``price``; returns the fee charged
        (settlement currency). With ``strict``, a spot fill that would leave a cash account short
        or levered is refused (RiskError): without margin a spot holding cannot go below zero nor
        cost more than the account's cash. ``strict=False`` records what a venue reported (its
        own checks, and the risk engine's bounds, ran before)."""
        inst = self.instruments[i]
        st = self.accounts[self.account_of[i]]
        if self.settled[i]:
            raise RiskError(f"{inst.symbol} settled at its expiry; it cannot trade afterwards")
        if st.liquidated:
            raise RiskError(f"account {st.config.name!r} was liquidated; {inst.symbol} cannot trade")
        M._check_price(price)
        new = self.size[i] + size
        cost = self.cost[i] + (size / price if inst.inverse else size * price)
        f = M.fee(inst.inverse, size, price, fee_rate)
        if strict and inst.kind == "spot" and not st.config.margin:
            if new < -_DUST * max(abs(size), 1.0):
                raise RiskError(
                    f"spot short refused: {inst.symbol} in cash account {st.config.name!r} would hold {new:g}; "
                    "a short on spot needs an account with margin: true"
                )
            cash_after = st.wallet - f - sum(self.cost[j] if j != i else cost for j in st.members
                                             if self.instruments[j].kind == "spot")
            if cash_after < -1e-9 * max(abs(st.wallet), 1.0):
                raise RiskError(
                    f"levered spot refused: buying {size:g} {inst.symbol} at {price:g} leaves cash account "
                    f"{st.config.name!r} at {cash_after:.6g} {st.config.collateral}; spot leverage needs margin: true"
                )
        self.size[i] = 0.0 if abs(new) <= _DUST * abs(size) else new
        self.cost[i] = cost
        if st.config.margin_mode == "isolated" and st.config.leverage is not None:
            self.iso_margin[i] = M.notional_settle(inst.inverse, self.size[i], price) / st.config.leverage
        self.price[i] = price
        st.wallet -= f
        self.fees[i] += f
        return f

    def mark(self, i: int, price: float) -> None:
        M._check_price(price)
        self.price[i] = price

    def settle_funding(self, i: int, rate: float, mark: float | None = None) -> float:
        """Charge one funding settlement on the position held (settlement currency)."""
        inst = self.instruments[i]
        if inst.kind != "perpetual":
            raise RiskError(f"{inst.symbol} is {inst.kind}: only perpetuals pay funding")
        p = self.price[i] if mark is None else mark
        if self.size[i] == 0.0 or rate == 0.0:
            return 0.0
        paid = M.funding(inst.inverse, self.size[i], p, rate)
        self.accounts[self.account_of[i]].wallet -= paid
        self.funding_paid[i] += paid
        return paid

    def settle_expiry(self, i: int, settlement_price: float) -> float:
        """Close a dated future at its settlement price (no trading fee); returns the PnL the
        settlement realised against the last mark (settlement currency)."""
        inst = self.instruments[i]
        if inst.kind != "future":
            raise RiskError(f"{inst.symbol} is {inst.kind}: only dated futures settle at expiry")
        before = self.unrealised(i)
        self.price[i] = settlement_price
        value = self.unrealised(i)
        st = self.accounts[self.account_of[i]]
        st.wallet += value
        self.size[i] = 0.0
        self.cost[i] = 0.0
        self.settled[i] = True
        return value - before

    # -- valuation --------------------------------------------------------------------------------
    def unrealised(self, i: int) -> float:
        """Position value in the settlement currency (cumulated fill value against the mark)."""
        inst, q, c = self.instruments[i], self.size[i], self.cost[i]
        if q == 0.0 and c == 0.0:
            return 0.0
        p = self.price[i]
        if not (p > 0.0):
            raise RiskError(f"{inst.symbol} has a position but no mark price")
        return c - q / p if inst.inverse else q * p - c

    def equity(self, account: str) -> float:
        """Account equity in its collateral currency: wallet plus unrealised value."""
        st = self._acc(account)
        return st.wallet + sum(self.unrealised(i) for i in st.members)

    def margin(self, account: str) -> float:
        """Maintenance margin in the collateral currency (spot in a cash account needs none)."""
        st = self._acc(account)
        total = 0.0
        for i in st.members:
            inst = self.instruments[i]
            if self.size[i] == 0.0 or (inst.kind == "spot" and not st.config.margin):
                continue
            total += M.maintenance_margin(inst.inverse, self.size[i], self.price[i], inst.maintenance_margin)
        return total

    def contracts(self, i: int) -> float:
        """Position in contracts: ``N / contract_size`` (inverse) or ``q / contract_size``."""
        return self.size[i] / self.instruments[i].contract_size

    def liquidation_price(self, i: int) -> float:
        """Mark at which instrument ``i`` alone liquidates its account (isolated: its own margin,
        here the account's wallet; cross with a single open position: the account's wallet).
        NaN when the account holds other open positions, whose marks would also matter."""
        st = self.accounts[self.account_of[i]]
        inst = self.instruments[i]
        isolated = st.config.margin_mode == "isolated"
        others = [j for j in st.members if j != i and self.size[j] != 0.0]
        if (others and not isolated) or self.size[i] == 0.0:
            return math.nan
        q, c = self.size[i], self.cost[i]
        collateral = self.iso_margin[i] if isolated else st.wallet
        if inst.inverse:
            return M.liquidation_price(True, q, q / c, collateral, inst.maintenance_margin) if c else math.nan
        return M.liquidation_price(False, q, c / q, collateral, inst.maintenance_margin)

    def check_liquidation(self, account: str) -> bool:
        """Cross: liquidate ``account`` (close all its positions at their marks) when its equity is
        at or below its maintenance margin. Isolated: each position alone, when its isolated
        margin plus its unrealised value reaches its maintenance margin; it loses at most that
        margin and the account trades on. Returns whether anything was liquidated."""
        st = self._acc(account)
        if st.liquidated or not any(self.size[i] for i in st.members):
            return False
        if st.config.margin_mode == "isolated":
            hit = False
            for i in st.members:
                if self.size[i] == 0.0:
                    continue
                inst = self.instruments[i]
                u = self.unrealised(i)
                mm = M.maintenance_margin(inst.inverse, self.size[i], self.price[i], inst.maintenance_margin)
                if self.iso_margin[i] + u <= mm:
                    st.wallet += max(u, -self.iso_margin[i])
                    self.size[i] = 0.0
                    self.cost[i] = 0.0
                    self.iso_margin[i] = 0.0
                    hit = True
            return hit
        if self.equity(account) > self.margin(account):
            return False
        for i in st.members:
            if self.size[i] != 0.0:
                st.wallet += self.unrealised(i)
                self.size[i] = 0.0
                self.cost[i] = 0.0
        st.wallet = max(st.wallet, 0.0)
        st.liquidated = True
        return True

    def fx(self, currency: str, fx: Mapping[str, float] | None = None) -> float:
        """Reporting-currency units per unit of ``currency``: 1 for the reporting currency, else
        ``fx[currency]`` or the mark of an instrument with that base quoted in the reporting
        currency (an inverse contract's price is the coin's price)."""
        if currency == self.reporting:
            return 1.0
        if fx and currency in fx:
            return float(fx[currency])
        for i, inst in enumerate(self.instruments):
            if inst.base == currency and inst.quote == self.reporting and self.price[i] > 0.0:
                return self.price[i]
        raise RiskError(f"no price converts {currency} to the reporting currency {self.reporting}; pass fx")

    def equity_reporting(self, account: str, fx: Mapping[str, float] | None = None, *, haircut: bool = False) -> float:
        """Account equity in the reporting currency (with the account's collateral haircut if
        ``haircut``: what risk may count)."""
        st = self._acc(account)
        return M.collateral_value(self.equity(account), self.fx(st.config.collateral, fx),
                                  st.config.haircut if haircut else 0.0)

    def total_equity(self, fx: Mapping[str, float] | None = None, *, haircut: bool = False) -> float:
        return sum(self.equity_reporting(a, fx, haircut=haircut) for a in self.accounts)

    def exposure(self, i: int, total_equity: float, fx: Mapping[str, float] | None = None) -> float:
        """Signed delta notional in the reporting currency / ``total_equity``: ``q * P`` for linear,
        for inverse the USD value's delta ``P * d(value)/dP = N * P / P_entry`` (the linear
        equivalent, see :mod:`dea.risk.margin`)."""
        inst = self.instruments[i]
        if self.size[i] == 0.0:
            return 0.0
        p = self.price[i]
        if inst.inverse:  # value in the quote currency P * (cost - N/P) = P * cost - N: delta P * cost
            delta_notional = self.cost[i] * p
        else:
            delta_notional = self.size[i] * p * self.fx(inst.quote, fx)
        return delta_notional / total_equity

    def collateral_exposure(self, account: str, total_equity: float, fx: Mapping[str, float] | None = None) -> float:
        """The exposure the collateral itself carries: a coin wallet is a long coin holding
        (wallet * fx / total equity); 0 for reporting-currency collateral."""
        st = self._acc(account)
        if st.config.collateral == self.reporting:
            return 0.0
        return st.wallet * self.fx(st.config.collateral, fx) / total_equity

    def _acc(self, account: str) -> AccountState:
        try:
            return self.accounts[account]
        except KeyError:
            raise RiskError(f"unknown account {account!r}; accounts: {sorted(self.accounts)}") from None
