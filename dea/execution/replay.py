"""Execution replay: parent orders worked by their schedules against the queue-aware simulator,
driven by a real L2 capture (depth diffs and trades in receive-time order).

Why: this is the event backtest of *execution* — the same :class:`ParentExecution` and
:class:`LimitOrderSimulator` the paper venue runs, fed by the recorded market instead of a live
feed, so immediate, TWAP, POV and passive-then-aggressive can be compared on the same book, and
their shortfall set beside the cost the backtest's model would have charged.

:class:`Executor` is the glue any venue-side driver uses: it wakes schedules, applies their
submits/cancels to the simulator, and routes the simulator's fills and final states back to
them. A new target for an instrument cancels the working parent first (``start``), and the new parent is sized by the caller from position plus in-flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import math
from dataclasses import dataclass, field, replace

from typing import TYPE_CHECKING

from dea.book.l2 import ASK, BID
from dea.execution.order_types import OrderRequest
from dea.execution.quality import FillRecord, ParentRecord, modelled_cost_book
from dea.execution.queue import FINAL, LimitOrderSimulator
from dea.execution.schedule import Cancel, ExecutionConfig, MarketView, ParentExecution, ParentOrder, Submit

if TYPE_CHECKING:  # pragma: no cover - dea.book.capture needs numba; serving imports this module
    from dea.book.capture import ParsedCapture

PRICE_SCALE = 1e9  # ParsedCapture trade prices are int64 ticks of 1e-9
# book event codes of dea.book.capture (not imported: numba); tests hold them equal
EV_GAP = 0
EV_SNAPSHOT = 1
EV_DIFF = 2


@dataclass(frozen=True, slots=True)
class BookMsg:
    ts: int
    kind: int  # EV_SNAPSHOT / EV_DIFF / EV_GAP
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class TradeMsg:
    ts: int
    price: float
    size: float
    side: int  # aggressor


@dataclass(frozen=True, slots=True)
class VenueMsg:
    """A book or trade message of one venue of an instrument routed across several
    (:class:`dea.execution.routed.RoutedVenue`); ``venue`` is a name of ``execution.routes``."""

    ts: int
    venue: str
    msg: BookMsg | TradeMsg


CaptureMsg = BookMsg | TradeMsg


def capture_messages(p: "ParsedCapture", start_ns: int | None = None, end_ns: int | None = None) -> list[CaptureMsg]:
    """Book events and trades of a parsed capture merged by receive time (trades first on ties:
    the matching engine prints the trade before the depth change it causes)."""
    lp = p.level_price
    out: list[tuple[int, int, CaptureMsg]] = []
    idx, side, sz = p.lv_idx.tolist(), p.lv_side.tolist(), p.lv_sz.tolist()
    prices = lp.tolist()
    for e in range(len(p.ev_kind)):
        ts = int(p.ev_time[e])
        if end_ns is not None and ts > end_ns:
            break
        b, a = [], []
        for r in range(int(p.ev_lv0[e]), int(p.ev_lv1[e])):
            (b if side[r] > 0 else a).append((prices[idx[r]], sz[r]))
        out.append((ts, 1, BookMsg(ts, int(p.ev_kind[e]), tuple(b), tuple(a))))
    for k in range(len(p.tr_time)):
        ts = int(p.tr_time[k])
        if end_ns is not None and ts > end_ns:
            break
        out.append((ts, 0, TradeMsg(ts, int(p.tr_px[k]) / PRICE_SCALE, float(p.tr_sz[k]), int(p.tr_side[k]))))
    out.sort(key=lambda x: (x[0], x[1]))
    msgs = [m for _, _, m in out]
    if start_ns is not None:
        # keep the book: every book message from the start, trades only from start_ns
        msgs = [m for m in msgs if isinstance(m, BookMsg) or m.ts >= start_ns]
    return msgs


def book_msg(event, time: int) -> BookMsg:  # noqa: ANN001 - dea.book.events.BookEvent | None
    """A :class:`dea.book.l2.SyncedBook` callback's ``(event, time)`` as a :class:`BookMsg`:
    a snapshot or diff just applied to the live book, or None for a gap (the live feed's view of
    what a capture replay reads from :func:`capture_messages`)."""
    from dea.book.events import DepthSnapshot

    if event is None:
        return BookMsg(time, EV_GAP, (), ())
    kind = EV_SNAPSHOT if isinstance(event, DepthSnapshot) else EV_DIFF
    return BookMsg(time, kind, tuple(event.bids), tuple(event.asks))


def feed(sim: LimitOrderSimulator, msg: CaptureMsg) -> None:
    """Apply one capture message to the simulator."""
    if isinstance(msg, TradeMsg):
        sim.on_trade(msg.ts, msg.price, msg.size, msg.side)
    elif msg.kind == EV_DIFF:
        sim.on_diff(msg.ts, msg.bids, msg.asks)
    elif msg.kind == EV_SNAPSHOT:
        sim.on_snapshot(msg.ts, msg.bids, msg.asks)
    elif msg.kind == EV_GAP:
        sim.on_gap(msg.ts)


@dataclass
class Executor:
    """Runs parents of one instrument on one simulator."""

    sim: LimitOrderSimulator
    cfg: ExecutionConfig
    lot: float = 0.0
    tick: float = 0.0
    bound: Callable[[OrderRequest], float] | None = None
    fee_rate_model: float = 0.0005  # taker fee the backtest's model charges
    active: ParentExecution | None = None
    records: list[ParentRecord] = field(default_factory=list)
    volume: float = 0.0
    _by_child: dict[str, ParentExecution] = field(default_factory=dict)
    _fills: dict[str, list[FillRecord]] = field(default_factory=dict)
    _meta: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # pid -> (arrival, modelled, t0)
    _closing: list[tuple[ParentExecution, str]] = field(default_factory=list)
    _nf: int = 0
    _nu: int = 0

    def start(self, parent: ParentOrder) -> ParentExecution:
        """Begin working ``parent`` (cancelling the working one: the target changed)."""
        if self.active is not None:
            self.cancel_active(parent.t_start)
        kw = {} if self.bound is None else {"bound": self.bound}
        ex = ParentExecution(parent, self.cfg, lot=self.lot, tick=self.tick, **kw)
        self.active = ex
        self._meta[parent.parent_id] = (parent.arrival_mid, math.nan, parent.t_start)
        self._fills[parent.parent_id] = []
        self.wake(parent.t_start)
        # the modelled cost (what the backtest would charge at once) is for the journal, not the
        # order path: priced after the first child is sent, on the same book (submits do not
        # change the public levels), and patched into a record the wake may already have closed
        book = self.sim.book
        if parent.qty > 0:  # only the levels the order walks (and the other touch, for the mid)
            bids, asks = book.levels(BID, 1), _enough(book, ASK, parent.qty)
        else:
            bids, asks = _enough(book, BID, parent.qty), book.levels(ASK, 1)
        modelled = modelled_cost_book(parent.qty, bids, asks, self.fee_rate_model) if bids and asks else math.nan
        self._meta[parent.parent_id] = (parent.arrival_mid, modelled, parent.t_start)
        if self.records and self.records[-1].parent_id == parent.parent_id:
            self.records[-1] = replace(self.records[-1], modelled_cost=modelled)
        return ex

    def cancel_active(self, ts: int) -> None:
        ex = self.active
        if ex is None:
            return
        for act in ex.cancel():
            self.sim.cancel(ts, act.client_id)
        self.active = None
        self._closing.append((ex, "cancelled"))
        self._sync()

    def on_message(self, msg: CaptureMsg | VenueMsg) -> None:
        if isinstance(msg, VenueMsg):  # one venue of a routed instrument (POV counts every venue's volume)
            if isinstance(msg.msg, TradeMsg):
                self.volume += msg.msg.size
            self.sim.on_venue_message(msg)
            self._sync()
            self.wake(msg.ts)
            return
        if isinstance(msg, TradeMsg):
            self.volume += msg.size
        feed(self.sim, msg)
        self._sync()
        self.wake(msg.ts)

    def wake(self, ts: int) -> None:
        """Wake the working schedule if it is due (after taking in what the venue reported)."""
        self._sync()
        ex = self.active
        while ex is not None and ex.next_wake is not None and ex.next_wake <= ts:
            before = ex.next_wake
            view = MarketView(ts, self.sim.best(BID), self.sim.best(ASK), self.volume)
            for act in ex.wake(view):
                if isinstance(act, Submit):
                    self._by_child[act.req.client_id] = ex
                    self.sim.submit(ts, act.req)
                elif isinstance(act, Cancel):
                    self.sim.cancel(ts, act.client_id)
                self._sync()
            if ex.next_wake == before and ex.next_wake is not None:
                break  # waiting on the venue (a cancel in flight): next event
        if ex is not None and ex.is_complete() and ex.status != "cancelled":
            self.active = None
            self._closing.append((ex, "done"))
            self._sync()

    @property
    def busy(self) -> bool:
        """A parent is working or waiting for its cancels."""
        return self.active is not None or bool(self._closing)

    def in_flight(self) -> float:
        """Signed quantity still expected to execute: the working parent's unfilled rest, plus
        working orders no cancel was sent for. Children of a replaced parent are cancelled and
        assumed not to fill; if one fills inside the cancel latency, the next decision sees it in
        the position and corrects."""
        q = 0.0
        ex = self.active
        if ex is not None:
            q += ex.side * max(ex.total - ex.executed, 0.0)
        for o in self.sim.open_orders():
            if o.cancel_ts is None and self._by_child.get(o.req.client_id) is not ex:
                q += o.req.side * o.leaves
        return q

    def finish(self, ts: int) -> None:
        """End of data: close the working parent (its unfilled rest priced at the mid now) and
        every parent still waiting on cancels."""
        if self.active is not None:
            self.cancel_active(ts)
        for ex, status in self._closing:
            self._close(ex, ts, status)
        self._closing.clear()

    def _sync(self) -> None:
        sim = self.sim
        while self._nf < len(sim.fills):
            f = sim.fills[self._nf]
            self._nf += 1
            ex = self._by_child.get(f.client_id)
            if ex is not None:
                ex.on_fill(f.client_id, f.qty)
                self._fills[ex.parent.parent_id].append(
                    FillRecord(f.client_id, f.ts, f.qty, f.price, f.fee, f.mid, f.touch, f.maker))
        while self._nu < len(sim.updates):
            u = sim.updates[self._nu]
            self._nu += 1
            if u.status in FINAL:
                ex = self._by_child.get(u.client_id)
                o = sim.orders[u.client_id]
                if ex is not None:
                    ex.on_final(u.client_id, o.filled, o.leaves if u.status != "filled" else 0.0)
        if self._closing:
            ts = sim.now if sim.now is not None else 0
            for item in [c for c in self._closing if not c[0].open_ids]:
                self._closing.remove(item)
                self._close(item[0], ts, item[1])

    def _close(self, ex: ParentExecution, ts: int, status: str) -> None:
        pid = ex.parent.parent_id
        arrival, modelled, t0 = self._meta[pid]
        fills = tuple(self._fills[pid])
        t_end = max([ts] + [f.ts for f in fills])
        detail: dict = {"children": len(ex.children), "risk_clipped": ex.clipped}
        routes = getattr(self.sim, "route_report", None)
        if routes is not None:  # routed across venues: where each leg went, why, what filled
            detail["routes"] = routes(pid)
        self.records.append(ParentRecord(
            pid, ex.parent.instrument, self.cfg.algo, ex.parent.qty, t0, arrival, self.sim.mid(), t_end, modelled,
            fills, status, detail,
        ))


def run_parents(
    messages: Sequence[CaptureMsg],
    starts: Iterable[tuple[int, float]],
    cfg: ExecutionConfig,
    *,
    instrument: str = "BTCUSDT",
    maker_fee: float = 0.0002,
    taker_fee: float = 0.0005,
    lot: float = 0.001,
    tick: float = 0.1,
    id_prefix: str = "dea",
    venue: Callable[[], object] | None = None,
) -> list[ParentRecord]:
    """Work each (start time, signed qty) parent on its own simulator over ``messages``; every
    parent sees the same recorded market (parents do not interact). Returns their records.
    ``venue``: makes each parent's venue instead (e.g. a routed one,
    :meth:`dea.execution.routed.RoutedVenue.simulated`, with ``messages`` of :class:`VenueMsg`)."""
    from dea.execution.queue import QueueModel

    starts = sorted(starts)
    runs = []
    for t0, q in starts:
        sim = venue() if venue is not None else LimitOrderSimulator(
            maker_fee=maker_fee, taker_fee=taker_fee, model=QueueModel(cfg.queue_model, cfg.queue_power),
            submit_latency_ns=cfg.ns("submit_latency"), cancel_latency_ns=cfg.ns("cancel_latency"), lot=lot)
        runs.append((t0, q, Executor(sim, cfg, lot=lot, tick=tick, fee_rate_model=taker_fee)))
    pending = list(runs)
    started: set[int] = set()
    last_ts = 0
    for msg in messages:
        while pending and pending[0][0] <= msg.ts:
            t0, q, ex = pending.pop(0)
            mid = ex.sim.mid()
            if mid == mid:
                ex.start(ParentOrder(f"{id_prefix}-p{len(started)}-{t0}", instrument, 0, q, t0, mid, id_prefix))
            started.add(id(ex))
        for _, _, ex in runs:
            if id(ex) not in started or ex.busy:  # waiting or working: keep its book current
                ex.on_message(msg)
        last_ts = msg.ts
    out = []
    for _, _, ex in runs:
        ex.finish(last_ts)
        out.extend(ex.records)
    return out


def mid_path(messages: Sequence[CaptureMsg]) -> tuple[list[int], list[float]]:
    """(times, mids) after every book message (for adverse-selection and volatility figures)."""
    sim = LimitOrderSimulator()
    ts, mids = [], []
    for m in messages:
        if isinstance(m, BookMsg):
            feed(sim, m)
            mid = sim.mid()
            if mid == mid:
                ts.append(m.ts)
                mids.append(mid)
    return ts, mids



def _enough(book, side: int, qty: float) -> list[tuple[float, float]]:  # noqa: ANN001 - L2Book
    """The levels of ``side`` a market order of ``qty`` walks: the modelled cost needs no more,
    and the decision path stays short."""
    out, need = [], abs(qty)
    for p, q in book.walk(side):
        out.append((p, q))
        need -= q
        if need <= 0.0:
            break
    return out


def journal_records(records: Iterable[ParentRecord], path) -> int:  # noqa: ANN001 - str | Path
    """Write replayed parents (and their fills) to an execution store at ``path``."""
    from dea.execution.store import ExecutionStore

    store = ExecutionStore(path)
    n = 0
    try:
        for rec in records:
            store.record_parent(rec)
            n += 1
    finally:
        store.close()
    return n
