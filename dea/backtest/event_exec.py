"""Event backtest with worked orders: the decisions of :class:`EventBacktester`, executed by the
execution desk (schedules + queue-aware limit-order fills) on a recorded L2 capture.

Why a subclass: decisions, risk engine, order sizing, account, funding and liquidation stay the
event backtest's own (one definition); only *how an order executes* changes — instead of one
fill at the due time, each order becomes a parent worked by the configured schedule
(:mod:`dea.execution.schedule`) against :class:`dea.execution.queue.LimitOrderSimulator`, and
what is still working counts as pending for the next decision. Market data comes as capture
messages (:func:`dea.execution.replay.capture_messages`) per instrument via :meth:`on_capture`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from dea.backtest.config import CostsConfig
from dea.backtest.event import EventBacktester, Policy
from dea.backtest.result import BacktestResult
from dea.errors import DataError
from dea.execution.desk import DeskFill, ExecutionDesk, as_account_fill
from dea.execution.orders import Order
from dea.execution.quality import ParentRecord
from dea.execution.replay import CaptureMsg, VenueMsg
from dea.execution.schedule import ExecutionConfig, risk_bound
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.timeutil import iso


class ExecutionBacktester(EventBacktester):
    """:class:`EventBacktester` whose orders are worked on the execution desk."""

    def __init__(self, instruments: Sequence[Instrument], costs: CostsConfig, risk: RiskConfig, policy: Policy, *,
                 execution: ExecutionConfig, child_risk: bool = True, **kwargs) -> None:  # noqa: ANN003 - EventBacktester's options
        """``child_risk``: every child order passes a risk engine of its own (same rules as the
        decisions', :func:`dea.execution.schedule.risk_bound`) on position + working orders +
        the child, as the live loop's worked venue does."""
        super().__init__(instruments, costs, risk, policy, **kwargs)
        self.desk = ExecutionDesk(instruments, execution)
        if child_risk:
            from dea.risk.engine import RiskEngine

            engine = RiskEngine(risk, self.instruments, kwargs.get("accounts"))
            self.desk.set_bound(risk_bound(engine, None, lambda: self.account.qty, self.desk.working,
                                           self.account.equity, lambda: self.raw_px))

    def on_capture(self, index: int, msg: CaptureMsg | VenueMsg) -> None:
        """A book or trade message of instrument ``index`` (of one of its venues when it is
        routed across several; time-ordered with everything else)."""
        if self.last_ts is not None and msg.ts < self.last_ts:
            raise DataError(f"capture stream goes back in time: {iso(msg.ts)} after {iso(self.last_ts)}")
        self.last_ts = msg.ts
        self.n_events += 1
        self._book(self.desk.on_message(index, msg))
        mid = self.desk.mid(index)
        if mid == mid:
            self.raw_px[index] = mid
            self.account.mark(index, mid)
        self._check_liquidation(msg.ts)
        if self.dead:
            self.desk.finish(msg.ts)

    def on_decision(self, ts: int, index: int) -> None:
        self._book(self.desk.advance(ts))
        self.pend_q = self.desk.in_flight()
        super().on_decision(ts, index)
        self.pend_q = self.desk.in_flight()

    def _place(self, o: Order, prices: np.ndarray, ts: int) -> None:
        _, fills = self.desk.rebalance(ts, o.index, o.qty)
        self._book(fills)
        self.pend_q = self.desk.in_flight()

    def _book(self, fills: Iterable[DeskFill]) -> None:
        a = self._acc
        for df in fills:
            fill = as_account_fill(df.index, df.fill)
            self.account.apply_fill(fill)
            a[0] += fill.fee
            a[4] += abs(fill.qty) * fill.price

    def run_capture(self, messages: Iterable[tuple[int, CaptureMsg | VenueMsg]], decisions: Iterable[int]) -> BacktestResult:
        """Replay ``(instrument index, message)`` pairs in time order with decisions at ``decisions``."""
        dec: Iterator[int] = iter(decisions)
        nxt = next(dec, None)
        k = 0
        last = None
        for index, msg in messages:
            while nxt is not None and nxt < msg.ts:
                self.on_decision(int(nxt), k)
                k += 1
                nxt = next(dec, None)
            self.on_capture(index, msg)
            last = msg.ts
        while nxt is not None:
            self.on_decision(int(nxt), k)
            k += 1
            nxt = next(dec, None)
        self.desk.finish(last if last is not None else 0)
        return self.result()

    def parent_records(self) -> list[ParentRecord]:
        return self.desk.records()


def capture_stream(sources: Sequence, symbols: Sequence[str], resolve,  # noqa: ANN001
                   execution: ExecutionConfig | None = None) -> list[tuple[int, CaptureMsg | VenueMsg]]:
    """``(instrument index, message)`` of the config's ``book`` sources (Binance websocket
    captures, ``format: binance_ws``), merged by receive time: what :meth:`ExecutionBacktester.run_capture`
    replays. ``resolve`` maps a source path to a file (the config's ``resolve_path``).

    An instrument with ``execution.routes`` gets each venue's market as
    :class:`~dea.execution.replay.VenueMsg`: a route with ``capture`` from that file, the others
    from the instrument's book source (several venues may share it: the same book with each
    venue's fees). The features keep reading the book source alone (one book per instrument)."""
    import heapq

    from dea.errors import ConfigError

    routes = execution.routes if execution is not None else {}
    streams = []
    have = set()
    for s in sources:
        if s.kind != "book":
            continue
        if s.format != "binance_ws":
            raise ConfigError(f"source {s.name!r}: the execution backtest replays binance_ws captures, not {s.format!r}")
        msgs, sym = _capture(resolve(s.path), s.options)
        inst = s.instrument or sym
        if inst not in symbols:
            raise ConfigError(f"source {s.name!r}: instrument {inst!r} is not one of {list(symbols)}")
        k = list(symbols).index(inst)
        have.add(inst)
        rs = routes.get(inst) or ()
        if not rs:
            streams.append([(m.ts, k, 0, m) for m in msgs])
            continue
        shared = [r.venue for r in rs if r.capture is None]
        if not shared:
            raise ConfigError(f"source {s.name!r}: {inst} is routed and every route names a capture of its own; "
                              "the instrument's book source must be one venue's market (a route without capture)")
        for j, v in enumerate(shared):
            streams.append([(m.ts, k, j, VenueMsg(m.ts, v, m)) for m in msgs])
        for j, r in enumerate([r for r in rs if r.capture is not None], start=len(shared)):
            own, _ = _capture(resolve(r.capture), {"market": r.capture_market})
            streams.append([(m.ts, k, j, VenueMsg(m.ts, r.venue, m)) for m in own])
    if not streams:
        raise ConfigError("the execution backtest needs a data source of kind book (a binance_ws capture)")
    missing = sorted(set(routes) & set(symbols) - have)
    if missing:
        raise ConfigError(f"execution.routes: {missing} routed but without a book source")
    return [(k, m) for _, k, _, m in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2]))]


def _capture(path, options) -> tuple[list[CaptureMsg], str]:  # noqa: ANN001
    """A binance_ws capture's messages (:func:`dea.execution.replay.capture_messages`) and symbol."""
    from dea.book.capture import parse_capture
    from dea.data.loaders.binance_ws import book_files, capture_market
    from dea.execution.replay import capture_messages

    parsed = parse_capture(book_files(path, options), capture_market(path, options))
    return capture_messages(parsed), parsed.symbol
