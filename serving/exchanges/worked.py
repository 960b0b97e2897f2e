"""The live loop's venue when the config works its orders: each order the loop sends (a target
change) becomes a parent order worked by ``execution.algo`` (TWAP, POV, passive-then-aggressive;
:mod:`dea.execution.schedule`) on the execution desk, every child bounded by the risk engine,
the working parent cancelled when the next decision changes the target.

Why a venue wrapper and not a second order path in the loop: the loop already does what a
decision needs (risk engine, order sizing, write-ahead journal, fills into the account mirror,
restart reconciliation); what changes is only *how an order reaches the market*. So the loop
sends its market order as before and this venue works it, with two facts flowing back: fills
(reported under the parent's client id, one ``fill_id`` per child fill) and :meth:`in_flight`,
the unfilled rest the loop must count as pending so the next decision neither re-orders it nor
forgets it (:meth:`dea.execution.desk.ExecutionDesk.rebalance` carries it into the new parent).

Two venues under it, the same desk and schedules:

- ``paper``: one queue-aware :class:`~dea.execution.queue.LimitOrderSimulator` per instrument,
  fed with the live feed's depth diffs and trades (its own :class:`~dea.book.l2.SyncedBook`, so
  diffs reach the simulator exactly as the capture replay applies them; fills equal the event
  backtest's on the same events);
- a real venue (:class:`~serving.exchanges.ccxt_exchange.CcxtExchange`) behind
  :class:`~serving.exchanges.order_port.VenueOrderPort` (typed orders, fills from the venue,
  the touch from the feed's book).

With an :class:`~dea.execution.store.ExecutionStore` (``dea serve`` opens one on the journal's
file) every child order, its final state and every closed parent with its fills are journaled,
so ``dea execution-report JOURNAL`` reads a served journal. Child ids are deterministic
(:func:`dea.execution.order_types.child_client_id` from the parent's decision time), so a parent
re-sent after a restart sends the same ids and a venue that has them answers with the existing
orders. Children are journaled after the venue call (the venue, or the simulator of this process,
is the truth for idempotency); a parent partly filled before a crash is not resumed: its fills
are in the journal and the next decision orders what the target still needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dea.book.events import DepthDiff, DepthSnapshot, Trade
from dea.book.l2 import SyncedBook
from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig
from dea.execution.desk import DeskFill, ExecutionDesk
from dea.execution.orders import Order
from dea.execution.replay import TradeMsg, VenueMsg, book_msg
from dea.execution.schedule import risk_bound
from dea.execution.store import ExecutionStore
from dea.instruments import Instrument
from serving.exchanges.base import ExecFill, OrderAck

log = logging.getLogger("dea.serving.worked")


class WorkedExchange:
    """Orders worked as parents by the configured schedule (see the module docstring).

    ``adapter``: None for the paper venue (queue-aware simulators), or a venue adapter with
    ``submit_order``/``cancel_order``/``order_state``/``poll_fills``/``positions``
    (:class:`~serving.exchanges.ccxt_exchange.CcxtExchange`).
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        cfg: ExecutionConfig,
        *,
        adapter: Any = None,
        store: ExecutionStore | None = None,
        id_prefix: str = "dea",
        route_adapters: Mapping[str, Any] | None = None,
        snapshot_depth: int = 100,
    ) -> None:
        """``route_adapters`` (with ``adapter``): venue name of ``execution.routes`` -> its
        adapter; a routed instrument's first venue trades on the live feed's book, the others
        are planned on their REST book (``order_book``, ``snapshot_depth`` levels) fetched before
        each routed child. On the paper venue a routed instrument gets one simulator per venue,
        all on the live feed's book (each with its own fees, lot and limits)."""
        from dea.execution.routed import RoutedVenue, is_routed

        self.instruments = tuple(instruments)
        self.symbols = tuple(i.symbol for i in instruments)
        self.cfg = cfg
        self.adapter = adapter
        self.store = store
        self.books = [SyncedBook() for _ in instruments]
        self.route_adapters = dict(route_adapters or {})
        venues: list[Any] = [None] * len(self.instruments)
        # per instrument: the routed venues the live feed's messages are those of (() = not routed)
        self._fed: list[tuple[str, ...]] = [()] * len(self.instruments)
        for k, inst in enumerate(self.instruments):
            routed = is_routed(cfg, inst.symbol)
            names = tuple(r.venue for r in cfg.routes.get(inst.symbol) or ())
            if adapter is None:
                self._fed[k] = names
                own = [r.venue for r in cfg.routes.get(inst.symbol) or () if r.capture is not None]
                if own:
                    log.warning("paper routing %s: venues %s name a capture (a backtest market); here every venue "
                                "trades on the live feed's book", inst.symbol, own)
                continue
            from dea.book.l2 import L2Book
            from serving.exchanges.order_port import VenueOrderPort

            if not routed:
                venues[k] = VenueOrderPort(adapter, inst.symbol, self.books[k].book)
                continue
            missing = [n for n in names if n not in self.route_adapters]
            if missing:
                raise ExchangeError(f"execution.routes {inst.symbol}: venues {missing} have no adapter")
            ports = {n: VenueOrderPort(self.route_adapters[n], inst.symbol, self.books[k].book) if j == 0 else
                     VenueOrderPort(self.route_adapters[n], inst.symbol, L2Book(), snapshot_depth=snapshot_depth)
                     for j, n in enumerate(names)}
            venues[k] = RoutedVenue(inst.symbol, cfg, ports, lot=inst.lot_size)
            self._fed[k] = names[:1]
        self.name = f"worked:{'paper' if adapter is None else getattr(adapter, 'name', 'venue')}"
        self.desk = ExecutionDesk(self.instruments, cfg, id_prefix=id_prefix, venues=venues)
        self._reports: list[ExecFill] = []
        self._fill_seq: dict[str, int] = {}
        self._parents: dict[str, int] = {}  # parent (loop order) client id -> instrument index
        self._closed: dict[str, tuple[str, int]] = {}  # parent id -> (status, fills) once closed
        self._seen_records = [0] * len(self.instruments)
        self._seen_orders = [0] * len(self.instruments)
        self._seen_updates = [0] * len(self.instruments)
        self._cancelled: list[OrderAck] = []
        self.now = 0

    # ------------------------------------------------------------------ wiring
    def bind_risk(self, engine: Any, position: Callable[[], Sequence[float]], equity: Callable[[], float],
                  prices: Callable[[], Sequence[float]], option_greeks: Callable[[float], Any] | None = None) -> None:
        """Bound every child by ``engine`` (a risk engine of its own, same config as the loop's)
        on position + orders working at the venue + the child; ``option_greeks(equity)``: the
        options' greeks the loop's engine counts (``risk.greeks`` with an options overlay)."""
        self.desk.set_bound(risk_bound(engine, None, position, self.desk.working, equity, prices, option_greeks))

    # ------------------------------------------------------------------ market data (loop hooks)
    def on_depth(self, index: int, event: DepthSnapshot | DepthDiff) -> None:
        """A raw depth snapshot or diff of instrument ``index`` (sequenced here, as the replay)."""
        self.books[index].feed(event, lambda e, t: self._on_msg(index, book_msg(e, t)))

    def on_tape(self, index: int, trade: Trade) -> None:
        """A public trade of instrument ``index`` (advances queues, counts volume for POV)."""
        self._on_msg(index, TradeMsg(trade.available_at, trade.price, trade.size, trade.side))

    def on_book(self, ts: int, index: int, view: Any, mid: float) -> None:
        """The loop's book-changed hook: nothing to do (:meth:`on_depth` saw the event); having
        it makes the loop collect fills after every book change."""
        return None

    def _on_msg(self, index: int, msg: Any) -> None:
        self.now = max(self.now, msg.ts)
        fed = self._fed[index]
        if not fed:
            self._take(self.desk.on_message(index, msg))
        for venue in fed:  # a routed instrument: the feed is these venues' market
            self._take(self.desk.on_message(index, VenueMsg(msg.ts, venue, msg)))

    def before_decision(self, ts: int) -> None:
        """Wake every schedule due by ``ts`` (TWAP slices, timeouts) and poll real venues."""
        self.now = max(self.now, ts)
        self._take(self.desk.advance(ts))

    def in_flight(self) -> list[float]:
        """What the loop must count as pending: the working parents' unfilled rest."""
        return self.desk.in_flight()

    # ------------------------------------------------------------------ orders
    def submit(self, orders: Sequence[Order]) -> list[OrderAck]:
        """Start one parent per order (its client id names the parent); the instrument's working
        parent is cancelled and its unfilled rest carried into the new one."""
        acks = []
        for o in orders:
            if o.client_id in self._parents:  # a re-send: the parent exists
                acks.append(self.lookup(o.client_id, o.instrument))
                continue
            k = o.index
            if not (0 <= k < len(self.symbols)) or self.symbols[k] != o.instrument:
                raise ExchangeError(f"{self.name}: order {o.client_id} names {o.instrument}@{k}; venue has {list(self.symbols)}")
            ts = max(o.t_decision, self.now)
            pe, fills = self.desk.rebalance(ts, k, o.qty, parent_id=o.client_id)
            self._take(fills)
            if pe is None:
                why = "no two-sided book to work it on" if self.desk.mid(k) != self.desk.mid(k) else "rounds to zero lots"
                acks.append(OrderAck(o.client_id, "rejected", None, why))
                continue
            self._parents[o.client_id] = k
            acks.append(self.lookup(o.client_id, o.instrument))
        return acks

    def lookup(self, client_id: str, instrument: str) -> OrderAck:
        k = self._parents.get(client_id)
        if k is None:
            return OrderAck(client_id, "unknown", None, f"{self.name} has no parent {client_id!r}")
        closed = self._closed.get(client_id)
        if closed is None:
            return OrderAck(client_id, "sent", client_id)
        status, n_fills = closed
        if n_fills:
            return OrderAck(client_id, "filled", client_id, None if status == "done" else f"parent {status}")
        return OrderAck(client_id, "rejected", client_id, f"parent {status} without a fill")

    def cancel_order(self, client_id: str, instrument: str) -> OrderAck:
        """Stop working parent ``client_id`` (shutdown): its children are cancelled."""
        k = self._parents.get(client_id)
        ex = None if k is None else self.desk.executors[k]
        if ex is not None and ex.active is not None and ex.active.parent.parent_id == client_id:
            ex.cancel_active(self.now)
            self._take([])
            return OrderAck(client_id, "cancelled", client_id, "cancelled at shutdown")
        return self.lookup(client_id, instrument)

    def cancelled(self) -> list[OrderAck]:
        """Parents that ended without any fill since the last call (replaced by a new target,
        or their book ran out): the loop journals them as rejected with the reason."""
        out, self._cancelled = self._cancelled, []
        return out

    # ------------------------------------------------------------------ fills, positions
    def poll_fills(self, now_ns: int) -> list[ExecFill]:
        out, self._reports = self._reports, []
        return out

    def positions(self) -> dict[str, float]:
        """Per instrument; a routed one's is the sum over its venues."""
        if self.adapter is None:
            return {s: ex.sim.position for s, ex in zip(self.symbols, self.desk.executors, strict=True)}
        out = dict(self.adapter.positions())
        polled: dict[int, dict[str, float]] = {}
        for k, s in enumerate(self.symbols):
            if self._fed[k]:
                ads = {id(self.route_adapters[r.venue]): self.route_adapters[r.venue] for r in self.cfg.routes[s]}
                out[s] = 0.0
                for key, a in ads.items():
                    if key not in polled:
                        polled[key] = a.positions()
                    out[s] += polled[key].get(s, 0.0)
        return out

    @property
    def is_fresh(self) -> bool:
        """A paper venue starts empty in every process (the loop hands it the journal's account)."""
        return self.adapter is None

    def restore(self, account: Any, pending: Sequence[Order]) -> None:
        """A new process (paper): the simulators take the journal's positions. Pending parents are
        looked up by the loop, found unknown and re-sent through its risk re-check."""
        for ex, q in zip(self.desk.executors, account.qty, strict=True):
            ex.sim.position = float(q)

    def records(self) -> list[Any]:
        return self.desk.records()

    def close(self) -> None:
        self.desk.finish(self.now)
        self._take([])
        if self.store is not None:
            self.store.close()
        if self.adapter is not None:
            self.adapter.close()
        for a in {id(a): a for a in self.route_adapters.values() if a is not self.adapter}.values():
            a.close()

    # ------------------------------------------------------------------ bookkeeping
    def _take(self, fills: Sequence[DeskFill]) -> None:
        for df in fills:
            f = df.fill
            seq = self._fill_seq.get(f.client_id, 0)
            self._fill_seq[f.client_id] = seq + 1
            self._reports.append(ExecFill(f"{self.name}:{f.client_id}:{seq}", f.parent_id or f.client_id, f.ts,
                                          self.symbols[df.index], df.index, f.qty, f.price, f.fee, maker=f.maker))
        for k, ex in enumerate(self.desk.executors):
            self._journal_orders(k, ex.sim)
            recs = ex.records
            for rec in recs[self._seen_records[k]:]:
                self._closed[rec.parent_id] = (rec.status, len(rec.fills))
                if not rec.fills and rec.parent_id in self._parents:
                    why = ("replaced by the next target before any fill" if rec.status == "cancelled"
                           else "ended without a fill (the book ran out)")
                    self._cancelled.append(OrderAck(rec.parent_id, "rejected", rec.parent_id,
                                                    f"{self.cfg.algo} parent {why}"))
                if self.store is not None:
                    self.store.record_parent(rec)
            self._seen_records[k] = len(recs)

    def _journal_orders(self, k: int, sim: Any) -> None:
        if self.store is None:
            return
        orders = sim.orders
        if len(orders) > self._seen_orders[k]:
            for cid in list(orders)[self._seen_orders[k]:]:
                self.store.record_order(orders[cid].req, "sent")
            self._seen_orders[k] = len(orders)
        ups = sim.updates
        for u in ups[self._seen_updates[k]:]:
            if u.client_id in orders:
                self.store.update_order(u.client_id, u.status, u.reason or None)
        self._seen_updates[k] = len(ups)


def needs_worked_exchange(cfg: ExecutionConfig) -> bool:
    """Orders are worked (this venue) unless the config sends each at once (``immediate``) to
    one venue (no ``execution.routes``)."""
    return cfg.worked
