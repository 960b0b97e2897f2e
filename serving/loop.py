"""The live allocator loop: market events in, orders out.

Flow per event: feed event -> streaming panel / order books (``available_at`` order) -> at each
decision time t of the clock: panel row -> streaming features -> missing-data policy -> policy
runner (onnxruntime) -> fallback if the model failed -> risk engine -> order generation (target
minus position and in-flight orders, no-trade band, lot rounding) -> journal (write-ahead) ->
exchange -> fills -> journal and account.

Timing rules are the event backtest's (:mod:`dea.backtest.event`): events stamped t are applied
before the decision at t; a decision at t fires when the first event after t arrives (or, live,
when the feed's clock tick passes t); orders fill at t + latency via the exchange. The loop keeps
its own mirror of the venue's account (an :class:`~dea.execution.account.Account` fed with the
venue's fills and the funding it settles) so exposure and equity are computed exactly as the
backtest computes them; on restart the mirror is rebuilt from the journal's ledger.

Restart: the journal is loaded; the feed is replayed (a recorded feed from its start) with
decisions up to the last journaled one taken *silently* (features and prices warm up, nothing is
sent); at that point, or at once for a live feed, open orders are reconciled with the venue
(looked up by client id, re-sent if the venue never saw them), missed fills are journaled and
positions are checked against the venue's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dea.backtest.event import BarEvent as BtBar
from dea.backtest.event import FundingEvent as BtFunding
from dea.backtest.event import TradeEvent as BtTrade
from dea.book.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from dea.config.experiment import ExperimentConfig
from dea.errors import ConfigError, DeaError, MissingFundingError, ModelError
from dea.execution.account import Account
from dea.execution.fills import Fill
from dea.execution.orders import Order, OrderSpec, generate_orders
from dea.features.featureset import FeatureSet
from dea.features.missing import RowPreparer, input_names
from dea.guards import MarketGuard, apply_actions, merge_action
from dea.risk.engine import GREEK_RULE, RiskDecision, RiskEngine
from dea.timeutil import iso, parse_duration, parse_timestamp
from serving.audit_hash import as_model_inputs, input_digest
from serving.books import OrderBooks
from serving.events import BarEvent, BookMsg, ExogEvent, FundingEvent, FundingRateEvent, MarkEvent, Tick
from serving.exchanges.base import ExecFill, OrderAck
from serving.funding import FundingTracker, FundingWatch
from serving.hotswap import ModelSlot
from serving.journal import FillRow, Journal, OrderRow
from serving.market_state import PanelRow, StreamingPanel
from serving.observability import LoopMetrics
from serving.runner import LiveSpec, PolicyRunner

log = logging.getLogger("dea.serving.loop")

CrashHook = Callable[[str, int], None]
#: a re-sent order may exceed what the risk re-check allows by at most this much exposure (1 bp)
RECHECK_ABS_TOL = 1e-4


def resolve_latency_ns(cfg: ExperimentConfig) -> int:
    """``costs.latency`` / ``data.clock.latency`` (the same delay; the backtest's rule)."""
    from dea.backtest.config import latency_from_config

    return int(latency_from_config(cfg))


def live_spec(cfg: ExperimentConfig, fs: FeatureSet) -> LiveSpec:
    """What the model must have been trained on: model inputs (features + missing indicators),
    the feature spec hash and the instruments, in order."""
    from dea.risk.engine import contract_terms

    return LiveSpec.of(input_names(fs.names, cfg.features.missing), fs.spec_hash, cfg.data.symbols,
                       contract_terms(cfg.data.instruments, cfg.accounts, cfg.risk))


def feature_age_ns(age: dict[str, Any], names: Sequence[str]) -> float | None:
    """Age of the oldest input the decision used (ns), over the inputs that have an age.

    Plain Python over the (tiny) per-instrument arrays: numpy's per-call overhead would cost more
    than the comparison itself on the decision path."""
    worst = -1.0
    seen: set[int] = set()
    for name in names:
        a = age.get(name)
        if a is None or id(a) in seen:
            continue
        seen.add(id(a))
        if isinstance(a, np.ndarray):
            for v in a.tolist():
                if v > worst:  # False for NaN
                    worst = v
        elif a > worst:
            worst = float(a)
    return None if worst < 0 else worst


@dataclass
class LoopSummary:
    """What a run did (for the CLI and tests)."""

    events: int = 0
    decisions: int = 0
    silent_decisions: int = 0
    warmup_decisions: int = 0
    orders: int = 0
    fills: int = 0
    fallbacks: dict[str, int] = field(default_factory=dict)
    interventions: dict[str, int] = field(default_factory=dict)
    guarded: dict[str, int] = field(default_factory=dict)
    model_swaps: int = 0
    reconciled: int = 0
    resent: int = 0
    cancelled: int = 0
    halted: bool = False
    stopped: str | None = None  # why the loop stopped before its feed ended (signal, lost lease)
    equity: float = math.nan
    first_decision: int | None = None
    last_decision: int | None = None
    wall_s: float = 0.0
    report: dict[str, Any] | None = None  # the human summary (serving.summary), set by run_serve
    options: dict[str, int] | None = None  # the options overlay's rolls, settlements, holds (serving.options_overlay)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "report"}


class LiveLoop:
    """One allocator: feature set, model slot, risk engine, exchange, journal.

    ``model``: a loaded :class:`PolicyRunner` or a :class:`ModelSlot` (hot swap).
    ``clock_start``/``clock_end``: decision times (default: ``data.clock``; without a start the
    first decision is the first step boundary after the first event). ``native_steps``: per-source
    sampling steps for staleness when the config gives none (a replay provides them).
    ``crash_hook(point, t)``: called at the write-ahead points (tests inject crashes there).
    ``trade_from``: decisions before this time only warm the features up (replaying held-out data
    after a warm-up period); nothing is sent or journaled for them.
    ``clock()``: the local clock (int ns) the market-data guards hold event stamps against
    (default: the wall clock); see :mod:`dea.guards`.
    ``option_venue``: the paper option venue of ``serving.options_overlay``
    (:class:`serving.exchanges.paper_options.PaperOptionVenue`; required with that section).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        model: PolicyRunner | ModelSlot,
        exchange: Any,
        journal: Journal,
        *,
        feature_set: FeatureSet | None = None,
        metrics: LoopMetrics | None = None,
        clock_start: int | None = None,
        clock_end: int | None = None,
        native_steps: dict[str, int | None] | None = None,
        crash_hook: CrashHook | None = None,
        order_books: bool | None = None,
        trade_from: int | None = None,
        clock: Callable[[], int] | None = None,
        allow_model_change: bool = False,
        option_venue: Any = None,
    ) -> None:
        self.cfg = cfg
        self.trust = cfg.serving.trust_policy()
        self.allow_model_change = allow_model_change
        self.instruments = tuple(cfg.data.instruments)
        self.symbols = tuple(cfg.data.symbols)
        self.n = len(self.symbols)
        self.step = parse_duration(cfg.data.clock.step)
        self.latency_ns = resolve_latency_ns(cfg)
        if cfg.serving.options_overlay is not None:  # before the journal is touched
            from serving.options_overlay import check_overlay_latency

            check_overlay_latency(cfg, self.latency_ns)
        self.fs = feature_set or FeatureSet.from_config(cfg.features, self.symbols)
        self.spec = live_spec(cfg, self.fs)
        self.slot = model if isinstance(model, ModelSlot) else ModelSlot(model, self._loader)
        self._check_model(self.slot.current)
        self.exchange = exchange
        # a venue that works orders (serving.exchanges.worked): raw book events and trades, and
        # the unfilled rest of its parents as the pending quantity
        self._on_depth = getattr(exchange, "on_depth", None)
        self._on_tape = getattr(exchange, "on_tape", None)
        self._in_flight = getattr(exchange, "in_flight", None)
        self.journal = journal
        self.metrics = metrics or LoopMetrics(self.symbols)
        self.hook = crash_hook
        self.panel = StreamingPanel(cfg.data, native_steps=native_steps)
        uses_ob = any(inp.name.startswith("ob.") for inp in self.fs.inputs())
        self.books = OrderBooks(self.n, fill_levels=cfg.serving.book_levels) if (order_books or uses_ob) else None
        self.stream = self.fs.streaming(step_ns=self.step)
        self.missing = cfg.features.missing
        self.input_names = list(self.fs.names)
        self._prepare = RowPreparer(self.missing, self.input_names)
        self.age_names = [inp.name for inp in self.fs.inputs()] + ["price"]
        self.risk = RiskEngine(cfg.risk, self.instruments, cfg.accounts)
        self.order_spec = OrderSpec.from_instruments(self.instruments)
        self.id_prefix = cfg.serving.client_id_prefix
        self.charge_funding = cfg.costs.funding == "charge"
        self.funded = [j for j, i in enumerate(self.instruments) if i.has_funding]
        self.has_bars = any(s.kind == "bars" for s in cfg.data.sources)
        self.max_age = None if cfg.serving.max_feature_age is None else parse_duration(cfg.serving.max_feature_age)
        self.initial_equity = float(cfg.costs.initial_equity)
        # market-data guards (dea.guards): the same verdicts as the batch panel and the backtest
        self.guard = MarketGuard(cfg.guards, self.symbols, **({} if clock is None else {"clock": clock}))
        self._guard_pending: dict[int, str] = {}
        self._halt_reason: str | None = None
        src_index = {s.name: k for k, s in enumerate(cfg.data.sources)}
        self._funding_tracker = FundingTracker(self.n, [src_index.get(i.funding or "", -1) for i in self.instruments])
        default_interval = parse_duration(cfg.guards.funding_interval)
        self._funding_watch = FundingWatch(
            {j: self.instruments[j].funding_interval_ns or default_interval for j in self.funded}
            if self.charge_funding else {}
        )
        # account mirror (see module docstring)
        self.account = Account(self.n, self.initial_equity, [i.inverse for i in self.instruments])
        self.raw_px = [math.nan] * self.n
        self.pend_q = [0.0] * self.n
        self._open: dict[str, OrderRow] = {}
        # clock
        start = clock_start if clock_start is not None else (
            parse_timestamp(cfg.data.clock.start) if cfg.data.clock.start else None
        )
        self.clock_end = clock_end if clock_end is not None else (
            parse_timestamp(cfg.data.clock.end) if cfg.data.clock.end else None
        )
        self.next_t: int | None = start
        self.trade_from = trade_from
        self._nan_target = np.full(self.n, np.nan)
        # Decision monitors (e.g. serving.drift_monitor): called with (t, model inputs, action,
        # target) on every usable decision before the risk engine; they may scale the target.
        self.monitors: list[Callable[[int, np.ndarray, str, np.ndarray], tuple[str, np.ndarray]]] = []
        self.summary = LoopSummary()
        #: set (e.g. by a SIGTERM handler) to stop after the current event: see :meth:`run`
        self.stop_event: Any = None
        #: a :class:`serving.lease.LeaseKeeper` whose ``lost`` flag stops the loop
        self.lease: Any = None
        #: a :class:`dea.progress.Progress` advanced once per decision (``dea serve`` sets one for
        #: a replay): on the decision path only, never per event, and thinned by its min_interval
        self.progress: Any = None
        self.resume_after: int | None = None
        self._reconciled = False
        self._pending_events = 0
        self._decision_ns: list[int] = []  # decision latencies (features ready -> after risk), ns
        self._event_ns: list[int] = []  # event received -> orders generated, ns
        self.keep_latencies = False
        self._rate_t = time.perf_counter()
        self._rate_n = 0
        self._silent = False
        self._restore()
        self.overlay = self._build_overlay(option_venue)
        # a paper venue in a new process must see the replayed market to warm up (books, impact
        # estimates); it takes over the journal's account when the replay reaches the restart point
        self._venue_fresh = self.resume_after is not None and bool(getattr(exchange, "is_fresh", False))
        self._silent = self.resume_after is not None and not self._venue_fresh

    def _build_overlay(self, venue: Any) -> Any:
        """``serving.options_overlay``: the option leg (:mod:`serving.options_overlay`), its
        position restored from the journal; None without the section."""
        ov = self.cfg.serving.options_overlay
        if ov is None:
            if venue is not None:
                raise ConfigError("an option venue was given but the config has no serving.options_overlay")
            return None
        if venue is None:
            raise ConfigError("serving.options_overlay needs the paper option venue (dea serve --exchange paper builds it)")
        from serving.options_overlay import LiveOverlay

        return LiveOverlay(ov, self.instruments, self.journal, venue, cash=self._option_cash, id_prefix=self.id_prefix,
                           risk_budgets=dict(self.cfg.risk.greeks or {}), hook=self._hook)

    def _option_cash(self, paid: float) -> None:
        """Option premium, fees and settlements move the account mirror's cash (USD)."""
        self.account.cash -= paid

    def equity(self) -> float:
        """The account's equity: the mirror of the venue's account plus the option held at its mark."""
        e = self.account.equity()
        return e + self.overlay.market_value() if self.overlay is not None else e

    # -- model -----------------------------------------------------------------------------------
    def _loader(self, source: str) -> PolicyRunner:
        return PolicyRunner.load(source, self.spec, trust=self.trust)

    def _check_model(self, runner: PolicyRunner) -> None:
        from dea.onnx_contract import check_compatible

        check_compatible(
            runner.metadata,
            feature_names=self.spec.feature_names,
            feature_spec_hash=self.spec.feature_spec_hash,
            instruments=self.spec.instruments,
            source=runner.source,
        )

    # -- restart ---------------------------------------------------------------------------------
    def _restore(self) -> None:
        j = self.journal
        j.check_identity(self.symbols)
        st = j.load()
        if st.is_fresh:
            j.set_meta("initial_equity", repr(self.initial_equity))
            j.set_cash(self.initial_equity)
            j.save_state("model", self.slot.current.describe())
            j.record_event("start", {"model": self.slot.current.describe(), "exchange": getattr(self.exchange, "name", "?")})
            self.metrics.set_model(self.slot.current.version, self.slot.current.source, getattr(self.slot.current, "sha256", None))
            return
        self.initial_equity = float(st.meta.get("initial_equity", self.initial_equity))
        acc = Account(self.n, self.initial_equity, [i.inverse for i in self.instruments])
        for e in j.ledger():
            if e.kind == "fill" and e.fill is not None:
                f = e.fill
                acc.apply_fill(Fill(f.index, f.ts, f.qty, f.price, f.fee, f.spread, f.impact, f.client_id, f.liquidation))
            elif e.kind == "funding":
                acc.cash -= e.amount
                acc.funding[e.index] += e.amount
            elif e.kind == "option":  # option premium, fees, settlements (serving.options_overlay)
                acc.cash -= e.amount
        self.account = acc
        if st.risk_state is not None:
            self.risk.load_state_dict(st.risk_state)
        for o in st.open_orders:
            self._open[o.client_id] = o
            if o.status == "sent":
                self.pend_q[o.index] += o.qty
        self._check_model_identity(st.model)
        self._replay_recurrent_state()
        self.resume_after = st.last_decision_t
        j.record_event("restart", {"last_decision": st.last_decision_t, "open_orders": len(st.open_orders),
                                   "model": self.slot.current.describe()})
        self.metrics.set_model(self.slot.current.version, self.slot.current.source, getattr(self.slot.current, "sha256", None))
        log.info("restart: %d decisions journaled, last at %s, %d open orders", st.decisions,
                 iso(st.last_decision_t) if st.last_decision_t else None, len(st.open_orders))

    def _replay_recurrent_state(self) -> None:
        """A restarted recurrent model continues from the state the journal's last step left,
        replayed from the journaled inputs (:func:`serving.audit.replay_recurrent_state`); when
        that is impossible it starts from a zero state, and says so (log and journal)."""
        runner = self.slot.current
        if not getattr(runner, "is_recurrent", False):
            return
        from serving.audit import replay_recurrent_state

        steps, why = replay_recurrent_state(runner, self.journal.decisions())
        if why is None:
            log.info("recurrent model: hidden state replayed from %d journaled steps", steps)
        else:
            log.warning("recurrent model: %s; the model continues from a zero state", why)
        self.journal.record_event("recurrent_state", {"replayed_steps": steps, "problem": why})

    def _check_model_identity(self, journaled: dict[str, Any] | None) -> None:
        """A restart must serve the model the journal was written with (same SHA-256), unless the
        operator says otherwise (``--allow-model-change``), and then the change is journaled."""
        cur = self.slot.current
        was = (journaled or {}).get("sha256")
        sha = getattr(cur, "sha256", None)
        if was == sha:
            return
        what = (f"journal {self.journal.path} was written by model {(journaled or {}).get('version')!r} "
                f"(sha256 {was}); this restart loads {cur.version!r} (sha256 {sha})")
        if not self.allow_model_change:
            raise ModelError(f"{what}: refusing to continue with a different model; pass --allow-model-change "
                             "to switch models on this journal (the change is journaled)")
        log.warning("%s: model change allowed (--allow-model-change)", what)
        self.journal.record_event("model_change", {"from": journaled, "to": cur.describe()})
        self.journal.save_state("model", cur.describe())

    def reconcile(self, now: int) -> None:
        """Bring journal, mirror and venue into agreement (open orders, missed fills, positions)."""
        self._reconciled = True
        ex = self.exchange
        if self._venue_fresh:
            pending = [Order(o.instrument, o.index, o.qty, o.t_decision, o.t_due, o.price_ref, cid)
                       for cid, o in self._open.items() if o.status == "sent"]
            ex.restore(self.account, pending)
            self._venue_fresh = False
            self._silent = False
            self.journal.record_event("venue_restored", {"positions": list(self.account.qty), "pending": len(pending)}, now)
        if self.overlay is not None:
            self.overlay.restart_mark(now)  # the equity of the decision at now (the option marked on its inputs)
        unseen: list[OrderRow] = []
        for cid, o in list(self._open.items()):
            ack = ex.lookup(cid, o.instrument)
            if ack.status == "unknown":
                if o.status == "sent":
                    # the journal says it was accepted but the venue has no record: log it
                    self.journal.record_event("reconcile", {"order": cid, "problem": "venue has no record of a sent order"}, now)
                unseen.append(o)
            else:
                self._on_ack(ack, o)
        for o, why in self._resend_verdicts(unseen, now):
            cid = o.client_id
            if why is not None:
                self._cancel_journaled(o, why, now)
                continue
            order = Order(o.instrument, o.index, o.qty, o.t_decision, o.t_due, o.price_ref, cid)
            acks = self._submit([order], np.array(self.raw_px))
            self.summary.resent += 1
            self.journal.record_event("resend", {"order": cid, "status": acks[0].status}, now)
        self._poll_fills(now)
        venue = ex.positions()
        mine = {s: float(q) for s, q in zip(self.symbols, self.account.qty, strict=True)}
        diff = {s: (mine.get(s, 0.0), q) for s, q in venue.items() if abs(q - mine.get(s, 0.0)) > 1e-9 * max(1.0, abs(q))}
        if diff:
            log.warning("reconcile: positions differ from the venue %s; taking the venue's", diff)
            for s, (_, q) in diff.items():
                self.account.qty[self.symbols.index(s)] = q
            self.journal.set_positions({s: q for s, (_, q) in diff.items()}, reason="venue positions differ from the journal")
        if self.overlay is not None and self.resume_after is not None:
            allowed = self.journal.decision_allowed(self.resume_after) or []
            w = allowed[self.overlay.index] if len(allowed) > self.overlay.index else None
            self.overlay.reconcile(self.resume_after, 0.0 if w is None else float(w), self.equity, now)
        self.summary.reconciled += 1
        self.journal.record_event("reconciled", {"open_orders": len(self._open), "position_diffs": len(diff)}, now)

    def _resend_verdicts(self, orders: Sequence[OrderRow], now: int) -> list[tuple[OrderRow, str | None]]:
        """For each order the venue never saw: None (re-send it) or why it is cancelled instead.

        An order older than ``serving.order_ttl`` was decided on a market that is gone; the rest
        are re-checked by the risk engine at the current prices and equity as one target (what
        the positions would be once they fill), on a copy of its state: an order the engine would
        now cut or block is cancelled, and the next decision trades from the current state."""
        if not orders:
            return []
        ttl = None if self.cfg.serving.order_ttl is None else parse_duration(self.cfg.serving.order_ttl)
        out: list[tuple[OrderRow, str | None]] = []
        fresh: list[OrderRow] = []
        for o in orders:
            age = now - o.t_decision
            if ttl is not None and age > ttl:
                out.append((o, f"expired: decided {age / 1e9:.0f}s before the restart, over serving.order_ttl "
                               f"{self.cfg.serving.order_ttl}"))
            else:
                fresh.append(o)
        if not fresh:
            return out
        acc = self.account
        e = self.equity()
        prices = np.array(self.raw_px)
        if not (e - e == 0.0) or e <= 0 or not np.isfinite(prices[[o.index for o in fresh]]).all():
            why = f"risk re-check impossible at restart: equity {e!r}, prices {prices.tolist()}"
            return out + [(o, why) for o in fresh]
        cur = acc.exposure(self.pend_q, e)
        # the decision's own (pre-risk) target goes through the engine again: its rules are not
        # idempotent (a drawdown brake applied to an already-braked exposure would brake twice)
        t_last = max(o.t_decision for o in fresh)
        journaled = self.journal.decision_target(t_last)
        target = np.array([math.nan if v is None else float(v) for v in journaled], dtype=np.float64) \
            if journaled is not None and len(journaled) == self.n else np.full(self.n, math.nan)
        extra = np.zeros(self.n)
        for o in fresh:
            extra[o.index] += o.qty
        saved = self.risk.state_dict()
        try:
            decision = self.risk.apply(now, target, cur, e, prices=prices, **self._option_greeks(e))
        finally:
            self.risk.load_state_dict(saved)
        allowed = np.asarray(decision.exposure, dtype=np.float64)
        rules = ",".join(sorted({i.rule for i in decision.interventions})) or "none"
        for o in fresh:
            j = o.index
            want = extra[j] * prices[j] / e  # the exposure change the unsent orders would make
            got = allowed[j] - cur[j]  # the change the engine allows now
            # the engine's state already holds decision t (EWMA, peak equity): allow what that
            # moves by, 1 % of the order or 1 bp of equity, and no more
            ok = not decision.halted and want * got > 0 and abs(got) >= abs(want) - max(0.01 * abs(want), RECHECK_ABS_TOL)
            out.append((o, None if ok else f"risk re-check at restart cut it (rules: {rules}): the orders would "
                                           f"move exposure by {want:.6g}, the engine now allows {got:.6g}"))
        return out

    def _cancel_journaled(self, o: OrderRow, why: str, now: int) -> None:
        """Cancel an order the venue never saw: journaled as cancelled, never sent."""
        self._open.pop(o.client_id, None)
        if o.status == "sent":
            self.pend_q[o.index] -= o.qty
        self.journal.update_order(o.client_id, "cancelled", reason=why)
        self.journal.record_event("cancel_unsent", {"order": o.client_id, "reason": why}, now)
        self.summary.cancelled += 1
        self.metrics.orders.labels("cancelled").inc()
        log.warning("restart: order %s not re-sent: %s", o.client_id, why)

    # -- events ----------------------------------------------------------------------------------
    def run(self, feed: Iterable[Any], *, max_events: int | None = None, max_decisions: int | None = None) -> LoopSummary:
        """Consume ``feed`` until it ends (or ``max_events``); returns the summary."""
        t_wall = time.perf_counter()
        n = 0
        step = self.step
        progress = self.progress
        try:
            guard = self.guard
            for ev in feed:
                av = ev.available_at
                if guard.enabled and guard.future(av):
                    # a stamp beyond the local clock must not move the decision clock (it would
                    # fire every remaining decision at once and then ignore the real events)
                    guard.counts["future"] += 1
                    self._quarantine("future", getattr(ev, "instrument", -1), av, math.nan, type(ev).__name__)
                    n += 1
                    continue
                self._funding_watch.start(av)
                if self.next_t is None:  # no configured start: the first step boundary at/after the feed
                    self.next_t = -((-(av - self.panel.origin)) // step) * step + self.panel.origin
                if self.next_t < av:
                    recv = time.perf_counter_ns()
                    while self.next_t is not None and self.next_t < av and (self.clock_end is None or self.next_t <= self.clock_end):
                        self._decide(self.next_t, recv)
                        self.next_t += step
                        if progress is not None:
                            progress.advance()
                        if max_decisions is not None and self.summary.decisions >= max_decisions:
                            return self._finish(t_wall)
                self._apply(ev)
                n += 1
                if max_events is not None and n >= max_events:
                    return self._finish(t_wall)
                if self.stop_event is not None and self.stop_event.is_set():
                    self.shutdown(str(getattr(self.stop_event, "reason", "stop requested")))
                    return self._finish(t_wall)
                if self.lease is not None and self.lease.lost is not None:
                    self.summary.stopped = f"lease lost: {self.lease.lost}"
                    log.error("journal lease lost, stopping without trading: %s", self.lease.lost)
                    return self._finish(t_wall)
            # a recorded feed ends: decide up to the end of the clock
            while self.clock_end is not None and self.next_t is not None and self.next_t <= self.clock_end:
                self._decide(self.next_t, time.perf_counter_ns())
                self.next_t += step
                if progress is not None:
                    progress.advance()
        finally:
            self.summary.events += n
        return self._finish(t_wall)

    def shutdown(self, reason: str) -> None:
        """A clean stop (SIGTERM/SIGINT) between two events: open orders are left at the venue or
        cancelled (``serving.shutdown_orders``), and the stop is journaled."""
        mode = self.cfg.serving.shutdown_orders
        cancelled, left = 0, 0
        if mode == "cancel":
            cancel = getattr(self.exchange, "cancel_order", None)
            for cid, o in list(self._open.items()):
                if o.status == "new":  # journaled, never sent: it never will be
                    self._cancel_journaled(o, f"shutdown ({reason}): cancelled before sending", self.next_t or 0)
                    cancelled += 1
                    continue
                if cancel is None:
                    left += 1
                    continue
                try:
                    ack = cancel(cid, o.instrument)
                except DeaError as exc:
                    log.error("shutdown: cannot cancel %s: %s", cid, exc)
                    left += 1
                    continue
                if getattr(ack, "status", "") in ("cancelled", "canceled", "rejected"):
                    self._cancel_journaled(o, f"shutdown ({reason}): cancelled at the venue", self.next_t or 0)
                    cancelled += 1
                else:
                    left += 1
        else:
            left = len(self._open)
        self.summary.stopped = reason
        self.journal.record_event("shutdown", {"reason": reason, "orders": mode, "cancelled": cancelled,
                                               "left_open": left}, self.next_t)
        log.info("shutdown (%s): %d open orders cancelled, %d left open", reason, cancelled, left)

    def _finish(self, t_wall: float) -> LoopSummary:
        s = self.summary
        s.wall_s += time.perf_counter() - t_wall
        s.equity = self.equity()
        if self.overlay is not None:
            s.options = dict(self.overlay.counts)
        s.interventions = {k: v for k, v in self.risk.counts.items() if v}
        s.halted = self.risk.halted
        return s

    def _apply(self, ev: Any) -> None:
        if isinstance(ev, BookMsg):
            self._on_book_msg(ev)
            return
        g = self.guard
        if isinstance(ev, BarEvent):
            v = g.check_price(ev.source, ev.instrument, ev.ts_event, ev.available_at, ev.close)
            if v is not None:
                self._quarantine(v, ev.instrument, ev.ts_event, ev.close, "bar close")
                return
            self.panel.on_bar(ev)
        elif isinstance(ev, ExogEvent):
            v = g.check_value(("exog", ev.slot), -1, ev.ts_event, ev.available_at, ev.value, allow_nan=True, ordered=False)
            if v is not None:
                self._quarantine(v, -1, ev.ts_event, ev.value, f"exogenous slot {ev.slot}")
                return
            self.panel.on_exog(ev)
        elif isinstance(ev, MarkEvent):
            v = g.check_price(ev.source, ev.instrument, ev.ts_event, ev.available_at, ev.mark_price)
            if v is None:
                v = g.check_value(("index", ev.source), ev.instrument, ev.ts_event, ev.available_at, ev.index_price,
                                  allow_nan=True, ordered=False)
            if v is not None:
                self._quarantine(v, ev.instrument, ev.ts_event, ev.mark_price, "mark price")
                return
            self.panel.on_mark(ev)
        elif isinstance(ev, FundingEvent):
            if not self._funding_ok(ev.instrument, ("funding", ev.source), ev.ts_event, ev.available_at, ev.rate):
                return
            self.panel.on_funding(ev)
        elif isinstance(ev, FundingRateEvent):
            if not self._funding_ok(ev.instrument, "funding_rate", ev.ts_event, ev.available_at, ev.rate):
                return
            settled = self._funding_tracker.on_rate(ev)
            if settled is not None and settled.source >= 0:
                self.panel.on_funding(settled)
        elif isinstance(ev, Tick):
            return
        else:
            raise DeaError(f"live loop: unknown event type {type(ev).__name__}")
        self._pending_events += 1

    def _funding_ok(self, j: int, stream: Any, ts: int, av: int, rate: float) -> bool:
        v = self.guard.check_value(stream, j, ts, av, rate)
        if v is not None:
            self._quarantine(v, j, ts, rate, "funding rate")
            return False
        self._funding_watch.seen(j, av)
        return True

    def _quarantine(self, guard: str, j: int, ts: int, value: float, what: str) -> None:
        """A value the guards refused: counted, logged, journaled, and its action queued for the
        next decision (``j`` < 0: not one instrument's, the action applies to all)."""
        hit = self.guard.hit(guard, j, ts, value, what)
        if self.overlay is not None:
            self.overlay.on_quarantine(j, guard, what)
        s = self.summary
        s.guarded[guard] = s.guarded.get(guard, 0) + 1
        self.metrics.child(self.metrics.guards, guard).inc()
        sym = self.symbols[j] if 0 <= j < self.n else "*"
        log.warning("%s at %s (value %r): quarantined, action %s", hit.detail, iso(ts) if abs(ts) < 2**62 else ts, value,
                    hit.action, extra={"event": "guard", "guard": guard, "instrument": sym, "action": hit.action})
        if not (self.resume_after is not None and ts <= self.resume_after):  # a restart replays what is journaled
            self.journal.record_guard(ts, guard, sym, value, hit.action, hit.detail)
        if hit.action != "ignore":
            for k in ([j] if 0 <= j < self.n else range(self.n)):
                merge_action(self._guard_pending, k, hit.action)
            if hit.action == "halt" and self._halt_reason is None:
                self._halt_reason = f"{hit.detail} ({what} {value!r}): guard action halt"

    def _on_book_msg(self, msg: BookMsg) -> None:
        books = self.books
        if books is None:
            return
        j, ev = msg.instrument, msg.event
        self._pending_events += 1
        if isinstance(ev, BookTicker):  # the most frequent message: just remembered
            books.on_ticker(j, ev)
        elif isinstance(ev, (DepthSnapshot, DepthDiff)):
            was_valid = books.valid(j)
            if was_valid and isinstance(ev, DepthDiff) and books.would_break(j, ev):
                freeze = getattr(self.exchange, "freeze_book", None)
                if freeze is not None and not self._silent:
                    freeze(j, msg.available_at)  # fills during the gap use the last valid book
            books.on_book(j, ev)
            if self._on_depth is not None and not self._silent:
                self._on_depth(j, ev)  # a venue working orders on its own queue model
            self._book_changed(j, msg.available_at, was_valid)
        elif isinstance(ev, Trade):
            books.on_trade(j, ev)
            if self._on_tape is not None and not self._silent:
                self._on_tape(j, ev)
            if not books.valid(j):
                self._venue_trade(j, ev)

    def _book_changed(self, j: int, ts: int, was_valid: bool) -> None:
        """The backtest's book-event rule: fill what was due, then the new book sets the price."""
        books = self.books
        assert books is not None
        valid = books.valid(j)
        on_book = None if self._silent else getattr(self.exchange, "on_book", None)
        if valid:
            mid = books.mid(j)
            v = self.guard.check_price("book", j, ts, ts, mid, ordered=False)
            if v is not None:
                self._quarantine(v, j, ts, mid, "book mid")
                return
            self.raw_px[j] = mid
            self.account.mark(j, mid)
            if on_book is not None:
                on_book(ts, j, books.views[j], mid)
        elif was_valid and on_book is not None:
            on_book(ts, j, None, math.nan)
        if on_book is not None:
            self._poll_fills(ts)

    def _venue_trade(self, j: int, ev: Trade) -> None:
        v = self.guard.check_price("trade", j, ev.ts_event, ev.available_at, ev.price, ordered=False)
        if v is not None:
            self._quarantine(v, j, ev.ts_event, ev.price, "trade price")
            return
        self.raw_px[j] = ev.price
        self.account.mark(j, ev.price)
        on_market = getattr(self.exchange, "on_market", None)
        if on_market is not None and not self._silent:
            on_market(BtTrade(ev.available_at, j, ev.price, ev.size))
            self._poll_fills(ev.available_at)

    # -- decisions -------------------------------------------------------------------------------
    def _decide(self, t: int, recv_ns: int) -> None:
        price_from_book = self.books is not None and not (self.has_bars or self.panel.has_mark)
        row = self.panel.row(t, require_price=not price_from_book)
        if self.books is not None:
            self.books.fill_row(t, row.fields, row.age)
            if price_from_book:  # an order-book-only config: the mid is the execution price
                row.fields["price"] = row.fields["ob.mid"]
                row.age["price"] = row.age["ob.mid"]
        resumed = self.resume_after is not None and t <= self.resume_after
        silent = resumed or (self.trade_from is not None and t < self.trade_from)
        self._silent = resumed and not self._venue_fresh  # the venue already saw these times
        self._market_at_decision(t, row, resumed)
        raw = self.stream.update(t, row.fields, row.series)
        self._flush_event_counts()
        ov_in = self._overlay_inputs(t, row) if self.overlay is not None else None
        if silent:
            self._guard_pending.clear()
            if resumed:
                self.summary.silent_decisions += 1
                if t == self.resume_after:
                    self.reconcile(t)
            else:
                self.summary.warmup_decisions += 1
            return
        if not self._reconciled and self.resume_after is not None:
            self.reconcile(t)
        if self.summary.first_decision is None:
            self.summary.first_decision = t
        self.summary.last_decision = t
        previous = self.slot.current
        swapped = self.slot.swap_if_ready()
        if swapped is not None:
            try:
                self._check_model(swapped)  # a slot built elsewhere may have a lax loader
            except ModelError as exc:
                self.slot.current = previous
                self.slot.failures += 1
                self.slot.last_error = str(exc)
                self.metrics.child(self.metrics.model_swaps, "refused").inc()
                self.journal.record_event("model_swap_refused", {"error": str(exc)}, t)
                log.error("model swap refused at %s: %s", iso(t), exc)
            else:
                self._on_swap(swapped, t)
        x, usable = self._prepare(raw, self.stream.is_warm)
        ex = self.exchange
        before = getattr(ex, "before_decision", None)
        if before is not None:
            before(t)
            self._poll_fills(t)
        if self._in_flight is not None:  # a venue working parents knows what is still to execute
            self.pend_q = list(self._in_flight())
        acc = self.account
        if ov_in is not None:
            self.overlay.revalue(ov_in)  # the option at t is part of the equity the perpetual is sized on
        e = self.equity()
        prices = np.array(self.raw_px)
        age = feature_age_ns(row.age, self.age_names)
        runner = self.slot.current
        state0 = (runner.state_digest(), runner.steps) if getattr(runner, "is_recurrent", False) else None
        t0 = time.perf_counter_ns()
        e_orders = e
        opt_greeks: dict[str, Any] = {}
        if not e - e == 0.0:  # inf/NaN equity: de-risk (flatten) and halt, never an exception out of the loop
            action, target, decision = self._equity_halt(t, e)
            cur = np.zeros(self.n)
            e_orders = 1.0  # flat targets need no equity; any finite value sizes them
        else:
            cur = acc.exposure(self.pend_q, e)
            action, target, dispersion = self._target(runner, x, usable, cur, age)
            if usable and self.monitors:
                for monitor in self.monitors:
                    action, target = monitor(t, x, action, target)
            if self._guard_pending:
                action, target = self._guard_actions(action, target, cur)
            opt_greeks = self._option_greeks(e)
            decision = self.risk.apply(t, target, cur, e, feature_age_ns=age, dispersion=dispersion, prices=prices,
                                       **opt_greeks)
        t1 = time.perf_counter_ns()
        orders = generate_orders(t, decision.exposure, acc.qty, self.pend_q, e_orders, prices, self.order_spec,
                                 latency_ns=self.latency_ns, id_prefix=self.id_prefix, contract_n=acc.contract_n)
        t2 = time.perf_counter_ns()
        self._observe(t, t1 - t0, t2 - recv_ns, action, decision, e, age)
        rows = [OrderRow(o.client_id, o.t_decision, o.t_due, o.instrument, o.index, o.qty, o.price_ref, "new")
                for o in orders]
        self._hook("before_journal", t)  # market, fills and funding at t are journaled; the decision is not
        self.journal.record_decision(
            t, model_version=runner.version, action=action, target=target, allowed=decision.exposure, equity=e,
            orders=rows,
            detail={"rules": [i.rule for i in decision.interventions], "age_ns": age, "halted": decision.halted,
                    **(self._greek_detail(opt_greeks, decision) if opt_greeks else {}),
                    **({"halt_reason": self._halt_reason} if decision.halted and self._halt_reason else {}),
                    **self._audit_fields(runner, x, cur, state0)},
            risk_state=self.risk.state_dict(),
        )
        for r in rows:
            self._open[r.client_id] = r
        self._hook("after_journal", t)
        if orders:
            self.summary.orders += len(orders)
            self._submit(orders, prices)
            self._hook("after_submit", t)
        self._poll_fills(t)
        self._hook("after_fills", t)
        if ov_in is not None:
            w = float(decision.exposure[self.overlay.index])
            self.overlay.step(ov_in, w if w == w else 0.0, self.equity, halted=decision.halted or not e - e == 0.0)
        self.summary.decisions += 1
        if decision.halted and not self.summary.halted:
            self.summary.halted = True
            self.metrics.halted.set(1)
            reasons = [i.reason for i in decision.interventions] + ([self._halt_reason] if self._halt_reason else [])
            self.journal.record_event("kill_switch", {"reasons": reasons}, t)
            log.error("risk kill switch engaged at %s: trading halted (flat) until reset: %s", iso(t), "; ".join(reasons))

    def _overlay_inputs(self, t: int, row: PanelRow) -> Any:
        """The overlay's guarded price (the execution price the mirror is marked at) and IV at t."""
        j = self.overlay.index
        age = row.age.get("price")
        a = float(age[j]) if isinstance(age, np.ndarray) else (math.nan if age is None else float(age))
        return self.overlay.inputs(t, float(self.raw_px[j]), a, row.fields, row.age)

    def _option_greeks(self, equity: float) -> dict[str, Any]:
        """``option_greeks`` for the risk engine when ``risk.greeks`` budgets the overlay's
        underlying: the option's delta counts in the underlying's exposure (rule greek_budget)."""
        ov = self.overlay
        if ov is None or not ov.risk_counts_options or not equity > 0:
            return {}
        return {"option_greeks": {ov.underlying: ov.greeks(equity)}}

    @staticmethod
    def _greek_detail(opt_greeks: dict[str, Any], decision: RiskDecision) -> dict[str, Any]:
        """What ``dea audit`` needs to re-derive the greek rule (``risk.greeks``): the option delta
        the engine counted per underlying and, when the rule cut, the exposure before the cut."""
        out: dict[str, Any] = {"option_delta": {u: g.delta for u, g in opt_greeks["option_greeks"].items()}}
        for rec in decision.interventions:
            if rec.rule == GREEK_RULE:
                out["greek_before"] = list(rec.before)
        return out

    def _audit_fields(self, runner: PolicyRunner, x: np.ndarray, cur: np.ndarray,
                      state0: tuple[str | None, int] | None = None) -> dict[str, Any]:
        """What ``dea audit`` needs to re-derive this decision: the model's digest, the hash of the
        exact float32 input vector (features, exposure), with ``serving.journal_inputs`` the vector
        itself, and for a recurrent model the digest of the state it saw and whether the model
        ran (``state``: the audit and a restart replay the state from these)."""
        fx, fe = as_model_inputs(x, cur)
        out: dict[str, Any] = {"model_sha256": getattr(runner, "sha256", None), "input_sha256": input_digest(fx, fe)}
        if self.cfg.serving.journal_inputs:
            out["inputs"] = {"features": fx.tolist(), "exposure": fe.tolist()}
        if state0 is not None:
            out["state"] = {"sha256": state0[0], "ran": runner.steps != state0[1]}
        return out

    def _guard_actions(self, action: str, target: np.ndarray, cur: np.ndarray) -> tuple[str, np.ndarray]:
        """The queued guard actions (hold / de-risk / halt) applied to this decision's target."""
        tgt = target.tolist()
        if apply_actions(tgt, cur.tolist(), self._guard_pending, self.cfg.guards.derisk_factor):
            self.risk.halt()
        kinds = sorted(set(self._guard_pending.values()))
        self._guard_pending.clear()
        return f"{action}+guard:{'/'.join(kinds)}", np.array(tgt)

    def _equity_halt(self, t: int, e: float) -> tuple[str, np.ndarray, RiskDecision]:
        """Equity is not finite: journal why, engage the kill switch and trade to flat."""
        if self._halt_reason is None:
            self._halt_reason = f"equity is {e!r} (not finite): de-risked to flat and halted"
        if not self.risk.halted:
            self.guard.counts["equity"] += 1
            self._quarantine("equity", -1, t, e, "account equity")
            self.risk.halt()
        self._guard_pending.clear()
        zeros = np.zeros(self.n)
        return "halt:equity_not_finite", zeros, RiskDecision(zeros, (), True)

    def _target(
        self, runner: PolicyRunner, x: np.ndarray, usable: bool, cur: np.ndarray, age: float | None
    ) -> tuple[str, np.ndarray, np.ndarray | None]:
        """Model target, or the configured safe action when the model cannot be trusted."""
        if not usable:
            return "warmup", self._nan_target, None
        if self.max_age is not None and age is not None and age > self.max_age:
            return self._fallback("stale", cur), self._safe_target(cur), None
        try:
            out = runner.decide(x, cur)
        except Exception as exc:  # onnxruntime raises its own types; the loop must go on
            log.error("model %s failed: %s", runner.version, exc)
            return self._fallback("model_error", cur), self._safe_target(cur), None
        vals = out.ravel().tolist()  # a handful of floats: plain Python beats numpy's call overhead
        for v in vals:
            if not v - v == 0.0:
                return self._fallback("nan_output", cur), self._safe_target(cur), None
        disp = runner.dispersion
        return "model", np.array(vals[: out.shape[-1]]), (None if disp is None else disp[0].astype(np.float64))

    def _fallback(self, reason: str, cur: np.ndarray) -> str:
        self.summary.fallbacks[reason] = self.summary.fallbacks.get(reason, 0) + 1
        self.metrics.fallbacks.labels(reason).inc()
        log.warning("fallback %s: %s", self.cfg.serving.fallback, reason, extra={"event": "fallback", "reason": reason})
        return f"fallback:{reason}"

    def _safe_target(self, cur: np.ndarray) -> np.ndarray:
        mode = self.cfg.serving.fallback
        if mode == "hold":
            return self._nan_target  # the risk engine keeps the current exposure
        if mode == "derisk":
            return cur * self.cfg.serving.derisk_factor
        return np.zeros(self.n)

    def _market_at_decision(self, t: int, row: PanelRow, silent: bool) -> None:
        """Bar row and funding settled at t, to the venue and the mirror (the backtest's events)."""
        f = row.fields
        price = np.asarray(f["price"], dtype=np.float64)
        if self.has_bars:
            books = self.books
            for j in range(self.n):
                p = float(price[j])
                self.raw_px[j] = p
                if books is None or not books.valid(j):
                    self.account.mark(j, p)
        on_market = getattr(self.exchange, "on_market", None)
        if silent:
            if self._venue_fresh and self.has_bars and on_market is not None:  # warm a new paper venue
                on_market(BtBar(t, price.copy(), _opt(f.get("volume")), _opt(f.get("high")), _opt(f.get("low"))))
            return
        if self.has_bars and on_market is not None:
            on_market(BtBar(t, price.copy(), _opt(f.get("volume")), _opt(f.get("high")), _opt(f.get("low"))))
            self._poll_fills(t)
        if self.charge_funding and self.funded:
            self._check_funding(t)
            settled = f["funding_settled"]
            for j in self.funded:
                r = float(settled[j])
                if r != 0.0 and r == r:
                    if self.journal.funding_recorded(t, self.symbols[j]):
                        # settled and journaled before a crash that came before this decision was
                        # journaled: the mirror (rebuilt from the ledger) and a venue restored from
                        # it already hold it; settling again would charge it twice
                        continue
                    if on_market is not None:
                        on_market(BtFunding(t, j, r))
                        self._poll_fills(t)
                    paid = self.account.settle_funding(j, r)
                    if paid != 0.0:
                        self.journal.record_funding(t, self.symbols[j], j, paid)

    def _check_funding(self, t: int) -> None:
        """A funded perpetual without funding information for longer than its interval: an error
        or the configured action (``guards.funding_missing``), never a silent zero."""
        for j, last, new in self._funding_watch.missing(t):
            why = (f"perpetual {self.symbols[j]}: no funding information since {iso(last)}, longer than its "
                   f"funding interval, at decision {iso(t)}")
            if self.cfg.guards.funding_missing == "error":
                raise MissingFundingError(why + "; guards.funding_missing is 'error'")
            if new:
                self.guard.counts["funding_missing"] += 1
                self._quarantine("funding_missing", j, t, math.nan, "funding rate")
            else:
                action = self.cfg.guards.actions.funding_missing
                if action != "ignore":
                    merge_action(self._guard_pending, j, action)

    # -- orders and fills --------------------------------------------------------------------------
    def _submit(self, orders: Sequence[Order], prices: np.ndarray) -> list[OrderAck]:
        ex = self.exchange
        try:
            acks = ex.submit(orders, prices) if getattr(ex, "name", "") == "paper" else ex.submit(orders)
        except DeaError as exc:
            acks = [OrderAck(o.client_id, "rejected", None, str(exc)) for o in orders]
        self._hook("after_venue", orders[0].t_decision if orders else 0)
        for ack, o in zip(acks, orders, strict=True):
            row = self._open.get(o.client_id) or OrderRow(o.client_id, o.t_decision, o.t_due, o.instrument, o.index, o.qty, o.price_ref, "new")
            self._on_ack(ack, row)
        return acks

    def _on_ack(self, ack: OrderAck, row: OrderRow) -> None:
        cid = ack.client_id
        if ack.status == "sent" and row.status != "sent":
            self.pend_q[row.index] += row.qty
            self._open[cid] = replace(row, status="sent", venue_id=ack.venue_id)
            self.journal.update_order(cid, "sent", venue_id=ack.venue_id)
            self.metrics.orders.labels("sent").inc()
        elif ack.status == "rejected":
            if row.status == "sent":
                self.pend_q[row.index] -= row.qty
            self._open.pop(cid, None)
            self.journal.update_order(cid, "rejected", venue_id=ack.venue_id, reason=ack.reason)
            self.metrics.orders.labels("rejected").inc()
            log.warning("order %s rejected: %s", cid, ack.reason)
        elif ack.status == "filled":
            self.metrics.orders.labels("filled").inc()

    def _poll_fills(self, now: int) -> None:
        fills = self.exchange.poll_fills(now)
        for f in fills:
            self._on_fill(f)
        cancelled = getattr(self.exchange, "cancelled", None)
        if cancelled is not None:
            for ack in cancelled():
                row = self._open.get(ack.client_id)
                if row is not None and row.status == "sent":
                    self._on_ack(ack, row)

    def _on_fill(self, f: ExecFill) -> None:
        row = FillRow(f.fill_id, f.client_id, f.ts, f.instrument, f.index, f.qty, f.price, f.fee, f.spread, f.impact,
                      f.client_id == "liquidation")
        if not self.journal.record_fill(row, order_status="filled" if f.client_id in self._open else None):
            return  # already journaled (a repeated report)
        self.account.apply_fill(Fill(f.index, f.ts, f.qty, f.price, f.fee, f.spread, f.impact, f.client_id, row.liquidation))
        o = self._open.pop(f.client_id, None)
        if o is not None and o.status == "sent":
            self.pend_q[o.index] -= o.qty
        self.summary.fills += 1
        self.metrics.fills.inc()

    def _on_swap(self, runner: PolicyRunner, t: int) -> None:
        self.summary.model_swaps += 1
        self.metrics.model_swaps.labels("ok").inc()
        self.metrics.set_model(runner.version, runner.source, getattr(runner, "sha256", None))
        self.journal.save_state("model", runner.describe())
        self.journal.record_event("model_swap", runner.describe(), t)
        log.info("model swapped to %s (version %s) at %s", runner.source, runner.version, iso(t))

    # -- observability -----------------------------------------------------------------------------
    def _observe(
        self, t: int, decision_ns: int, event_ns: int, action: str, decision: Any, equity: float, age: float | None
    ) -> None:
        m = self.metrics
        if age is not None:
            m.feed_staleness.set(age * 1e-9)
        m.decision_latency.observe(decision_ns * 1e-9)
        m.event_to_decision.observe(event_ns * 1e-9)
        if self.keep_latencies:
            self._decision_ns.append(decision_ns)
            self._event_ns.append(event_ns)
        m.child(m.decisions, action.split(":")[0]).inc()
        for rec in decision.interventions:
            m.child(m.risk_interventions, rec.rule).inc()
            if rec.rule == "stale_data":
                self.summary.fallbacks["stale"] = self.summary.fallbacks.get("stale", 0) + 1
                m.child(m.fallbacks, "stale").inc()
        m.set_vector(m.target, decision.exposure)
        m.set_vector(m.exposure, self.account.exposure(None, equity) if equity > 0 else np.zeros(self.n))
        m.equity.set(equity)
        m.pnl.set(equity - self.initial_equity)

    def _flush_event_counts(self) -> None:
        n = self._pending_events
        if n:
            self.metrics.child(self.metrics.events, "market").inc(n)
            self._pending_events = 0
            self._rate_n += n
        now = time.perf_counter()
        if now - self._rate_t >= 1.0:
            self.metrics.events_per_second.set(self._rate_n / (now - self._rate_t))
            self._rate_t, self._rate_n = now, 0

    def _hook(self, point: str, t: int) -> None:
        if self.hook is not None:
            self.hook(point, t)

    def latencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(decision, event->decision) latencies in ns, when ``keep_latencies`` was set."""
        return np.asarray(self._decision_ns, dtype=np.int64), np.asarray(self._event_ns, dtype=np.int64)


def _opt(a: Any) -> np.ndarray | None:
    return None if a is None else np.asarray(a, dtype=np.float64).copy()


__all__ = ["CrashHook", "LiveLoop", "LoopSummary", "feature_age_ns", "live_spec", "resolve_latency_ns"]
