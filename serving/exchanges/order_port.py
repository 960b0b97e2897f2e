"""A real venue behind the simulator's interface, so :class:`dea.execution.replay.Executor`
works the same schedules (TWAP, POV, passive-then-aggressive) through the ccxt adapter.

Why: the executor talks to "a venue with a book": ``submit``/``cancel``/``advance``, the fills
and status updates it produced, the orders with their filled and unfilled size, and the book for
the touch. :class:`LimitOrderSimulator` is one; :class:`VenueOrderPort` is another, backed by
:class:`~serving.exchanges.ccxt_exchange.CcxtExchange` (typed orders, fills from
``fetch_my_trades``, final sizes from ``fetch_order``) and the live L2 book of the feed.

A child's final size comes from the venue's own order record, never from fills seen so far, so
a fill reported late cannot make the schedule resend size that already executed. Polling is per
:meth:`advance` (one ``fetch_my_trades``, plus one ``fetch_order`` per order awaiting its end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dea.book.l2 import ASK, BID, L2Book
from dea.execution.order_types import OrderRequest
from dea.execution.queue import FINAL, OrderStatus, OrderUpdate, SimFill

_VENUE_FINAL = {"closed": "filled", "canceled": "cancelled", "cancelled": "cancelled", "expired": "expired",
                "rejected": "rejected"}


@dataclass
class PortOrder:
    req: OrderRequest
    status: OrderStatus = "open"
    filled: float = 0.0
    leaves: float = 0.0
    cancel_ts: int | None = None
    expiring: bool = False  # the cancel was sent because the order's expiry passed


class VenueOrderPort:
    """One instrument at a venue adapter (anything with ``submit_order``, ``cancel_order``,
    ``order_state`` and ``poll_fills``, such as :class:`CcxtExchange`)."""

    def __init__(self, adapter, instrument: str, book: L2Book | None = None, *,  # noqa: ANN001
                 snapshot_depth: int | None = None) -> None:
        """``snapshot_depth``: the venue has no live feed here (a routed venue other than the
        feed's): :meth:`refresh_book` loads its book by REST (``adapter.order_book``) before each
        routing plan."""
        self.adapter = adapter
        self.snapshot_depth = snapshot_depth
        self.instrument = instrument
        self.book = book if book is not None else L2Book()
        self.orders: dict[str, PortOrder] = {}
        self.fills: list[SimFill] = []
        self.updates: list[OrderUpdate] = []
        self.now: int | None = None
        self._seen: set[str] = set()
        self.position = 0.0

    def refresh_book(self) -> None:
        if self.snapshot_depth is not None:
            bids, asks = self.adapter.order_book(self.instrument, self.snapshot_depth)
            self.book.load(bids, asks)

    # -- the simulator's interface ------------------------------------------------------------------
    def submit(self, ts: int, req: OrderRequest) -> PortOrder:
        known = self.orders.get(req.client_id)
        if known is not None:
            return known
        o = PortOrder(req, leaves=abs(req.qty))
        self.orders[req.client_id] = o
        ack = self.adapter.submit_order(req)
        self.now = ts
        if ack.status == "rejected" and ack.venue_id is None:
            self._final(o, ts, "rejected", ack.reason or "rejected by the venue")
        self.advance(ts)
        return o

    def cancel(self, ts: int, client_id: str) -> None:
        o = self.orders[client_id]
        if o.status in FINAL or o.cancel_ts is not None:
            return
        o.cancel_ts = ts
        self.adapter.cancel_order(client_id, self.instrument)
        self.advance(ts)

    # market data: the book is the feed's (shared L2Book), updated by its owner; the executor
    # feeds every message to its venue, so these are the simulator's hooks doing nothing here
    def on_snapshot(self, ts: int, bids, asks) -> None:  # noqa: ANN001
        self.now = ts if self.now is None else max(self.now, ts)

    def on_diff(self, ts: int, bids, asks) -> None:  # noqa: ANN001
        self.now = ts if self.now is None else max(self.now, ts)

    def on_gap(self, ts: int) -> None:
        self.now = ts if self.now is None else max(self.now, ts)

    def on_trade(self, ts: int, price: float, size: float, aggressor: int) -> None:
        self.now = ts if self.now is None else max(self.now, ts)

    def advance(self, ts: int) -> None:
        """Poll the venue: new fills, then the end state of every order that may have ended.

        Expiry is kept here, on the caller's clock: an order whose ``expire_ns`` has passed is
        cancelled at the venue and ends ``expired`` (venue-side GTD is not portable: Binance,
        for one, refuses a goodTillDate less than 600 s ahead)."""
        self.now = ts if self.now is None else max(self.now, ts)
        for o in list(self.orders.values()):
            if o.status not in FINAL and o.cancel_ts is None and o.req.expire_ns is not None and o.req.expire_ns <= ts:
                o.cancel_ts, o.expiring = ts, True
                self.adapter.cancel_order(o.req.client_id, self.instrument)
        mid = self.mid()
        for f in self.adapter.poll_fills(ts):
            if f.fill_id in self._seen or f.client_id not in self.orders:
                continue
            self._seen.add(f.fill_id)
            o = self.orders[f.client_id]
            maker = bool(f.maker) if f.maker is not None else False
            touch = f.price if maker else self.best(ASK if f.qty > 0 else BID)
            self.fills.append(SimFill(f.client_id, o.req.parent_id, f.ts, f.qty, f.price, maker, f.fee, mid,
                                      touch if touch == touch else f.price))
            self.position += f.qty
        for o in [o for o in self.orders.values() if o.status not in FINAL]:
            status, filled, remaining = self.adapter.order_state(o.req.client_id, self.instrument)
            seen = sum(abs(f.qty) for f in self.fills if f.client_id == o.req.client_id)
            if filled > seen + 1e-12:
                continue  # the venue filled more than we have fills for: wait for them
            o.filled, o.leaves = filled, max(abs(o.req.qty) - filled, 0.0)
            end = _VENUE_FINAL.get(status)
            if end == "cancelled" and o.expiring:
                end = "expired"
            if end is not None:
                self._final(o, ts, end, "expiry reached" if end == "expired" else "")  # type: ignore[arg-type]

    def open_orders(self) -> list[PortOrder]:
        return [o for o in self.orders.values() if o.status not in FINAL]

    def mid(self) -> float:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        return 0.5 * (bb[0] + ba[0]) if bb and ba else math.nan

    def best(self, side: int) -> float:
        lv = self.book.best_bid() if side == BID else self.book.best_ask()
        return math.nan if lv is None else lv[0]

    def _final(self, o: PortOrder, ts: int, status: OrderStatus, reason: str = "") -> None:
        o.status = status
        if status != "filled":
            o.leaves = max(abs(o.req.qty) - o.filled, 0.0)
        else:
            o.leaves = 0.0
        self.updates.append(OrderUpdate(o.req.client_id, ts, status, reason))
