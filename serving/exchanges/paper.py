"""Paper exchange: a simulated venue that fills exactly as the event-driven backtest does.

Why it wraps :class:`dea.backtest.event.EventBacktester`: the backtest already *is* a paper venue
(fee/spread/impact model of :mod:`dea.execution.fills`, latency rule, funding, liquidation,
:class:`~dea.execution.account.Account`). Reusing its event handling and fill timing, instead of
re-implementing them, is what makes "replay through the live loop" and "event backtest" give the
same fills; the parity test holds them together. The live loop only adds what a venue has and a
backtest does not: client order ids, idempotent submission, fill reports and positions.

Market data reaches the venue through :meth:`PaperExchange.on_market` (bar rows at decision
times, funding settlements, book views and trades, as backtest events); the venue ignores events
older than what it has seen, so a restarted loop that replays its feed from the start cannot make
it trade in the past.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dea.backtest.config import CostsConfig
from dea.backtest.event import BarEvent, EventBacktester, FundingEvent, MarketEvent
from dea.config.accounts import AccountsConfig
from dea.errors import ExchangeError
from dea.execution.fills import Fill
from dea.execution.orders import Order
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from serving.exchanges.base import ExecFill, OrderAck
from serving.exchanges.paper_ledger import PaperStatement


class _Venue(EventBacktester):
    """The backtester with its executions reported (fills are what a venue tells its client)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.executed: list[Fill] = []

    def _execute(self, i: int, qty: float, price: float, ts: int, client_id: str = "", liquidation: bool = False) -> Fill:
        fill = super()._execute(i, qty, price, ts, client_id, liquidation)
        self.executed.append(fill)
        return fill


def _no_policy(ctx: Any) -> Any:  # the venue never decides
    raise ExchangeError("the paper venue does not take decisions")


