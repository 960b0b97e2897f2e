"""Execution desk: one queue-aware simulator and executor per instrument, behind one interface
that the event backtest (:mod:`dea.backtest.event_exec`) and the paper venue
(:mod:`serving.exchanges.paper_orders`) share, so both fill limit orders identically.

The desk turns a rebalance (an order from :func:`dea.execution.orders.generate_orders`) into a
parent worked by the configured schedule, cancelling the instrument's working parent first
(the target changed); :meth:`ExecutionDesk.in_flight` is what the order generator must count as
pending so the next decision does not order the same change twice. Fills come back as
:class:`dea.execution.fills.Fill` (price = execution price, costs = fee only) for the account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dea.errors import ExchangeError

from dea.execution.fills import Fill
from dea.execution.order_types import OrderRequest
from dea.execution.quality import ParentRecord
from dea.execution.queue import LimitOrderSimulator, QueueModel, SimFill
from dea.execution.replay import CaptureMsg, Executor, VenueMsg
from dea.execution.routed import RoutedVenue, is_routed
from dea.execution.schedule import ExecutionConfig, ParentExecution, ParentOrder
from dea.instruments import Instrument


@dataclass(frozen=True, slots=True)
class DeskFill:
    index: int
    fill: SimFill


class ExecutionDesk:
    """Per-instrument simulators and executors with a shared schedule config."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        cfg: ExecutionConfig,
        *,
        bound: Callable[[OrderRequest], float] | None = None,
        id_prefix: str = "dea",
        venues: Sequence[Any] | None = None,
    ) -> None:
        """``venues``: one venue per instrument with the simulator's interface (a real venue
        behind :class:`serving.exchanges.order_port.VenueOrderPort`, a
        :class:`~dea.execution.routed.RoutedVenue`); None (all, or an entry): the default, a
        queue-aware :class:`LimitOrderSimulator` (backtest, paper venue), one per venue behind
        a :class:`~dea.execution.routed.RoutedVenue` for an instrument with ``execution.routes``."""
        self.instruments = tuple(instruments)
        self.cfg = cfg
        self.id_prefix = id_prefix
        model = QueueModel(cfg.queue_model, cfg.queue_power)
        if venues is None:
            venues = [None] * len(self.instruments)
        elif len(venues) != len(self.instruments):
            raise ExchangeError(f"execution desk: {len(venues)} venues for {len(self.instruments)} instruments")
        venues = [v if v is not None else
                  RoutedVenue.simulated(i.symbol, cfg, maker_fee=i.maker_fee, lot=i.lot_size)
                  if is_routed(cfg, i.symbol) else
                  LimitOrderSimulator(maker_fee=i.maker_fee, taker_fee=i.taker_fee, model=model,
                                      submit_latency_ns=cfg.ns("submit_latency"),
                                      cancel_latency_ns=cfg.ns("cancel_latency"), lot=i.lot_size)
                  for i, v in zip(self.instruments, venues, strict=True)]
        self.executors = [
            Executor(v, cfg, lot=i.lot_size, tick=i.tick_size, bound=bound, fee_rate_model=i.taker_fee)
            for i, v in zip(instruments, venues, strict=True)
        ]
        self._seen = [0] * len(self.executors)

    def on_message(self, index: int, msg: CaptureMsg | VenueMsg) -> list[DeskFill]:
        """Market data of instrument ``index`` (of one of its venues when it is routed);
        returns the fills it caused."""
        self.executors[index].on_message(msg)
        return self._new_fills(index)

    def set_bound(self, bound: Callable[[OrderRequest], float] | None) -> None:
        """The risk check every child passes (parents started from now on)."""
        for ex in self.executors:
            ex.bound = bound

    def rebalance(self, ts: int, index: int, qty: float, parent_id: str | None = None,
                  ) -> tuple[ParentExecution | None, list[DeskFill]]:
        """Work ``qty`` (signed base units, sized against position plus :meth:`in_flight`) from
        ``ts``: the instrument's working parent is cancelled and its unfilled rest carried into
        the new parent, so position + new parent = the new target. Returns the new parent (None when there is no book to price it) and the
        fills that happened at once. ``parent_id`` names the parent (default from time and
        symbol; the live loop passes its order's client id)."""
        ex = self.executors[index]
        mid = ex.sim.mid()
        if ex.active is not None:  # ``qty`` was sized with the working parent as pending: it is replaced
            act = ex.active
            qty += act.side * max(act.total - act.executed, 0.0)
            ex.cancel_active(ts)
        lot = self.instruments[index].lot_size
        if lot > 0.0:
            qty = round(qty / lot) * lot
        if mid != mid or abs(qty) <= 1e-12:
            return None, self._new_fills(index)
        sym = self.instruments[index].symbol
        pid = parent_id or f"{self.id_prefix}-{ts}-{sym}"
        pe = ex.start(ParentOrder(pid, sym, index, qty, ts, mid, self.id_prefix))
        return pe, self._new_fills(index)

    def advance(self, ts: int) -> list[DeskFill]:
        """Wake every schedule due by ``ts`` (a decision time with no market event)."""
        out: list[DeskFill] = []
        for k, ex in enumerate(self.executors):
            ex.sim.advance(ts)
            ex.wake(ts)
            out += self._new_fills(k)
        return out

    def in_flight(self) -> list[float]:
        """Per instrument, what the order generator must count as pending (see
        :meth:`Executor.in_flight`)."""
        return [ex.in_flight() for ex in self.executors]

    def working(self) -> list[float]:
        """Per instrument, the signed unfilled size of orders at the venue that no cancel was
        sent for: with the position, the exposure a new child adds to (the risk bound's base)."""
        return [sum(o.req.side * o.leaves for o in ex.sim.open_orders() if o.cancel_ts is None)
                for ex in self.executors]

    def mid(self, index: int) -> float:
        return self.executors[index].sim.mid()

    def records(self) -> list[ParentRecord]:
        return [r for ex in self.executors for r in ex.records]

    def finish(self, ts: int) -> None:
        for ex in self.executors:
            ex.finish(ts)

    def _new_fills(self, index: int) -> list[DeskFill]:
        fills = self.executors[index].sim.fills
        out = [DeskFill(index, f) for f in fills[self._seen[index]:]]
        self._seen[index] = len(fills)
        return out


def as_account_fill(index: int, f: SimFill) -> Fill:
    """A simulator fill as the account's :class:`Fill`: executed at its own price, fee as cost."""
    return Fill(index, f.ts, f.qty, f.price, f.fee, 0.0, 0.0, f.client_id)
