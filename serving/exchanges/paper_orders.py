"""Paper venue for typed orders (limit, post-only, IOC/FOK, reduce-only, cancel/replace,
expiry) with queue-aware fills, fed by the live book feed.

Why next to :class:`serving.exchanges.paper.PaperExchange` (market orders, the backtest's cost
model): a limit order's fill depends on its queue position, which only the simulator of
:mod:`dea.execution.queue` models; the event replay (:mod:`dea.execution.replay`) runs the same
simulator on the same events, so a capture replayed through this venue fills exactly as the
replay does (``tests/serving/test_paper_orders.py``).

Market data arrives as the live feed produces it: ``on_book(index, event, time)`` is the
:class:`dea.book.l2.SyncedBook` callback (a snapshot or diff just applied, or None for a gap),
``on_trade(index, trade)`` a :class:`dea.book.events.Trade`. With an
:class:`~dea.execution.store.ExecutionStore`, every order is recorded before it reaches the
simulator and ``submit`` is idempotent across processes: a client id the store already has is
answered from the store, never simulated twice. A simulated venue does not outlive its process:
:meth:`restore` re-sends the store's open orders, which then queue at the back of their level.
"""

from __future__ import annotations

from collections.abc import Sequence

from dea.book.events import BookEvent, Trade
from dea.errors import ExchangeError
from dea.execution.order_types import OrderRequest
from dea.execution.queue import FINAL, LimitOrderSimulator, QueueModel
from dea.execution.replay import TradeMsg, book_msg, feed
from dea.execution.store import ExecutionStore
from dea.instruments import Instrument
from serving.exchanges.base import ExecFill, OrderAck

_ACK = {"pending": "sent", "open": "sent", "filled": "filled", "cancelled": "rejected", "expired": "rejected",
        "rejected": "rejected"}


class PaperOrderVenue:
    """Simulated venue for typed orders on ``instruments`` (one queue simulator each)."""

    name = "paper-orders"

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        model: QueueModel | None = None,
        submit_latency_ns: int = 0,
        cancel_latency_ns: int = 0,
        store: ExecutionStore | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self.symbols = tuple(i.symbol for i in instruments)
        self.index = {s: k for k, s in enumerate(self.symbols)}
        self.sims = [
            LimitOrderSimulator(maker_fee=i.maker_fee, taker_fee=i.taker_fee, model=model or QueueModel(),
                                submit_latency_ns=submit_latency_ns, cancel_latency_ns=cancel_latency_ns, lot=i.lot_size)
            for i in instruments
        ]
        self.store = store
        self._seen_fills = [0] * len(self.sims)
        self._seen_updates = [0] * len(self.sims)
        self._reports: list[ExecFill] = []
        self._owner: dict[str, int] = {}
        self._fill_seq: dict[str, int] = {}

    # ------------------------------------------------------------------ market data
    def on_book(self, index: int, event: BookEvent | None, time: int) -> None:
        """SyncedBook callback: the book of ``index`` changed at ``time`` (None: a gap)."""
        feed(self.sims[index], book_msg(event, time))
        self._collect(index)

    def on_trade(self, index: int, trade: Trade) -> None:
        feed(self.sims[index], TradeMsg(trade.available_at, trade.price, trade.size, trade.side))
        self._collect(index)

    def advance(self, ts: int) -> None:
        for k, sim in enumerate(self.sims):
            sim.advance(ts)
            self._collect(k)

    # ------------------------------------------------------------------ orders
    def submit_orders(self, ts: int, reqs: Sequence[OrderRequest]) -> list[OrderAck]:
        """Send typed orders at ``ts`` (idempotent per client id, across restarts with a store)."""
        acks = []
        for req in reqs:
            k = self._instrument(req)
            sim = self.sims[k]
            if req.client_id in sim.orders:
                acks.append(self.lookup(req.client_id, req.instrument))
                continue
            if self.store is not None and not self.store.record_order(req, "new"):
                acks.append(self._stored_ack(req.client_id))
                continue
            self._owner[req.client_id] = k
            sim.submit(ts, req)
            self._collect(k)
            acks.append(self.lookup(req.client_id, req.instrument))
        return acks

    def cancel(self, ts: int, client_id: str) -> None:
        k = self._owner.get(client_id)
        if k is None:
            raise ExchangeError(f"{self.name}: cancel of unknown order {client_id!r}")
        self.sims[k].cancel(ts, client_id)
        self._collect(k)

    def replace(self, ts: int, client_id: str, new: OrderRequest) -> OrderAck:
        """Cancel/replace (the replacement queues at the back)."""
        self.cancel(ts, client_id)
        return self.submit_orders(ts, [new])[0]

    def lookup(self, client_id: str, instrument: str) -> OrderAck:
        k = self._owner.get(client_id)
        if k is None:
            return self._stored_ack(client_id)
        o = self.sims[k].orders[client_id]
        reason = next((u.reason for u in reversed(self.sims[k].updates) if u.client_id == client_id), "")
        return OrderAck(client_id, _ACK[o.status], client_id, reason or None)

    def restore(self, ts: int) -> list[OrderAck]:
        """A new process: re-send the store's open orders (they lost their queue position)."""
        if self.store is None:
            return []
        acks = []
        for req in self.store.open_orders():
            k = self._instrument(req)
            if req.client_id in self.sims[k].orders:
                continue
            self._owner[req.client_id] = k
            self.sims[k].submit(ts, req)
            self._collect(k)
            acks.append(self.lookup(req.client_id, req.instrument))
        return acks

    def set_position(self, index: int, qty: float) -> None:
        """The venue's position (reduce-only orders are clipped to it)."""
        self.sims[index].position = float(qty)

    # ------------------------------------------------------------------ reports
    def poll_fills(self, now_ns: int) -> list[ExecFill]:
        out, self._reports = self._reports, []
        return out

    def positions(self) -> dict[str, float]:
        return {s: sim.position for s, sim in zip(self.symbols, self.sims, strict=True)}

    def close(self) -> None:
        return None

    def _collect(self, k: int) -> None:
        sim = self.sims[k]
        fills = sim.fills
        for n in range(self._seen_fills[k], len(fills)):
            f = fills[n]
            # unique across processes: client id + its fill sequence within that order
            seq = self._fill_seq.get(f.client_id, 0)
            self._fill_seq[f.client_id] = seq + 1
            self._reports.append(ExecFill(f"paper:{f.client_id}:{seq}", f.client_id, f.ts, self.symbols[k], k, f.qty,
                                          f.price, f.fee))
        self._seen_fills[k] = len(fills)
        if self.store is not None:
            for u in sim.updates[self._seen_updates[k]:]:
                if u.client_id in self._owner:
                    self.store.update_order(u.client_id, u.status if u.status in FINAL else "open", u.reason or None)
        self._seen_updates[k] = len(sim.updates)

    def _stored_ack(self, client_id: str) -> OrderAck:
        status = None if self.store is None else self.store.order_status(client_id)
        if status is None:
            return OrderAck(client_id, "unknown", None, "paper venue never received it")
        return OrderAck(client_id, _ACK.get(status, "sent"), client_id, "known from the execution store")

    def _instrument(self, req: OrderRequest) -> int:
        k = self.index.get(req.instrument)
        if k is None or k != req.index:
            raise ExchangeError(f"{self.name}: order {req.client_id} names {req.instrument}@{req.index}; "
                                f"venue has {list(self.symbols)}")
        return k
