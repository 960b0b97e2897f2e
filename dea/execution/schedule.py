"""Rebalance execution: a target change (the parent order) worked as a child-order schedule.

Why: sending the whole change as one market order at the decision instant pays the full book
walk; spreading it over time (TWAP), in proportion to the market's own volume (POV), or resting
at the touch first and crossing only what is left after a timeout (passive-then-aggressive)
trades impact against timing risk. The algorithm is chosen in the ``execution`` config section.

Every child passes ``bound`` (the risk engine's check for that child, see :func:`risk_bound`)
before it is sent, and :meth:`ParentExecution.cancel` stops a parent cleanly when the next
decision changes the target: its working children are cancelled, and the caller sizes the new
parent from position plus what is still in flight. Child client ids are deterministic
(:func:`dea.execution.order_types.child_client_id`), so a schedule regenerated after a restart
sends the same ids and a venue that already has one answers with it instead of trading twice.

Definitions (tested in ``tests/execution/test_schedules.py``):

- ``immediate``: one market order for the parent at its start;
- ``twap``: ``slices`` market children at ``t0 + k * horizon / slices`` (k = 0..slices-1); child
  k brings the cumulative quantity to ``floor_lot(Q * (k + 1) / slices)`` (the last to Q);
- ``pov``: every ``pov_interval`` the cumulative quantity sent is raised to
  ``floor_lot(participation * V)`` where V is the public volume traded since t0 (own fills are not
  in the public tape of a replay); at ``t0 + horizon`` the rest is sent at market;
- ``passive_aggressive``: a post-only limit at the near touch for the whole parent at t0; at
  ``t0 + passive_timeout`` it is cancelled and, once the cancel is final, the unfilled rest goes
  at market.

Numpy-free (serving uses it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig
from dea.execution.order_types import OrderRequest, child_client_id, passive_price

__all__ = ["ExecutionConfig", "MarketView", "ParentExecution", "ParentOrder", "risk_bound"]


@dataclass(frozen=True, slots=True)
class ParentOrder:
    """A target change to be worked: ``qty`` signed base units from ``t_start``."""

    parent_id: str
    instrument: str
    index: int
    qty: float
    t_start: int
    arrival_mid: float
    id_prefix: str = "dea"


@dataclass(frozen=True, slots=True)
class MarketView:
    """What a schedule looks at when it wakes: the touch and the public volume so far."""

    ts: int
    best_bid: float
    best_ask: float
    volume: float  # cumulative public traded size (base units) of the instrument


@dataclass(frozen=True, slots=True)
class Submit:
    req: OrderRequest


@dataclass(frozen=True, slots=True)
class Cancel:
    client_id: str


Action = Submit | Cancel
Bound = Callable[[OrderRequest], float]
"""Risk check of one child: returns the quantity allowed (same sign, |allowed| <= |qty|; 0 = none)."""


def _no_bound(req: OrderRequest) -> float:
    return req.qty


def floor_lot(q: float, lot: float) -> float:
    """``q`` (>= 0) rounded down to the lot (tolerant of float noise)."""
    if lot <= 0.0:
        return q
    return math.floor(q / lot + 1e-9) * lot


@dataclass
class ParentExecution:
    """Works one parent: call :meth:`wake` at or after :attr:`next_wake` (and on fills)."""

    parent: ParentOrder
    cfg: ExecutionConfig
    lot: float = 0.0
    tick: float = 0.0
    bound: Bound = _no_bound
    sent: float = 0.0  # absolute quantity sent in children (after the risk bound)
    executed: float = 0.0  # absolute quantity filled
    children: list[OrderRequest] = field(default_factory=list)
    open_ids: set[str] = field(default_factory=set)
    status: Literal["working", "done", "cancelled"] = "working"
    next_wake: int | None = None
    clipped: float = 0.0  # quantity the risk bound removed
    _k: int = 0
    _vol0: float | None = None
    _passive_id: str | None = None
    _crossing: bool = False
    _cancel_sent: bool = False

    def __post_init__(self) -> None:
        if self.parent.qty == 0.0:
            raise ExchangeError(f"parent {self.parent.parent_id}: zero quantity")
        self.next_wake = self.parent.t_start

    @property
    def side(self) -> int:
        return 1 if self.parent.qty > 0 else -1

    @property
    def total(self) -> float:
        return abs(self.parent.qty)

    @property
    def remaining(self) -> float:
        """Quantity neither filled nor still working (what may still be sent)."""
        return max(self.total - self.sent, 0.0)

    # ------------------------------------------------------------------ events from the venue
    def on_fill(self, client_id: str, qty: float) -> None:
        self.executed += abs(qty)

    def on_final(self, client_id: str, filled: float, leaves: float) -> None:
        """A child reached a final state with ``leaves`` unfilled: that size may be resent."""
        if client_id in self.open_ids:
            self.open_ids.discard(client_id)
            self.sent -= leaves

    # ------------------------------------------------------------------ the schedule
    def wake(self, view: MarketView) -> list[Action]:
        if self.status != "working":
            return []
        now = view.ts
        algo = self.cfg.algo
        out: list[Action] = []
        p0 = self.parent.t_start
        if algo == "immediate":
            out += self._send(now, self.remaining, "market")
            self.next_wake = None
        elif algo == "twap":
            n = self.cfg.slices
            step = self.cfg.ns("horizon") / n
            while self._k < n and p0 + self._k * step <= now:
                self._k += 1
                goal = self.total if self._k == n else floor_lot(self.total * self._k / n, self.lot)
                out += self._send(now, goal - self.sent, "market")
            self.next_wake = None if self._k >= n else p0 + math.ceil(self._k * step)
        elif algo == "pov":
            if self._vol0 is None:
                self._vol0 = view.volume
            deadline = p0 + self.cfg.ns("horizon")
            if now >= deadline:
                out += self._send(now, self.remaining, "market")
                self.next_wake = None
            else:
                goal = min(self.total, floor_lot(self.cfg.participation * (view.volume - self._vol0), self.lot))
                out += self._send(now, goal - self.sent, "market")
                self.next_wake = min(now + self.cfg.ns("pov_interval"), deadline)
        elif algo == "passive_aggressive":
            deadline = p0 + self.cfg.ns("passive_timeout")
            if self._passive_id is None:
                touch = view.best_bid if self.side > 0 else view.best_ask
                if touch == touch:
                    out += self._send(now, self.remaining, "limit", passive_price(touch, self.tick, self.side))
                    self._passive_id = self.children[-1].client_id if out else ""
                self.next_wake = deadline
            elif now >= deadline:
                if self._passive_id in self.open_ids:
                    if not self._cancel_sent:
                        self._cancel_sent = True
                        out.append(Cancel(self._passive_id))
                    self.next_wake = now  # come back when the cancel is final
                elif not self._crossing:
                    self._crossing = True
                    out += self._send(now, self.remaining, "market")
                    self.next_wake = None
        else:  # pragma: no cover - the config's Literal refuses it
            raise ExchangeError(f"unknown execution algo {algo!r}")
        if self.next_wake is None and not self.open_ids and self.remaining <= 0.0:
            self.status = "done"
        return out

    def is_complete(self) -> bool:
        """All sent, nothing working (the parent may be partly unfilled if the book ran out)."""
        return self.next_wake is None and not self.open_ids

    def cancel(self) -> list[Action]:
        """Stop working this parent (the target changed): cancel every working child."""
        self.status = "cancelled"
        self.next_wake = None
        return [Cancel(cid) for cid in sorted(self.open_ids)]

    def _send(self, now: int, qty: float, kind: str, price: float | None = None) -> list[Action]:
        qty = floor_lot(min(max(qty, 0.0), self.remaining), self.lot) if self.lot > 0 else min(max(qty, 0.0), self.remaining)
        if qty <= 1e-12:
            return []
        seq = len(self.children)
        p = self.parent
        req = OrderRequest(
            p.instrument, p.index, self.side * qty, child_client_id(p.id_prefix, p.t_start, p.instrument, seq), now,
            kind=kind,  # type: ignore[arg-type]
            price=price, tif="GTX" if kind == "limit" else "GTC", parent_id=p.parent_id,
        )
        allowed = self.bound(req)
        if allowed * req.qty < 0 or abs(allowed) > abs(req.qty) + 1e-12:
            raise ExchangeError(f"risk bound returned {allowed} for child {req.client_id} of {req.qty}")
        allowed = floor_lot(abs(allowed), self.lot) if self.lot > 0 else abs(allowed)
        if allowed < qty:
            self.clipped += qty - allowed
        if allowed <= 1e-12:
            return []
        if allowed != qty:
            req = OrderRequest(req.instrument, req.index, self.side * allowed, req.client_id, now, kind=req.kind,
                               price=req.price, tif=req.tif, parent_id=req.parent_id)
        self.children.append(req)
        self.open_ids.add(req.client_id)
        self.sent += allowed
        return [Submit(req)]


def risk_bound(engine, index: int | None, position: Callable[[], Sequence[float]], pending: Callable[[], Sequence[float]],  # noqa: ANN001
               equity: Callable[[], float], prices: Callable[[], Sequence[float]],
               option_greeks: Callable[[float], Any] | None = None) -> Bound:
    """A :data:`Bound` that runs the risk engine (:class:`dea.risk.engine.RiskEngine`) on the
    exposure the child would leave (position + in flight + child) and allows only the part of the
    child the engine lets through. ``index`` None: the child's own instrument (one bound for a
    whole desk). ``pending`` must not already count the child (the desk's ``working``: orders at
    the venue, not the parent's unsent rest). ``option_greeks(equity)``: the ``option_greeks``
    the deciding engine counted (``{underlying: GreekExposure}`` of the options held, or None),
    so that a child meets the same ``risk.greeks`` budget as the decision (an options overlay).

    The engine is stateful (order-rate ring, covariance, drawdown peak): pass one of its own
    (same config), not the engine that decides targets, or every child would count as a
    decision there."""
    import numpy as np

    def check(req: OrderRequest) -> float:
        k = req.index if index is None else index
        px = np.asarray(prices(), dtype=np.float64)
        e = float(equity())
        held = np.asarray(position(), dtype=np.float64) + np.asarray(pending(), dtype=np.float64)
        if not (e > 0.0 and px[k] > 0.0):
            return 0.0
        cur = held * px / e
        tgt = cur.copy()
        tgt[k] = (held[k] + req.qty) * px[k] / e
        greeks = option_greeks(e) if option_greeks is not None else None
        allowed_w = float(engine.apply(req.t_decision, tgt, cur, e, prices=px, option_greeks=greeks).exposure[k])
        dq = allowed_w * e / px[k] - held[k]
        if dq * req.qty <= 0:
            return 0.0
        return math.copysign(min(abs(dq), abs(req.qty)), req.qty)

    return check