class PaperExchange:
    """Simulated venue for ``instruments`` with the backtest's costs and latency."""

    name = "paper"

    def __init__(
        self,
        instruments: Sequence[Instrument],
        costs: CostsConfig,
        *,
        latency_ns: int = 0,
        impact_k: Sequence[float] | None = None,
        accounts: AccountsConfig | None = None,
        initial_collateral: dict[str, float] | None = None,
    ) -> None:
        """``accounts``/``initial_collateral``: the per-account statement (:meth:`statement`),
        e.g. ``{"cm": 1.0}`` BTC for a coin-margined account; by default the initial equity sits
        in the first reporting-currency account. A spot sell below zero in a cash account is
        rejected, as a venue rejects it."""
        self.instruments = tuple(instruments)
        self.symbols = tuple(i.symbol for i in instruments)
        self.venue = _Venue(
            instruments, costs, RiskConfig(), _no_policy, latency_ns=latency_ns, impact_k=impact_k, record=False
        )
        self.latency_ns = int(latency_ns)
        self._orders: dict[str, OrderAck] = {}
        self._open: dict[str, Order] = {}
        self._reports: list[ExecFill] = []
        self._cancelled: list[OrderAck] = []
        self._fill_seq = 0
        self.last_ts: int | None = None
        if initial_collateral is None:
            from dea.config.accounts import resolve_accounts

            rep = (accounts or AccountsConfig()).reporting_currency
            cash = [a.name for a in resolve_accounts(instruments, accounts) if a.collateral == rep]
            initial_collateral = {cash[0]: float(costs.initial_equity)} if cash else {}
        self._statement = PaperStatement(instruments, accounts, initial_collateral)
        from dea.config.accounts import resolve_accounts as _resolve

        self._cash_spot = [i.kind == "spot" and not a.margin for i, a in zip(instruments, _resolve(instruments, accounts))]
        self._seen_now: set[tuple[str, int]] = set()  # bars/settlements applied at last_ts

    # -- market ------------------------------------------------------------------------------------
    def on_market(self, ev: MarketEvent) -> None:
        """A market event (backtest event types). Events older than the venue's clock are ignored,
        and so is a bar or funding settlement delivered again at the venue's current instant (a
        loop that crashed after sending it and before journaling its decision sends it again;
        settling it twice would charge funding twice and fill due orders on a repeated bar)."""
        if self.last_ts is not None and ev.ts < self.last_ts:
            return
        if ev.ts != self.last_ts:
            self._seen_now.clear()
        self.last_ts = ev.ts
        if isinstance(ev, (BarEvent, FundingEvent)):
            key = (type(ev).__name__, getattr(ev, "index", -1))
            if key in self._seen_now:
                return
            self._seen_now.add(key)
        self.venue.on_event(ev)
        self._collect()
        if isinstance(ev, BarEvent):
            for i, p in enumerate(ev.price):
                self._statement.on_mark(i, float(p))
        elif isinstance(ev, FundingEvent):
            self._statement.on_funding(ev.index, ev.rate)

    def on_book(self, ts: int, index: int, view: Any, mid: float) -> None:
        """The book of ``index`` changed (``view``: a live book with ``bid_px``... best first; None
        when it became invalid). Mirrors the backtest's book-event rule: orders due before ``ts``
        fill against the previous state, then the new book sets the price and liquidation is
        checked. (A view instead of a copied :class:`BookEvent` per diff: see serving.books.)"""
        if self.last_ts is not None and ts < self.last_ts:
            return
        self.last_ts = ts
        v = self.venue
        v._fill_due(ts, inclusive=False, bar=None)
        old = v.account.price[index]
        if view is not None:
            v.books[index] = view
            v.raw_px[index] = mid
            v.account.mark(index, mid)
            self._statement.on_mark(index, mid)
        v.check_liquidation_after_move(ts, index, old)
        self._collect()

    def freeze_book(self, index: int, ts: int) -> None:
        """Keep a copy of the current levels: the live book is about to be cleared by a gap."""
        cur = self.venue.books[index]
        frozen = getattr(cur, "frozen", None)
        if frozen is not None:
            self.venue.books[index] = frozen(ts)

    def before_decision(self, ts: int) -> None:
        """Fill what is due and check liquidation, exactly as the backtest does before deciding."""
        if self.last_ts is not None and ts < self.last_ts:
            return
        self.last_ts = ts
        v = self.venue
        v._fill_due(ts, inclusive=False, bar=None)
        v._check_liquidation(ts)
        v._fill_due(ts, inclusive=True, bar=None)
        self._collect()

    # -- orders ------------------------------------------------------------------------------------
    def submit(self, orders: Sequence[Order], prices: np.ndarray | None = None) -> list[OrderAck]:
        """Accept orders (idempotent per client id). With zero latency they fill at once at
        ``prices`` (the decision's prices), as in the backtest; otherwise at their due time."""
        acks = []
        v = self.venue
        for o in orders:
            known = self._orders.get(o.client_id)
            if known is not None:
                acks.append(known)
                continue
            if v.dead:
                ack = OrderAck(o.client_id, "rejected", None, "account closed after liquidation")
            elif self._expired(o):
                ack = OrderAck(o.client_id, "rejected", None,
                               f"{o.instrument} expired at {self.instruments[o.index].expiry}: only a closing order is accepted")
            elif self._cash_spot[o.index] and v.account.qty[o.index] + v.pend_q[o.index] + o.qty < -1e-12 * abs(o.qty):
                ack = OrderAck(o.client_id, "rejected", None,
                               f"spot short refused: {o.instrument} is spot in a cash account (no margin)")
            elif self.latency_ns == 0:
                if prices is None:
                    raise ExchangeError("paper exchange with zero latency needs the decision's prices")
                v._execute(o.index, o.qty, float(prices[o.index]), o.t_decision, o.client_id)
                ack = OrderAck(o.client_id, "filled", o.client_id)
            else:
                v.pending.append(o)
                v.pend_q[o.index] += o.qty
                self._open[o.client_id] = o
                ack = OrderAck(o.client_id, "sent", o.client_id)
            self._orders[o.client_id] = ack
            acks.append(ack)
        self._collect()
        return acks

    @property
    def is_fresh(self) -> bool:
        """True until the venue has seen an order: a new process's paper venue."""
        return not self._orders and self._fill_seq == 0

    def restore(self, account: Any, pending: Sequence[Order]) -> None:
        """Continue a journaled session in a new process (a simulated venue does not outlive its
        process, unlike a real one): take over the journal's account and in-flight orders. The
        loop calls this once its replay reaches the last journaled decision, after the venue has
        seen the market up to then (books, prices and impact estimates warm)."""
        acc = self.venue.account
        acc.cash = float(account.cash)
        for name in ("qty", "contract_n", "fees", "spread", "impact", "funding", "traded", "trade_cash"):
            setattr(acc, name, list(getattr(account, name)))
        for o in pending:
            self.venue.pending.append(o)
            self.venue.pend_q[o.index] += o.qty
            self._open[o.client_id] = o
            self._orders[o.client_id] = OrderAck(o.client_id, "sent", o.client_id)

    def lookup(self, client_id: str, instrument: str) -> OrderAck:
        return self._orders.get(client_id, OrderAck(client_id, "unknown", None, "paper venue never received it"))

    def _collect(self) -> None:
        v = self.venue
        if v.executed:
            for f in v.executed:
                self._statement.on_fill(f)
                self._fill_seq += 1
                cid = f.client_id
                # unique across processes: a market order fills once; liquidations per time and instrument
                fid = f"paper:{cid}" if cid != "liquidation" else f"paper:liquidation:{f.ts}:{f.index}"
                if cid in self._open:
                    del self._open[cid]
                    self._orders[cid] = OrderAck(cid, "filled", cid)
                self._reports.append(
                    ExecFill(fid, cid, f.ts, self.symbols[f.index], f.index, f.qty, f.price, f.fee, f.spread, f.impact)
                )
            v.executed.clear()
        if self._open and len(v.pending) < len(self._open):
            still = {o.client_id for o in v.pending}
            for cid in [c for c in self._open if c not in still]:
                del self._open[cid]
                ack = OrderAck(cid, "rejected", cid, "cancelled by the venue (no price at the due time, or liquidation)")
                self._orders[cid] = ack
                self._cancelled.append(ack)

    def poll_fills(self, now_ns: int) -> list[ExecFill]:
        out, self._reports = self._reports, []
        return out

    def cancelled(self) -> list[OrderAck]:
        """Orders the venue cancelled since the last call (drained)."""
        out, self._cancelled = self._cancelled, []
        return out

    def positions(self) -> dict[str, float]:
        return {s: float(q) for s, q in zip(self.symbols, self.venue.account.qty, strict=True)}

    def _expired(self, o: Order) -> bool:
        """An order on a dated future at or after its expiry that does not reduce the position."""
        inst = self.instruments[o.index]
        exp = inst.expiry_ns
        if exp is None or o.t_decision < exp:
            return False
        held = self.venue.account.qty[o.index] + self.venue.pend_q[o.index]
        return not (held != 0.0 and o.qty * held < 0 and abs(o.qty) <= abs(held) * (1 + 1e-12))

    def statement(self, fx: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """Per-account balances in each account's collateral currency (positions in contracts):
        what the exchange would show (:class:`~serving.exchanges.paper_ledger.PaperStatement`)."""
        return self._statement.statement(fx)

    @property
    def equity(self) -> float:
        return self.venue.account.equity()

    @property
    def halted(self) -> bool:
        return bool(self.venue.dead)

    def close(self) -> None:
        return None

