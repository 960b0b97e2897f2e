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

    An instrument with ``execution.routes`` gets each venue's market from the source its route
    names (``source``), as :class:`~dea.execution.replay.VenueMsg`; one capture may be the
    market of several venues (the same book with each venue's fees). A routed venue without a
    source, a source no route names, or a name that is not a book source of the instrument is
    an error: a venue the router counts on must have a market."""
    import heapq

    from dea.book.capture import parse_capture
    from dea.data.loaders.binance_ws import book_files, capture_market
    from dea.errors import ConfigError
    from dea.execution.replay import capture_messages

    routes = execution.routes if execution is not None else {}
    streams = []
    named: dict[str, set[str]] = {}  # instrument -> sources its routes named and were found
    for s in sources:
        if s.kind != "book":
            continue
        if s.format != "binance_ws":
            raise ConfigError(f"source {s.name!r}: the execution backtest replays binance_ws captures, not {s.format!r}")
        path = resolve(s.path)
        parsed = parse_capture(book_files(path, s.options), capture_market(path, s.options))
        inst = s.instrument or parsed.symbol
        if inst not in symbols:
            raise ConfigError(f"source {s.name!r}: instrument {inst!r} is not one of {list(symbols)}")
        k = list(symbols).index(inst)
        msgs = capture_messages(parsed)
        venues = [r.venue for r in routes.get(inst, ()) if r.source == s.name]
        if routes.get(inst) and not venues:
            raise ConfigError(f"source {s.name!r}: {inst} is routed (execution.routes) but no route names this "
                              "source as its venue's market (route source:)")
        if venues:
            named.setdefault(inst, set()).add(s.name)
            for j, v in enumerate(venues):
                streams.append([(m.ts, k, j, VenueMsg(m.ts, v, m)) for m in msgs])
        else:
            streams.append([(m.ts, k, 0, m) for m in msgs])
    if not streams:
        raise ConfigError("the execution backtest needs a data source of kind book (a binance_ws capture)")
    for inst, rs in routes.items():
        if inst not in symbols:
            continue
        for r in rs:
            if r.source is None or r.source not in named.get(inst, set()):
                raise ConfigError(f"execution.routes {inst} venue {r.venue!r}: source {r.source!r} is not a book "
                                  f"source of {inst} (have {sorted(named.get(inst, set()))})")
    return [(k, m) for _, k, _, m in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2]))]
