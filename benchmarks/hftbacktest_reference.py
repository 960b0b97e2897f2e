"""An independent, pure-Python reference of hftbacktest's queue-position rules for passive orders,
written from its documented models (``RiskAdverseQueueModel``, ``ProbQueueModel`` with
``PowerProbQueueFunc``) and its ``PartialFillExchange`` matching, to cross-check
:class:`dea.execution.queue.LimitOrderSimulator` on the same capture.

hftbacktest itself cannot be installed next to this project's pins (2.4.4 needs numpy < 2.3 and
numba ~= 0.61), so the rules are restated here, deliberately in hftbacktest's own terms and event
granularity rather than DEA's:

- a new order's queue ahead is the level's depth when it is accepted;
- a trade at its price: ``front -= qty`` (probability models also add ``qty`` to the trades seen
  since the level's last depth update); it fills when ``round(front / lot) < 0``, by
  ``min(ceil(-front / lot) * lot, trade qty, leaves)``; a trade through its price fills it whole;
- a depth change of its level from ``prev`` to ``new``: risk-averse ``front = min(front, new)``;
  probability models ``chg = prev - new - traded`` (traded reset), growth keeps ``front`` (capped
  at ``new``), a decrease moves ``front`` by ``est = front - (1 - p) chg + min(back - p chg, 0)``
  with ``back = prev - front`` and ``p = f(back) / (f(back) + f(front))``, ``f(x) = x ** n``
  (non-finite ``p`` -> 1), ``front = min(est, new)``;
- every depth row is processed on its own (hftbacktest's row-per-level feed): after each, a
  best bid at or above a resting sell (best ask at or below a resting buy) fills it whole.

:func:`cross_check` runs the same touch probes through both on one capture (``python -m
benchmarks execution`` prints its figures; ``tests/execution/test_hftbacktest_reference.py``
holds them equal). Benchmark and test support, not part of the ``dea`` package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from collections.abc import Sequence

from dea.execution.replay import EV_DIFF, EV_GAP, EV_SNAPSHOT, BookMsg, TradeMsg


@dataclass
class RefOrder:
    oid: str
    side: int  # +1 buy, -1 sell
    price: float
    leaves: float
    front: float
    expire_ns: int
    traded: float = 0.0
    fills: list[tuple[int, float]] = field(default_factory=list)
    done: bool = False


class RefExchange:
    """One instrument's book plus passive orders under hftbacktest's rules (zero latency)."""

    def __init__(self, model: str, n: float = 1.0, lot: float = 0.001) -> None:
        if model not in ("risk_averse", "power"):
            raise ValueError(model)
        self.model, self.n, self.lot = model, n, lot
        self.book: dict[int, dict[float, float]] = {1: {}, -1: {}}
        self.orders: list[RefOrder] = []

    # ------------------------------------------------------------------ orders
    def post(self, ts: int, oid: str, side: int, price: float, qty: float, expire_ns: int) -> RefOrder:
        o = RefOrder(oid, side, price, qty, self.book[side].get(price, 0.0), expire_ns)
        self.orders.append(o)
        return o

    def best(self, side: int) -> float:
        lv = self.book[side]
        if not lv:
            return math.nan
        return max(lv) if side > 0 else min(lv)

    # ------------------------------------------------------------------ market data
    def on(self, msg: BookMsg | TradeMsg) -> None:
        self._expire(msg.ts)
        if isinstance(msg, TradeMsg):
            self._trade(msg.ts, msg.price, msg.size, msg.side)
        elif msg.kind == EV_SNAPSHOT:
            self.book = {1: {}, -1: {}}
            for side, levels in ((1, msg.bids), (-1, msg.asks)):
                for p, q in levels:
                    self._level(msg.ts, side, p, q)
        elif msg.kind == EV_DIFF:
            for side, levels in ((1, msg.bids), (-1, msg.asks)):
                for p, q in levels:
                    self._level(msg.ts, side, p, q)
        elif msg.kind == EV_GAP:
            self.book = {1: {}, -1: {}}

    def _live(self) -> list[RefOrder]:
        return [o for o in self.orders if not o.done]

    def _expire(self, ts: int) -> None:
        for o in self._live():
            if o.expire_ns <= ts:
                o.done = True

    def _fill(self, o: RefOrder, ts: int, q: float) -> None:
        q = min(q, o.leaves)
        if q <= 0.0:
            return
        o.leaves -= q
        o.fills.append((ts, q))
        if o.leaves <= 1e-12:
            o.done = True

    def _trade(self, ts: int, price: float, qty: float, aggressor: int) -> None:
        resting = -aggressor
        for o in self._live():
            if o.side != resting:
                continue
            through = o.price > price if resting > 0 else o.price < price
            if through:
                self._fill(o, ts, o.leaves)
            elif o.price == price:
                o.front -= qty
                if self.model == "power":
                    o.traded += qty
                if round(o.front / self.lot) < 0:
                    self._fill(o, ts, min(math.ceil(-o.front / self.lot - 1e-9) * self.lot, qty, o.leaves))

    def _level(self, ts: int, side: int, price: float, new: float) -> None:
        prev = self.book[side].get(price, 0.0)
        for o in self._live():
            if o.side == side and o.price == price:
                o.front = self._depth(o, prev, new)
        if new > 0.0:
            self.book[side][price] = new
            # the best moves through a resting order only when a level appears at or beyond it
            for o in self._live():
                if o.side == -side and (o.price <= price if side > 0 else o.price >= price):
                    self._fill(o, ts, o.leaves)
        else:
            self.book[side].pop(price, None)

    def _depth(self, o: RefOrder, prev: float, new: float) -> float:
        if self.model == "risk_averse":
            return min(o.front, new)
        chg = prev - new - o.traded
        o.traded = 0.0
        if chg < 0.0:
            return min(o.front, new)
        front, back = o.front, prev - o.front
        try:
            fb, ff = back**self.n, front**self.n
            p = fb / (fb + ff)
        except (ZeroDivisionError, ValueError):
            p = math.nan
        if isinstance(p, complex) or not math.isfinite(p):
            p = 1.0
        est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
        return min(est, new)


def cross_check(
    messages: Sequence[BookMsg | TradeMsg],
    model: str,
    n: float = 1.0,
    *,
    lot: float = 0.001,
    every_ns: int = 5_000_000_000,
    ttl_ns: int = 30_000_000_000,
    size: float = 0.01,
    markout_ns: int = 5_000_000_000,
) -> dict:
    """The same probes (a buy at the bid and a sell at the ask every ``every_ns``, living
    ``ttl_ns``) in DEA's simulator and in this reference: per-probe agreement of every fill
    (time and size) and both sides' :class:`dea.execution.passive.PassiveStats`."""
    from dea.execution.order_types import OrderRequest
    from dea.execution.passive import probe_stats
    from dea.execution.queue import LimitOrderSimulator, QueueModel
    from dea.execution.replay import feed, mid_path

    sim = LimitOrderSimulator(model=QueueModel(model, n), lot=lot)
    ref = RefExchange(model, n, lot)
    last = messages[-1].ts if messages else 0
    nxt = None
    posted: list[tuple[str, int]] = []
    for m in messages:
        feed(sim, m)
        ref.on(m)
        nxt = m.ts if nxt is None else nxt
        if m.ts >= nxt and m.ts + ttl_ns + markout_ns <= last and sim.valid:
            for side in (1, -1):
                px = sim.best(side)
                if px != ref.best(side):
                    raise AssertionError(f"books differ at {m.ts}: DEA {px}, reference {ref.best(side)}")
                cid = f"x{len(posted)}"
                sim.submit(m.ts, OrderRequest("X", 0, side * size, cid, m.ts, kind="limit", price=px, tif="GTX",
                                              expire_ns=m.ts + ttl_ns))
                ref.post(m.ts, cid, side, px, size, m.ts + ttl_ns)
                posted.append((cid, m.ts))
            nxt = m.ts + every_ns
    dea_fills: dict[str, list[tuple[int, float]]] = {}
    for f in sim.fills:
        dea_fills.setdefault(f.client_id, []).append((f.ts, abs(f.qty)))
    by_id = {o.oid: o for o in ref.orders}
    same = sum(1 for cid, _ in posted if _same(dea_fills.get(cid, []), by_id[cid].fills))
    path = mid_path(messages)
    name = "risk_averse" if model == "risk_averse" else f"power{n:g}"
    full = {cid: abs(sum(q for _, q in fl) - size) < 1e-9 for cid, fl in dea_fills.items()}
    dea = probe_stats(name, [(c, t, full.get(c, False)) for c, t in posted],
                      [(f.client_id, f.ts, f.qty, f.price) for f in sim.fills], path, markout_ns)
    ref_fills = [(o.oid, ts, o.side * q, o.price) for o in ref.orders for ts, q in o.fills]
    refs = probe_stats(name, [(c, t, abs(sum(q for _, q in by_id[c].fills) - size) < 1e-9) for c, t in posted],
                       sorted(ref_fills, key=lambda x: x[1]), path, markout_ns)
    return {"probes": len(posted), "identical": same, "dea": dea, "reference": refs}


def _same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(ta == tb and abs(qa - qb) < 1e-9 for (ta, qa), (tb, qb) in zip(a, b))
