"""The paper venue's account statement per account, in each account's collateral currency.

Why: the paper venue fills exactly as the event backtest (one reporting-currency account, which
values an inverse contract correctly in that currency); an exchange, however, reports a
coin-margined account in the coin. This statement is fed every fill, funding settlement and mark
the venue sees and keeps :class:`dea.backtest.ledger.ContractLedger` balances: positions in
contracts, equity and maintenance margin in BTC for a COIN-M account, in USDT for a USDT-M one.

A fill of ``q`` base units on an inverse contract (the venue's fills are in the linear-equivalent
unit, :mod:`dea.risk.margin`) moves the contract notional as the exchange books it
(:func:`dea.risk.margin.contract_notional_after`, the vectorised backtest's rule too): opening or
adding ``q * P``, reducing pro rata at the entry price, so a closed position holds no contracts.
Its fee is the one the venue charged, in the settlement currency at the fill price (an inverse
fill's ``fee / P`` coins; the venue charges an inverse fill's costs on the contract notional it
trades, :meth:`dea.execution.account.Account.cost_notional`). Spread and impact are not booked
here: the statement books each fill at its reference price.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dea.backtest.ledger import ContractLedger
from dea.errors import RiskError
from dea.config.accounts import AccountsConfig
from dea.execution.fills import Fill
from dea.instruments import Instrument
from dea.risk import margin as M

log = logging.getLogger(__name__)


class PaperStatement:
    """Per-account balances of the paper venue (see module doc)."""

    def __init__(self, instruments: Sequence[Instrument], accounts: AccountsConfig | None,
                 initial: Mapping[str, float] | None) -> None:
        self.instruments = tuple(instruments)
        self.ledger = ContractLedger(instruments, accounts, initial)
        self._q = [0.0] * len(self.instruments)  # each position in the venue's (linear-equivalent) unit
        #: what the statement could not book (a fill at a non-finite price reaching the account
        #: with the guards off): logged, counted and shown by :meth:`statement`, never raised
        #: into the venue, which keeps trading on its own account
        self.errors: list[str] = []

    def _guard(self, what: str, fn: Any, *args: Any) -> None:
        if self.errors:
            return  # the statement stopped at its first error: later balances would be wrong
        try:
            fn(*args)
        except RiskError as exc:
            self.errors.append(f"{what}: {exc}")
            log.warning("paper statement stopped: %s: %s", what, exc)

    def on_fill(self, fill: Fill) -> None:
        inst = self.instruments[fill.index]
        notional = abs(fill.qty) * fill.price
        rate = fill.fee / notional if notional > 0 else 0.0
        i = fill.index
        q0 = self._q[i]
        q1 = q0 + fill.qty
        q1 = 0.0 if abs(q1) <= 1e-12 * max(abs(fill.qty), abs(q0)) else q1
        if inst.inverse and math.isfinite(fill.price):
            size = M.contract_notional_after(self.ledger.size[i], q0, q1, fill.price) - self.ledger.size[i]
        else:
            size = fill.qty
        if inst.inverse and size != 0.0:
            rate = fill.fee / abs(size)  # the venue's fee, in the coin at the fill price: fee / P
        if self.ledger.accounts[self.ledger.account_of[i]].liquidated:
            return
        self._q[i] = q1
        self._guard(f"fill of {inst.symbol} at {fill.price}", lambda: self.ledger.fill(
            i, size, fill.price, rate, strict=False))

    def on_mark(self, index: int, price: float) -> None:
        """Mark at a good price; a missing or non-finite one keeps the last good mark (the market-
        data guards quarantine such values before any decision uses them)."""
        if math.isfinite(price) and price > 0:
            self.ledger.mark(index, price)

    def on_funding(self, index: int, rate: float) -> None:
        if self.ledger.price[index] > 0:
            self._guard(f"funding of {self.instruments[index].symbol}", self.ledger.settle_funding, index, rate)

    def statement(self, fx: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """``{account: {collateral, equity, margin, equity_reporting, positions}}``; positions in
        contracts per instrument; ``{"error": {"errors": [...]}}`` once something could not be
        booked."""
        led = self.ledger
        if self.errors:
            return {"error": {"errors": list(self.errors)}}
        out: dict[str, dict[str, Any]] = {}
        for name, st in led.accounts.items():
            out[name] = {
                "collateral": st.config.collateral,
                "equity": led.equity(name),
                "margin": led.margin(name),
                "equity_reporting": led.equity_reporting(name, fx),
                "positions": {self.instruments[i].symbol: led.contracts(i) for i in st.members},
            }
        return out
