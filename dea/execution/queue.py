"""Queue-aware limit-order simulator for one instrument, driven by L2 diffs and public trades.

Why: a market order's cost is a book walk, but a resting order's outcome is *whether and when*
it fills, which depends on how much size is queued ahead of it at its price. The model, the same
in the event replay (:mod:`dea.execution.replay`) and the paper venue
(:mod:`serving.exchanges.paper_orders`):

- an order reaches the venue ``submit_latency_ns`` after it is sent and joins the **back** of its
  level: the size ahead (``front``) is the public size at its price then;
- a public trade at its price advances it by the trade's size; a trade *through* its price (a
  sell below a resting buy) fills it entirely; the book moving through it (best ask at or below
  a resting buy) fills it entirely, as the venue would match them;
- a decrease of the level not explained by trades is a cancel, and the queue model says how much
  of it was ahead: ``power`` (hftbacktest's ``PowerProbQueueModel``: the share ahead is
  ``front^n / (front^n + back^n)``; n = 1 is proportional) or ``risk_averse`` (hftbacktest's
  ``RiskAdverseQueueModel``: cancels are all behind, the queue only shrinks by trades, and the
  size ahead never exceeds the level's size);
- when ``front`` goes below zero the excess fills the order (partial fills); cancels take
  effect ``cancel_latency_ns`` after they are sent (fills in between stand); expiry at the first
  event at or after ``expire_ns``.

Marketable orders (market, IOC, FOK, a crossing GTC) take the visible levels up to their limit
price as taker; the liquidity they take is held off the level until that level is next updated
by the feed (the replay's feed cannot know our trades). Post-only orders that would cross are
rejected; reduce-only orders are clipped to the position. Numpy-free (serving uses it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from dea.book.events import Level
from dea.book.l2 import ASK, BID, L2Book
from dea.errors import ExchangeError
from dea.execution.order_types import OrderRequest, clip_reduce_only

OrderStatus = Literal["pending", "open", "filled", "cancelled", "expired", "rejected"]
FINAL = frozenset(("filled", "cancelled", "expired", "rejected"))
#: a queue "consumed" by less than this (base units) is float noise of sizes that cancel exactly,
#: not a fill (hftbacktest rounds the queue to the lot for the same reason)
QTY_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class QueueModel:
    """How a level's cancels move an order's queue position (hftbacktest's two model families)."""

    kind: Literal["power", "risk_averse"] = "power"
    n: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("power", "risk_averse"):
            raise ExchangeError(f"queue model {self.kind!r} is not 'power' or 'risk_averse'")
        if not self.n > 0:
            raise ExchangeError(f"queue model exponent n must be > 0, got {self.n}")

    @property
    def name(self) -> str:
        return "risk_averse" if self.kind == "risk_averse" else f"power{self.n:g}"

    def on_depth(self, front: float, prev_qty: float, new_qty: float, traded: float) -> float:
        """New size ahead after the level went from ``prev_qty`` to ``new_qty``, of which
        ``traded`` was already counted from trades (hftbacktest ``ProbQueueModel.depth``)."""
        if self.kind == "risk_averse":
            return min(front, new_qty)
        chg = prev_qty - new_qty - traded
        if chg <= 0.0:  # growth (or all explained by trades): new size joins behind
            return min(front, new_qty)
        back = max(prev_qty - front, 0.0)
        fa, fb = max(front, 0.0) ** self.n, back**self.n
        ahead_share = fa / (fa + fb) if (fa + fb) > 0.0 else 1.0
        est = front - ahead_share * chg + min(back - (1.0 - ahead_share) * chg, 0.0)
        return min(max(est, 0.0), new_qty)


@dataclass(frozen=True, slots=True)
class SimFill:
    """An execution of a simulated order (``qty`` signed); ``mid`` is the mid just before it."""

    client_id: str
    parent_id: str
    ts: int
    qty: float
    price: float
    maker: bool
    fee: float
    mid: float
    touch: float  # best opposite price (takers) or own price (makers) at the fill


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A status change of a simulated order (what a venue reports)."""

    client_id: str
    ts: int
    status: OrderStatus
    reason: str = ""


@dataclass
class SimOrder:
    """A simulated order's live state."""

    req: OrderRequest
    sent_ts: int
    arrive_ts: int
    status: OrderStatus = "pending"
    leaves: float = 0.0  # absolute quantity still working
    filled: float = 0.0  # absolute quantity executed
    front: float = 0.0  # size queued ahead at its price
    traded_here: float = 0.0  # trade size at its level since the level's last depth update
    cancel_ts: int | None = None
    posted_ts: int | None = None
    notional: float = 0.0  # sum |q| * price of its fills

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled > 0 else math.nan


@dataclass
class LimitOrderSimulator:
    """One instrument's venue: a public L2 book plus our simulated orders."""

    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    model: QueueModel = field(default_factory=QueueModel)
    submit_latency_ns: int = 0
    cancel_latency_ns: int = 0
    position: float = 0.0
    lot: float = 0.0

    def __post_init__(self) -> None:
        if self.submit_latency_ns < 0 or self.cancel_latency_ns < 0:
            raise ExchangeError("simulator latencies must be >= 0")
        self.book = L2Book()
        self.orders: dict[str, SimOrder] = {}
        self.fills: list[SimFill] = []
        self.updates: list[OrderUpdate] = []
        self._working: list[SimOrder] = []  # pending or open, in send order
        self._taken: dict[tuple[int, float], float] = {}  # (side, price) -> size our takers removed
        self.now: int | None = None
        self.valid = False

    # ------------------------------------------------------------------ orders
    def submit(self, ts: int, req: OrderRequest) -> SimOrder:
        """Send ``req`` at ``ts``; idempotent on the client id (a re-send returns the order)."""
        known = self.orders.get(req.client_id)
        if known is not None:
            return known
        o = SimOrder(req, ts, ts + self.submit_latency_ns, leaves=abs(req.qty))
        self.orders[req.client_id] = o
        self._working.append(o)
        if self.submit_latency_ns == 0:
            self._arrive(o, ts)
        return o

    def cancel(self, ts: int, client_id: str) -> None:
        """Request a cancel at ``ts``; it takes effect after the cancel latency."""
        o = self.orders.get(client_id)
        if o is None:
            raise ExchangeError(f"cancel of unknown order {client_id!r}")
        if o.status in FINAL or o.cancel_ts is not None:
            return
        o.cancel_ts = ts + self.cancel_latency_ns
        if self.cancel_latency_ns == 0:
            self.advance(ts)

    def replace(self, ts: int, client_id: str, new: OrderRequest) -> SimOrder:
        """Cancel/replace: cancel ``client_id`` and send ``new`` (which queues at the back)."""
        self.cancel(ts, client_id)
        return self.submit(ts, new)

    def open_orders(self) -> list[SimOrder]:
        return [o for o in self._working if o.status in ("pending", "open")]

    # ------------------------------------------------------------------ market data
    def on_snapshot(self, ts: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.advance(ts)
        self.book.load(bids, asks)
        self._taken.clear()
        self.valid = True
        for o in self._resting():
            o.front = min(o.front, self._public(_side(o), o.req.price))
            o.traded_here = 0.0
        self._match_crossed(ts)

    def on_gap(self, ts: int) -> None:
        """The feed lost its book: no fills against it until the next snapshot."""
        self.advance(ts)
        self.book.clear()
        self.valid = False

    def on_diff(self, ts: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.advance(ts)
        bids, asks = list(bids), list(asks)
        resting = self._resting()
        if resting:
            by_level: dict[tuple[int, float], list[SimOrder]] = {}
            for o in resting:
                by_level.setdefault((_side(o), o.req.price), []).append(o)
            for side, levels in ((BID, bids), (ASK, asks)):
                for p, q in levels:
                    group = by_level.get((side, p))
                    if group:
                        prev = self._public(side, p)
                        for o in group:
                            o.front = self.model.on_depth(o.front, prev, q, o.traded_here)
                            o.traded_here = 0.0
        for p, _ in bids:
            self._taken.pop((BID, p), None)
        for p, _ in asks:
            self._taken.pop((ASK, p), None)
        self.book.apply(bids, asks)
        self._match_crossed(ts)

    def on_trade(self, ts: int, price: float, size: float, aggressor: int) -> None:
        """A public trade; ``aggressor`` +1 buy (hits asks), -1 sell (hits bids)."""
        self.advance(ts)
        resting_side = -aggressor
        mid = self.mid()
        for o in self._resting():
            if _side(o) != resting_side:
                continue
            lp = o.req.price
            through = (lp > price) if resting_side == BID else (lp < price)
            if through:
                self._fill(o, ts, o.leaves, lp, True, mid, lp)
            elif lp == price:
                o.front -= size
                o.traded_here += size
                if self.lot > 0.0:
                    # venue fills come in lots: the queue must be overrun by half a lot, the fill
                    # is the overrun rounded up to lots, at most this trade (hftbacktest's rule;
                    # the overrun is kept, the next trade at the level fills on from there)
                    if round(o.front / self.lot) < 0:
                        q = min(math.ceil(-o.front / self.lot - 1e-9) * self.lot, size, o.leaves)
                        self._fill(o, ts, q, lp, True, mid, lp)
                elif o.front < -QTY_EPS:
                    q = min(o.leaves, -o.front)
                    o.front = 0.0
                    self._fill(o, ts, q, lp, True, mid, lp)
                elif o.front < 0.0:  # float noise of a queue consumed exactly: at the front, not filled
                    o.front = 0.0

    def advance(self, ts: int) -> None:
        """Process arrivals, cancels and expiries due at or before ``ts``."""
        self.now = ts if self.now is None else max(self.now, ts)
        if not self._working:
            return
        for o in list(self._working):
            if o.status == "pending" and o.arrive_ts <= ts:
                self._arrive(o, o.arrive_ts)
            if o.status == "open":
                if o.cancel_ts is not None and o.cancel_ts <= ts:
                    self._final(o, o.cancel_ts, "cancelled", "cancel request")
                elif o.req.expire_ns is not None and o.req.expire_ns <= ts:
                    self._final(o, o.req.expire_ns, "expired", "expiry reached")
            elif o.status == "pending" and o.cancel_ts is not None and o.cancel_ts <= ts and o.arrive_ts > o.cancel_ts:
                self._final(o, o.cancel_ts, "cancelled", "cancelled before it reached the venue")
        self._working = [o for o in self._working if o.status not in FINAL]

    # ------------------------------------------------------------------ reads
    def mid(self) -> float:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None:
            return math.nan
        return 0.5 * (bb[0] + ba[0])

    def best(self, side: int) -> float:
        lv = self.book.best_bid() if side == BID else self.book.best_ask()
        return math.nan if lv is None else lv[0]

    def takeable(self, side: int, qty: float) -> list[Level]:
        """The best levels of book ``side`` up to ``|qty|`` of size, less what our takers already
        removed since the level's last update (what a router may plan on at this venue)."""
        out, need = [], abs(qty)
        for p, q in self._available(side, math.inf if side == ASK else 0.0, 1 if side == ASK else -1):
            out.append((p, q))
            need -= q
            if need <= 0.0:
                break
        return out

    # ------------------------------------------------------------------ internals
    def _resting(self) -> list[SimOrder]:
        return [o for o in self._working if o.status == "open"]

    def _public(self, side: int, price: float | None) -> float:
        if price is None:
            return 0.0
        sizes = self.book._bids if side == BID else self.book._asks  # noqa: SLF001 - same package
        return max(sizes.get(price, 0.0) - self._taken.get((side, price), 0.0), 0.0)

    def _arrive(self, o: SimOrder, ts: int) -> None:
        req = o.req
        if o.cancel_ts is not None and o.cancel_ts <= ts:
            self._final(o, o.cancel_ts, "cancelled", "cancelled before it reached the venue")
            return
        if req.reduce_only:
            allowed = abs(clip_reduce_only(req.qty, self.position))
            if allowed <= 0.0:
                self._final(o, ts, "rejected", f"reduce-only {req.side_name} with position {self.position}")
                return
            o.leaves = min(o.leaves, allowed)
        if not self.valid:
            self._final(o, ts, "rejected", "no valid book at the venue")
            return
        side = req.side
        opp = ASK if side > 0 else BID
        best_opp = self.best(opp)
        limit = req.price if req.kind == "limit" else (math.inf if side > 0 else 0.0)
        crosses = best_opp == best_opp and ((best_opp <= limit) if side > 0 else (best_opp >= limit))
        if req.tif == "GTX" and crosses:
            self._final(o, ts, "rejected", f"post-only {req.side_name} at {req.price} would take liquidity at {best_opp}")
            return
        takeable = self._available(opp, limit, side) if crosses else []
        if req.tif == "FOK" and sum(q for _, q in takeable) + 1e-12 < o.leaves:
            self._final(o, ts, "expired", "fill-or-kill: not enough size within the limit")
            return
        if crosses:
            mid = self.mid()
            for p, q in takeable:
                take = min(q, o.leaves)
                if take <= 0.0:
                    break
                self._taken[(opp, p)] = self._taken.get((opp, p), 0.0) + take
                self._fill(o, ts, take, p, False, mid, best_opp)
                if o.status in FINAL:
                    return
        if o.leaves <= 0.0:
            return
        if req.kind == "market" or req.tif in ("IOC", "FOK"):
            self._final(o, ts, "expired" if req.tif in ("IOC", "FOK") else "cancelled",
                        "no more size within the limit" if req.kind == "limit" else "book exhausted")
            return
        o.status = "open"
        o.posted_ts = ts
        o.front = self._public(_side(o), req.price)
        o.traded_here = 0.0
        self.updates.append(OrderUpdate(req.client_id, ts, "open"))

    def _available(self, side: int, limit: float, taker_side: int) -> list[Level]:
        out = []
        for p, q in self.book.walk(side):
            if (taker_side > 0 and p > limit) or (taker_side < 0 and p < limit):
                break
            left = q - self._taken.get((side, p), 0.0)
            if left > 0.0:
                out.append((p, left))
        return out

    def _match_crossed(self, ts: int) -> None:
        """Resting orders the book has moved through fill in full at their price."""
        if not self._working:
            return
        bb, ba = self.best(BID), self.best(ASK)
        mid = self.mid()
        for o in self._resting():
            lp = o.req.price
            if (o.req.side > 0 and ba == ba and ba <= lp) or (o.req.side < 0 and bb == bb and bb >= lp):
                self._fill(o, ts, o.leaves, lp, True, mid, lp)

    def _fill(self, o: SimOrder, ts: int, q: float, price: float, maker: bool, mid: float, touch: float) -> None:
        if q <= 0.0:
            return
        q = min(q, o.leaves)
        signed = q if o.req.side > 0 else -q
        fee = q * price * (self.maker_fee if maker else self.taker_fee)
        o.leaves -= q
        o.filled += q
        o.notional += q * price
        self.position += signed
        self.fills.append(SimFill(o.req.client_id, o.req.parent_id, ts, signed, price, maker, fee, mid, touch))
        if o.leaves <= 1e-12 * max(o.filled, 1.0):
            o.leaves = 0.0
            self._final(o, ts, "filled")
        else:
            self.updates.append(OrderUpdate(o.req.client_id, ts, "open", "partially filled"))

    def _final(self, o: SimOrder, ts: int, status: OrderStatus, reason: str = "") -> None:
        o.status = status
        self.updates.append(OrderUpdate(o.req.client_id, ts, status, reason))


def _side(o: SimOrder) -> int:
    """Book side an order rests on (BID for buys, ASK for sells)."""
    return BID if o.req.side > 0 else ASK
