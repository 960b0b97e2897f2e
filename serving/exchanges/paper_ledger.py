"""The paper venue's account statement per account, in each account's collateral currency.

Why: the paper venue fills exactly as the event backtest (one reporting-currency account, which
values an inverse contract correctly in that currency); an exchange, however, reports a
coin-margined account in the coin. This statement is fed every fill, funding settlement and mark
the venue sees and keeps :class:`dea.backtest.ledger.ContractLedger` balances: positions in
contracts, equity and maintenance margin in BTC for a COIN-M account, in USDT for a USDT-M one.

A fill of ``q`` base units at ``P`` on an inverse contract is ``N = q * P`` of contract notional
(the venue's fills are in the linear-equivalent unit, :mod:`dea.risk.margin`); its fee is charged
at the same rate as the venue charged it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dea.backtest.ledger import ContractLedger
from dea.config.accounts import AccountsConfig
from dea.execution.fills import Fill
from dea.instruments import Instrument


class PaperStatement:
    """Per-account balances of the paper venue (see module doc)."""

    def __init__(self, instruments: Sequence[Instrument], accounts: AccountsConfig | None,
                 initial: Mapping[str, float] | None) -> None:
        self.instruments = tuple(instruments)
        self.ledger = ContractLedger(instruments, accounts, initial)

    def on_fill(self, fill: Fill) -> None:
        inst = self.instruments[fill.index]
        notional = abs(fill.qty) * fill.price
        rate = fill.fee / notional if notional > 0 else 0.0
        size = fill.qty * fill.price if inst.inverse else fill.qty
        if self.ledger.accounts[self.ledger.account_of[fill.index]].liquidated:
            return
        self.ledger.fill(fill.index, size, fill.price, rate, strict=False)

    def on_mark(self, index: int, price: float) -> None:
        if price == price and price > 0:
            self.ledger.mark(index, price)

    def on_funding(self, index: int, rate: float) -> None:
        if self.ledger.price[index] > 0:
            self.ledger.settle_funding(index, rate)

    def statement(self, fx: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """``{account: {collateral, equity, margin, equity_reporting, positions}}``; positions in
        contracts per instrument."""
        led = self.ledger
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
