"""Cross-venue routing, executed: split one order across the venues ``execution.routes`` names
for its instrument (:func:`dea.execution.routing.route`: visible depth, fees, per-venue limits),
send each leg to its venue as an IOC limit at the leg's worst planned price (so no venue walks
further than the plan), and report where it went, why, and what filled.

Why IOC at the worst price: the plan is a sweep of the books as seen; a leg must not become a
resting order at one venue (the other legs already took the liquidity the plan counted on) nor
sweep deeper than planned if the book moved; what an IOC leaves unfilled is reported, and the
next decision orders what the target still needs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig
from dea.execution.order_types import OrderRequest, child_client_id
from dea.execution.routing import RoutePlan, route, venue_books
from serving.exchanges.base import ExecFill, OrderAck

log = logging.getLogger("dea.serving.router")


@dataclass(frozen=True)
class RouteReport:
    """A routed order: the plan (legs with their reasons), each venue's ack and fills."""

    symbol: str
    qty: float
    plan: RoutePlan
    acks: Mapping[str, OrderAck]
    fills: Mapping[str, tuple[ExecFill, ...]]

    def filled(self, venue: str) -> float:
        return sum(f.qty for f in self.fills.get(venue, ()))

    def lines(self) -> list[str]:
        """Human report: one line per leg (planned, why, sent, filled), then what is left."""
        out = []
        for leg in self.plan.legs:
            ack = self.acks.get(leg.venue)
            got = self.filled(leg.venue)
            status = "not sent" if ack is None else ack.status + (f" ({ack.reason})" if ack.reason else "")
            out.append(f"{self.symbol} {leg.venue}: planned {leg.qty:+g} ({leg.reason}); IOC limit {leg.worst_price:g} "
                       f"{status}; filled {got:+g}")
        left = self.qty - sum(self.filled(v) for v in self.fills)
        out.append(f"{self.symbol}: routed {self.qty:+g}, filled {self.qty - left:+g}, left {left:+g}"
                   + (f" (the books held {self.plan.unfilled:g} less than asked)" if self.plan.unfilled > 0 else ""))
        return out


class Router:
    """Routes orders of the configured instruments across venue adapters (``submit_order`` and
    ``poll_fills``, e.g. :class:`~serving.exchanges.ccxt_exchange.CcxtExchange`) by their
    current books (anything with ``levels(side, n)``, e.g. the feed's :class:`dea.book.l2.L2Book`)."""

    def __init__(self, cfg: ExecutionConfig, venues: Mapping[str, Any], books: Mapping[str, Any], *,
                 id_prefix: str = "dea", depth: int = 50) -> None:
        named = {r.venue for routes in cfg.routes.values() for r in routes}
        missing = sorted(named - set(venues))
        if missing:
            raise ExchangeError(f"execution.routes names venues {missing} that have no adapter")
        self.cfg, self.venues, self.books = cfg, dict(venues), dict(books)
        self.id_prefix, self.depth = id_prefix, depth

    def execute(self, symbol: str, index: int, qty: float, t_decision: int) -> RouteReport:
        books = {}
        for r in self.cfg.routes.get(symbol, []):
            b = self.books.get(r.venue)
            if b is None:
                raise ExchangeError(f"route {symbol}: no book from venue {r.venue}")
            books[r.venue] = (b.levels(1, self.depth), b.levels(-1, self.depth))
        plan = route(qty, venue_books(self.cfg, symbol, books))
        acks: dict[str, OrderAck] = {}
        fills: dict[str, tuple[ExecFill, ...]] = {}
        for k, leg in enumerate(plan.legs):
            adapter = self.venues[leg.venue]
            req = OrderRequest(symbol, index, leg.qty, child_client_id(self.id_prefix, t_decision, symbol, k),
                               t_decision, kind="limit", price=leg.worst_price, tif="IOC")
            acks[leg.venue] = adapter.submit_order(req)
            fills[leg.venue] = tuple(f for f in adapter.poll_fills(t_decision) if f.client_id == req.client_id)
        report = RouteReport(symbol, qty, plan, acks, fills)
        for line in report.lines():
            log.info("route: %s", line)
        return report
