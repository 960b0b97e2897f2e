"""Cross-venue routing inside the execution desk: several venues of one instrument behind the
one-venue interface the :class:`~dea.execution.replay.Executor` drives, so every schedule
(immediate, TWAP, POV, passive-then-aggressive) has each marketable child split across the
venues ``execution.routes`` lists, by visible depth, fees and per-venue limits
(:func:`dea.execution.routing.route`), in the event backtest, the paper venue and over ccxt.

Why a venue facade and not a routing step in the schedule: schedules decide *how much and when*;
where it executes is a property of the market the instrument trades in. The facade keeps the
executor, the risk bound and the journal unchanged: the executor sees one child with one client
id, its fills (each carrying the price, fee, mid and touch of the venue it executed at) and its
final state once every leg is final.

Rules (each leg's reason is recorded, see :meth:`RoutedVenue.route_report`):

- a market, IOC or FOK child is planned on the venues' books as seen now and sent as one leg per
  venue, IOC (FOK stays FOK, per venue: not atomic across venues) at the leg's worst planned
  price, so no venue walks further than the plan; size the books or the per-venue limits could
  not take is not sent (the child ends with it unfilled; the schedule or the next decision
  orders it again);
- a resting limit (GTC, GTX) and a reduce-only child go whole to the *primary* venue (the first
  route): queue priority is per venue and positions, hence reduce-only, are per venue;
- the reference market (mid, touch, book for the modelled cost and the schedule's view) is the
  primary venue's, so arrival prices and the passive touch are those of the venue DEA marks at;
  a fill elsewhere carries that venue's mid, so the shortfall's timing term includes the basis
  between venues.

Market data reaches one venue as :class:`VenueMsg` (venue name + capture message); leg ids are
the child's id with ``.k`` (k = the venue's position in the routes), deterministic across
restarts like the child ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dea.book.l2 import ASK, BID
from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig, RouteVenue
from dea.execution.order_types import MAX_CLIENT_ID, OrderRequest
from dea.execution.queue import FINAL, LimitOrderSimulator, OrderStatus, OrderUpdate, QueueModel, SimFill
from dea.execution.replay import VenueMsg, _enough, feed
from dea.execution.routing import route, venue_books


@dataclass
class RoutedChild:
    """A child as the executor sees it: the sum of its legs."""

    req: OrderRequest
    legs: dict[str, str] = field(default_factory=dict)  # venue -> leg client id
    status: OrderStatus = "open"
    filled: float = 0.0
    leaves: float = 0.0
    cancel_ts: int | None = None
    notional: float = 0.0


@dataclass
class LegRecord:
    """One leg: where part of a child went, why, and (updated as it executes) what filled."""

    client_id: str  # the child's
    leg_id: str
    parent_id: str | None
    ts: int
    venue: str
    qty: float  # planned, signed
    price: float | None  # limit sent (None: market)
    reason: str
    filled: float = 0.0  # signed
    notional: float = 0.0
    fee: float = 0.0
    status: str = "sent"

    def as_dict(self) -> dict[str, Any]:
        return {"venue": self.venue, "child": self.client_id, "leg": self.leg_id, "ts": self.ts, "qty": self.qty,
                "price": self.price, "filled": self.filled,
                "avg_price": self.notional / abs(self.filled) if self.filled else None,
                "fee": self.fee, "status": self.status, "reason": self.reason}


class RoutedVenue:
    """The venues of one instrument behind the simulator's interface (see the module docstring).

    ``venues``: venue name -> a venue with the simulator's interface (a
    :class:`~dea.execution.queue.LimitOrderSimulator`, or a real venue behind
    :class:`serving.exchanges.order_port.VenueOrderPort`), one per entry of ``routes``; a venue
    with ``refresh_book()`` is asked for a fresh book before each plan (a venue with no feed).
    """

    def __init__(self, symbol: str, cfg: ExecutionConfig, venues: Mapping[str, Any], *, lot: float = 0.0) -> None:
        routes: Sequence[RouteVenue] = cfg.routes.get(symbol) or ()
        if len(routes) < 1:
            raise ExchangeError(f"routed venue {symbol}: execution.routes lists no venue for it")
        names = [r.venue for r in routes]
        if set(names) != set(venues) or len(names) != len(venues):
            raise ExchangeError(f"routed venue {symbol}: routes name {names}, venues given {sorted(venues)}")
        self.symbol, self.cfg, self.lot = symbol, cfg, lot
        self.routes = tuple(routes)
        self.names = tuple(names)
        self.venues = {n: venues[n] for n in names}
        self.primary = self.venues[names[0]]
        self.orders: dict[str, RoutedChild] = {}
        self.fills: list[SimFill] = []
        self.updates: list[OrderUpdate] = []
        self.legs: list[LegRecord] = []
        self._leg_of: dict[str, tuple[RoutedChild, LegRecord]] = {}
        self._nf = {n: 0 for n in names}
        self._nu = {n: 0 for n in names}

    @classmethod
    def simulated(cls, symbol: str, cfg: ExecutionConfig, *, maker_fee: float, lot: float = 0.0) -> "RoutedVenue":
        """One queue-aware simulator per configured venue (event backtest, paper venue): each with
        the venue's taker fee, its maker fee (default ``maker_fee``, the instrument's) and lot."""
        model = QueueModel(cfg.queue_model, cfg.queue_power)
        sims = {r.venue: LimitOrderSimulator(maker_fee=maker_fee if r.maker_fee is None else r.maker_fee,
                                             taker_fee=r.taker_fee, model=model,
                                             submit_latency_ns=cfg.ns("submit_latency"),
                                             cancel_latency_ns=cfg.ns("cancel_latency"), lot=r.lot or lot)
                for r in cfg.routes.get(symbol) or ()}
        return cls(symbol, cfg, sims, lot=lot)

    # ------------------------------------------------------------------ the reference market (primary)
    @property
    def book(self):  # noqa: ANN201 - L2Book
        return self.primary.book

    @property
    def now(self) -> int | None:
        ts = [v.now for v in self.venues.values() if v.now is not None]
        return max(ts) if ts else None

    @property
    def position(self) -> float:
        return sum(v.position for v in self.venues.values())

    @position.setter
    def position(self, q: float) -> None:
        """A restored position (paper restart) is the primary venue's: the journal keeps one
        position per instrument, not per venue."""
        for v in self.venues.values():
            v.position = 0.0
        self.primary.position = q

    def mid(self) -> float:
        return self.primary.mid()

    def best(self, side: int) -> float:
        return self.primary.best(side)

    def venue(self, name: str) -> Any:
        v = self.venues.get(name)
        if v is None:
            raise ExchangeError(f"routed venue {self.symbol}: market data for unknown venue {name!r} (routes {list(self.names)})")
        return v

    # ------------------------------------------------------------------ market data
    def on_venue_message(self, msg: VenueMsg) -> None:
        feed(self.venue(msg.venue), msg.msg)
        self._pull()

    # the executor's plain hooks: a routed instrument's data must say which venue it is from
    def _unrouted(self, *_: Any) -> None:
        raise ExchangeError(f"routed venue {self.symbol}: market data without a venue (send VenueMsg)")

    on_snapshot = on_diff = on_trade = on_gap = _unrouted

    def advance(self, ts: int) -> None:
        for v in self.venues.values():
            v.advance(ts)
        self._pull()

    # ------------------------------------------------------------------ orders
    def open_orders(self) -> list[RoutedChild]:
        return [o for o in self.orders.values() if o.status not in FINAL]

    def submit(self, ts: int, req: OrderRequest) -> RoutedChild:
        known = self.orders.get(req.client_id)
        if known is not None:
            return known
        child = RoutedChild(req, leaves=abs(req.qty))
        self.orders[req.client_id] = child
        marketable = req.kind == "market" or req.tif in ("IOC", "FOK")
        if marketable and not req.reduce_only:
            plan_legs = self._plan(req)
        else:
            why = ("reduce-only: positions are per venue" if req.reduce_only
                   else f"resting {req.tif} limit: queue priority is per venue")
            plan_legs = [(0, req.qty, req.price, req.kind, req.tif, f"{why}; whole to the primary venue")]
        if not plan_legs:
            self._finish(child, ts, "rejected", "no venue has size within the limit and the per-venue limits")
            return child
        sends = []
        for k, qty, price, kind, tif, reason in plan_legs:
            name = self.names[k]
            leg_id = f"{req.client_id}.{k}"
            if len(leg_id) > MAX_CLIENT_ID:
                raise ExchangeError(f"leg id {leg_id!r} exceeds {MAX_CLIENT_ID} characters; shorten serving.client_id_prefix")
            leg_req = OrderRequest(req.instrument, req.index, qty, leg_id, req.t_decision, kind=kind,  # type: ignore[arg-type]
                                   price=price, tif=tif, reduce_only=req.reduce_only,  # type: ignore[arg-type]
                                   expire_ns=req.expire_ns, parent_id=req.parent_id)
            rec = LegRecord(req.client_id, leg_id, req.parent_id, ts, name, qty, price, reason)
            child.legs[name] = leg_id
            self.legs.append(rec)
            self._leg_of[leg_id] = (child, rec)
            sends.append((name, leg_req))
        for name, leg_req in sends:  # after every leg is known: a fill at once finds its child
            self.venues[name].submit(ts, leg_req)
        self._pull()
        return child

    def cancel(self, ts: int, client_id: str) -> None:
        child = self.orders.get(client_id)
        if child is None:
            raise ExchangeError(f"cancel of unknown order {client_id!r}")
        if child.status in FINAL or child.cancel_ts is not None:
            return
        child.cancel_ts = ts
        for name, leg_id in child.legs.items():
            v = self.venues[name]
            o = v.orders.get(leg_id)
            if o is not None and o.status not in FINAL:
                v.cancel(ts, leg_id)
        self._pull()

    # ------------------------------------------------------------------ reports
    def route_report(self, parent_id: str) -> list[dict[str, Any]]:
        """Every leg of ``parent_id``'s children: venue, planned and filled size, price, fee, why."""
        return [leg.as_dict() for leg in self.legs if leg.parent_id == parent_id]

    # ------------------------------------------------------------------ internals
    def _plan(self, req: OrderRequest) -> list[tuple[int, float, float | None, str, str, str]]:
        books = {}
        for name, v in self.venues.items():
            refresh = getattr(v, "refresh_book", None)
            if refresh is not None:
                refresh()
            depth = getattr(v, "takeable", None)  # a simulator: net of what our takers removed
            books[name] = ((depth(BID, req.qty), depth(ASK, req.qty)) if depth is not None else
                           (_enough(v.book, BID, req.qty), _enough(v.book, ASK, req.qty)))
        vbs = [b if b.lot > 0 or self.lot <= 0 else replace(b, lot=self.lot)
               for b in venue_books(self.cfg, self.symbol, books)]
        plan = route(req.qty, vbs, req.price if req.kind == "limit" else None)
        tif = "FOK" if req.tif == "FOK" else "IOC"
        out = []
        for leg in plan.legs:
            why = leg.reason
            if plan.unfilled > 1e-12:
                why += f"; {plan.unfilled:g} not routed (visible depth or per-venue limits)"
            out.append((self.names.index(leg.venue), leg.qty, leg.worst_price, "limit", tif, why))
        return out

    def _pull(self) -> None:
        """Translate the venues' leg fills and final states into the children's."""
        for name, v in self.venues.items():
            fills = v.fills
            while self._nf[name] < len(fills):
                f = fills[self._nf[name]]
                self._nf[name] += 1
                hit = self._leg_of.get(f.client_id)
                if hit is None:
                    continue
                child, rec = hit
                q = abs(f.qty)
                child.filled += q
                child.leaves = max(child.leaves - q, 0.0)
                child.notional += q * f.price
                rec.filled += f.qty
                rec.notional += q * f.price
                rec.fee += f.fee
                self.fills.append(replace(f, client_id=child.req.client_id))
        touched: dict[str, tuple[RoutedChild, int]] = {}
        for name, v in self.venues.items():  # after every venue's fills: a child ends with all of them
            ups = v.updates
            while self._nu[name] < len(ups):
                u = ups[self._nu[name]]
                self._nu[name] += 1
                hit = self._leg_of.get(u.client_id)
                if hit is None or u.status not in FINAL:
                    continue
                child, rec = hit
                rec.status = u.status + (f" ({u.reason})" if u.reason else "")
                touched[child.req.client_id] = (child, max(u.ts, touched.get(child.req.client_id, (child, u.ts))[1]))
        for child, ts in touched.values():  # every leg's state known: end the child when all are final
            if child.status in FINAL or not all(self.venues[n].orders[lid].status in FINAL
                                                for n, lid in child.legs.items()):
                continue
            if child.filled >= abs(child.req.qty) - 1e-9 * max(abs(child.req.qty), 1.0):
                self._finish(child, ts, "filled")
            elif child.cancel_ts is not None:
                self._finish(child, ts, "cancelled", "cancel request")
            elif child.filled == 0.0 and all(self.venues[n].orders[lid].status == "rejected"
                                             for n, lid in child.legs.items()):
                self._finish(child, ts, "rejected", "; ".join(
                    f"{r.venue}: {r.status}" for r in self.legs if r.client_id == child.req.client_id))
            else:
                self._finish(child, ts, "expired", "legs ended with size unfilled")

    def _finish(self, child: RoutedChild, ts: int, status: OrderStatus, reason: str = "") -> None:
        child.status = status
        if status == "filled":
            child.leaves = 0.0
        self.updates.append(OrderUpdate(child.req.client_id, ts, status, reason))


def is_routed(cfg: ExecutionConfig, symbol: str) -> bool:
    """``symbol`` is split across venues (``execution.routes`` lists at least one for it)."""
    return bool(cfg.routes.get(symbol))


__all__ = ["LegRecord", "RoutedVenue", "VenueMsg", "is_routed"]
