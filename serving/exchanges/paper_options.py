"""Paper option venue: the overlay's option orders filled and settled as the overlay backtest does.

Why a venue of its own: the perpetual paper venue (:mod:`serving.exchanges.paper`) *is* the event
backtest, which holds no options; the overlay backtest (:mod:`dea.backtest.options_overlay`)
fills an option at its mark or model price plus Deribit's fee and settles it at expiry at
intrinsic value less the delivery fee. This venue does exactly that, with the fee rules of
:mod:`dea.options.overlay` (one definition), and adds what a venue has: client order ids
(idempotent submission), fill ids, fills looked up by order, positions, and a statement in the
account's collateral currency (the coin for Deribit's inverse BTC/ETH options: a premium of
``P`` USD at underlying price ``S`` is ``P / S`` BTC).

What it does not model: an option order book (no bid/ask spread, no depth: it fills at the price
the client sends, the overlay's mark/model price), margin on a short option, and early exercise
(European options only). Settlement happens when the client asks at or after expiry, at that
decision's underlying price (Deribit settles at a 30-minute index average before 08:00 UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

from dea.errors import ExchangeError
from dea.options.contracts import OptionContract, parse_option_name
from dea.options.overlay import delivery_fee, intrinsic, trade_fee
from dea.options.overlay_config import OptionFeeConfig
from serving.exchanges.base import OrderAck


@dataclass(frozen=True)
class OptionOrder:
    """Buy (``contracts`` > 0) or sell an option at ``price_usd`` per unit of underlying."""

    client_id: str
    t_decision: int
    instrument: str
    contracts: float
    price_usd: float
    underlying_price: float


@dataclass(frozen=True)
class OptionFill:
    """A trade or settlement as the venue reports it (see :class:`serving.journal.OptionFillRow`)."""

    fill_id: str
    client_id: str | None
    kind: str
    ts: int
    instrument: str
    contracts: float
    price_usd: float
    underlying_price: float
    fee_usd: float
    cash_usd: float
    collateral: str
    cash_collateral: float
    fee_collateral: float


class PaperOptionVenue:
    """Simulated option venue (Deribit's naming, expiry and fee rules)."""

    name = "paper-options"

    def __init__(self, fees: OptionFeeConfig, *, venue: str = "deribit", multiplier: float = 1.0) -> None:
        self.fees = fees
        self.venue = venue
        self.multiplier = float(multiplier)
        self._orders: dict[str, OrderAck] = {}
        self._fills_by_order: dict[str, list[OptionFill]] = {}
        self._reports: list[OptionFill] = []
        self._positions: dict[str, float] = {}
        self._balance: dict[str, float] = {}  # cash moved by option trades, per collateral currency
        self._marks: dict[str, float] = {}  # last per-unit USD price and underlying price, for the statement
        self._underlying_px: dict[str, float] = {}
        self._traded = False  # an order or settlement in this process (restore no longer applies)

    def contract(self, instrument: str) -> OptionContract:
        c = parse_option_name(instrument, self.venue)
        if c.multiplier != self.multiplier:
            raise ExchangeError(f"{instrument}: the venue's contract is {c.multiplier} units, the overlay's multiplier "
                                f"{self.multiplier}")
        return c

    @property
    def is_fresh(self) -> bool:
        """True until the venue has traded in this process: a new process's venue, which takes
        the journal's state (:meth:`restore`; again at a standby's takeover)."""
        return not self._traded

    # -- orders ------------------------------------------------------------------------------------
    def submit(self, order: OptionOrder) -> OrderAck:
        """Fill at once at the order's price plus Deribit's fee (idempotent per client id)."""
        known = self._orders.get(order.client_id)
        if known is not None:
            return known
        self._traded = True
        c = self.contract(order.instrument)
        s, p, q = float(order.underlying_price), float(order.price_usd), float(order.contracts)
        if not (s > 0 and p >= 0 and q != 0 and s - s == 0 and p - p == 0 and q - q == 0):
            ack = OrderAck(order.client_id, "rejected", None, f"{order.instrument}: needs a positive underlying price, a "
                                                              f"price >= 0 and contracts != 0; got {s}, {p}, {q}")
        elif order.t_decision >= c.expiry_ns:
            ack = OrderAck(order.client_id, "rejected", None, f"{order.instrument} expired at {c.expiry_ns}")
        else:
            units = q * c.multiplier
            fee = trade_fee(self.fees, s, p) * abs(units)
            cash = -units * p - fee
            self._book(OptionFill(f"paper-opt:{order.client_id}", order.client_id, "trade", int(order.t_decision),
                                  order.instrument, q, p, s, fee, cash, *self._in_collateral(c, cash, fee, s)))
            ack = OrderAck(order.client_id, "filled", order.client_id)
        self._orders[order.client_id] = ack
        return ack

    def settle(self, ts: int, instrument: str, underlying_price: float) -> OptionFill | None:
        """Settle the position in ``instrument`` at ``underlying_price`` (``ts`` at or after its
        expiry): intrinsic value less the delivery fee. None when nothing is held."""
        held = self._positions.get(instrument, 0.0)
        if held == 0.0:
            return None
        c = self.contract(instrument)
        self._traded = True
        if ts < c.expiry_ns:
            raise ExchangeError(f"{instrument} cannot settle at {ts}: it expires at {c.expiry_ns}")
        s = float(underlying_price)
        payoff = intrinsic(c.is_call, c.strike, s)
        units = held * c.multiplier
        fee = delivery_fee(self.fees, s, payoff) * abs(units)
        cash = units * payoff - fee
        fill = OptionFill(f"paper-opt:settle:{instrument}", None, "settle", int(ts), instrument, -held, payoff, s, fee,
                          cash, *self._in_collateral(c, cash, fee, s))
        self._book(fill)
        return fill

    def _in_collateral(self, c: OptionContract, cash: float, fee: float, s: float) -> tuple[str, float, float]:
        """(currency, cash, fee) as the venue books them: coin for an inverse option, else USD-like."""
        return (c.premium_currency, cash / s, fee / s) if c.inverse else (c.premium_currency, cash, fee)

    def _book(self, fill: OptionFill) -> None:
        q = self._positions.get(fill.instrument, 0.0) + fill.contracts
        if abs(q) <= 1e-12:
            self._positions.pop(fill.instrument, None)
        else:
            self._positions[fill.instrument] = q
        self._balance[fill.collateral] = self._balance.get(fill.collateral, 0.0) + fill.cash_collateral
        self._marks[fill.instrument] = fill.price_usd
        self._underlying_px[fill.instrument] = fill.underlying_price
        if fill.client_id:
            self._fills_by_order.setdefault(fill.client_id, []).append(fill)
        self._reports.append(fill)

    def lookup(self, client_id: str) -> OrderAck:
        return self._orders.get(client_id, OrderAck(client_id, "unknown", None, "paper option venue never received it"))

    def fills_of(self, client_id: str) -> list[OptionFill]:
        """The fills of one order (what a venue's trade history by order id returns)."""
        return list(self._fills_by_order.get(client_id, ()))

    def poll_fills(self) -> list[OptionFill]:
        out, self._reports = self._reports, []
        return out

    def positions(self) -> dict[str, float]:
        return dict(self._positions)

    def mark(self, instrument: str, price_usd: float, underlying_price: float) -> None:
        """The overlay's latest mark (only the statement uses it)."""
        if instrument in self._positions:
            self._marks[instrument], self._underlying_px[instrument] = float(price_usd), float(underlying_price)

    def statement(self) -> dict[str, dict[str, float | dict[str, float]]]:
        """Per collateral currency: cash moved by option trades, the positions' value at their last
        mark and positions in contracts (what the venue's account page shows)."""
        out: dict[str, dict[str, float | dict[str, float]]] = {}
        for cur, bal in self._balance.items():
            out[cur] = {"cash": bal, "value": 0.0, "positions": {}}
        for name, q in self._positions.items():
            c = self.contract(name)
            row = out.setdefault(c.premium_currency, {"cash": 0.0, "value": 0.0, "positions": {}})
            usd = q * c.multiplier * self._marks.get(name, 0.0)
            s = self._underlying_px.get(name, 0.0)
            row["value"] = float(row["value"]) + (usd / s if c.inverse and s > 0 else usd)
            row["positions"][name] = q  # type: ignore[index]
        return out

    def restore(self, positions: dict[str, float], balance: dict[str, float], filled: dict[str, str]) -> None:
        """Continue a journaled session in a new process (a simulated venue dies with its
        process): positions, collateral cash and the orders it already filled (client id ->
        status), so a re-sent one is recognised."""
        self._positions = {k: float(v) for k, v in positions.items() if v != 0.0}
        self._balance = {k: float(v) for k, v in balance.items()}
        self._orders.clear()
        for cid, status in filled.items():
            self._orders[cid] = OrderAck(cid, status, cid)

    def close(self) -> None:
        return None


__all__ = ["OptionFill", "OptionOrder", "PaperOptionVenue"]
