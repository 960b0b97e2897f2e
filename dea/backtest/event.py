"""Event-driven backtest: replay market events through the live loop's risk engine, order logic,
fill model and account.

Why it exists next to the vectorised kernel: it is the path the live loop takes (object per
event, :class:`~dea.risk.engine.RiskEngine`, :func:`~dea.execution.orders.generate_orders`,
:class:`~dea.execution.fills.PaperFillModel`, :class:`~dea.execution.account.Account`), so a
backtest here *is* a paper-trading replay; on bar data it must agree with the kernel (tested),
which makes it the kernel's reference implementation too.

Timing rules (the same as the kernel, see :mod:`dea.backtest._kernel`):

- market events must come in time order; events stamped t are processed before the decision at
  t (they were available at t); a funding event at T charges the position held at T, before any
  order decided at T fills;
- an order decided at t is due at t + latency. When the first event after the due time arrives
  it fills against the state prevailing at the due time: the book or last trade then, or on bars
  the price interpolated between the bar before and the bar after; orders due exactly at a
  decision time fill just before that decision (after the liquidation check); with zero latency
  orders fill at once at the decision's prices;
- liquidation is checked at every decision and on every book/trade update;
- with ``guards`` (:mod:`dea.guards`, the live loop's market-data guards) every price and rate
  of an event is checked first: a quarantined value never marks, fills or reaches a decision,
  the instrument's next decision takes the guard's action (hold / de-risk / halt), and an event
  out of time order is quarantined instead of stopping the replay. A prepared market needs no
  guards here: the batch panel already applied them (:mod:`dea.guards.batch`). Equity that is
  not finite flattens and halts (kill switch) with a ``halt`` event, never an exception.

Only O(instruments) state is kept per event; the per-decision record (``record=True``) is what
grows, with the number of decisions, never with the number of events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from dea.backtest.config import CostsConfig
from dea.backtest.result import COST_KINDS, BacktestEvent, BacktestResult, counts_from_mask
from dea.errors import DataError
from dea.execution.account import Account
from dea.execution.fills import Fill, PaperFillModel, SqrtImpactEstimator, interpolate_price
from dea.execution.orders import Order, OrderSpec, generate_orders
from dea.guards import GuardsConfig, MarketGuard, apply_actions, merge_action
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.config.accounts import AccountsConfig
from dea.risk.engine import Intervention, RiskEngine
from dea.risk.rules import RULE_NAMES
from dea.timeutil import NS_PER_YEAR, iso

# ---------------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BarEvent:
    """One bar row for all instruments, available at ``ts`` (NaN price = no bar for that one).

    ``impact_coef``: square-root impact coefficients already computed for this row (a replay of a
    prepared :class:`~dea.backtest.market.Market` passes them, so both engines price impact from
    the same numbers); without it the replay estimates them from the bars as they stream.
    """

    ts: int
    price: np.ndarray
    volume: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None
    impact_coef: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class FundingEvent:
    """A funding settlement of instrument ``index`` at ``ts`` with ``rate``."""

    ts: int
    index: int
    rate: float


@dataclass(frozen=True, slots=True)
class BookEvent:
    """The L2 book of instrument ``index`` at ``ts`` (levels best first)."""

    ts: int
    index: int
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """A public trade of instrument ``index`` at ``ts`` (sets the last price)."""

    ts: int
    index: int
    price: float
    size: float = 0.0


MarketEvent = BarEvent | FundingEvent | BookEvent | TradeEvent


def book_event(ts: int, index: int, book, depth: int = 50) -> BookEvent:  # noqa: ANN001 - duck-typed
    """A :class:`BookEvent` of the ``depth`` best levels of a live book (anything with
    ``levels(side, n)`` returning (price, size) pairs best first, bids side 1 and asks side -1,
    such as :class:`dea.book.l2.L2Book`)."""
    bids = book.levels(1, depth)
    asks = book.levels(-1, depth)
    bid = np.array(bids, dtype=np.float64).reshape(-1, 2)
    ask = np.array(asks, dtype=np.float64).reshape(-1, 2)
    return BookEvent(ts, index, bid[:, 0].copy(), bid[:, 1].copy(), ask[:, 0].copy(), ask[:, 1].copy())


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a policy sees at a decision: time, clock index, account state and prices."""

    ts: int
    index: int
    exposure: np.ndarray
    equity: float
    prices: np.ndarray


@dataclass(frozen=True, slots=True)
class PolicyOutput:
    """A policy's decision with the optional inputs the risk engine uses."""

    target: np.ndarray
    dispersion: np.ndarray | None = None
    vol: np.ndarray | None = None
    feature_age_ns: float | None = None


Policy = Callable[[DecisionContext], "np.ndarray | PolicyOutput"]


class TargetSchedule:
    """A policy that replays precomputed targets [T, N] by clock index (plus optional inputs)."""

    def __init__(self, targets: np.ndarray, *, feature_age_ns: np.ndarray | None = None,
                 dispersion: np.ndarray | None = None, vol: np.ndarray | None = None) -> None:
        self.targets = targets
        self.age = feature_age_ns
        self.dispersion = dispersion
        self.vol = vol

    def __call__(self, ctx: DecisionContext) -> PolicyOutput:
        t = ctx.index
        age = None
        if self.age is not None and not math.isnan(self.age[t]):
            age = float(self.age[t])
        return PolicyOutput(
            self.targets[t],
            None if self.dispersion is None else self.dispersion[t],
            None if self.vol is None else self.vol[t],
            age,
        )


# ---------------------------------------------------------------------------------------------
# the replay
# ---------------------------------------------------------------------------------------------


class EventBacktester:
    """Replays events; call :meth:`run` (or :meth:`on_event` / :meth:`on_decision` yourself)."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        costs: CostsConfig,
        risk: RiskConfig,
        policy: Policy,
        *,
        latency_ns: int = 0,
        impact_k: Sequence[float] | None = None,
        record: bool = True,
        name: str = "policy",
        periods_per_year: float = 365.25,
        max_log: int = 100_000,
        guards: GuardsConfig | None = None,
        accounts: AccountsConfig | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self.n = len(instruments)
        self.costs = costs
        self.policy = policy
        self.latency_ns = int(latency_ns)
        self.name = name
        self.periods_per_year = periods_per_year
        self.record = record
        self.max_log = max_log
        self.fills = PaperFillModel(instruments, costs)
        self._inverse = [i.inverse for i in self.instruments]
        self.account = Account(self.n, costs.initial_equity, self._inverse)
        self.risk = RiskEngine(risk, instruments, accounts)
        self.spec = OrderSpec.from_instruments(instruments)
        self.mm = [i.maintenance_margin for i in instruments]
        k = [costs.impact.k or 0.0] * self.n if impact_k is None else list(impact_k)
        if costs.impact.model == "none":
            k = [0.0] * self.n
        self.impact = SqrtImpactEstimator(k, costs.impact.vol_window, costs.impact.adv_window)
        self.impact_on = costs.impact.model != "none"
        self.pending: deque[Order] = deque()
        self.pend_q = [0.0] * self.n
        self.raw_px = [math.nan] * self.n  # latest price of each instrument's own feed
        self.books: list[BookEvent | None] = [None] * self.n
        self.bar_ts: int | None = None
        self.bar_px = [math.nan] * self.n
        self.dead = False
        # margin headroom at the last liquidation check that found none (see
        # check_liquidation_after_move); -1 = none known
        self._room = -1.0
        self._ref_cash = math.nan
        self._ref_qty: list[float] = []
        self._drift_coef = [0.0] * self.n
        self._drift = 0.0
        self.last_ts: int | None = None
        self.cancelled = 0
        # per-step accumulators and records
        self._acc = [0.0] * 5  # fees, spread, impact, funding, traded
        self._e_prev = costs.initial_equity
        self.n_decisions = 0
        self.n_events = 0
        self._rec: dict[str, list] = {k: [] for k in
                                      ("clock", "equity", "gross", "fees", "spread", "impact", "funding",
                                       "turnover", "margin", "mask", "expo")}
        self.events: list[BacktestEvent] = []
        self.log: list[Intervention] = []
        self._rule_bit = {name: 1 << r for r, name in enumerate(RULE_NAMES)}
        self.guard = None if guards is None else MarketGuard(guards, [i.symbol for i in self.instruments])
        self._guard_pending: dict[int, str] = {}
        self.guard_factor = 0.5 if guards is None else guards.derisk_factor

    # -- events -----------------------------------------------------------------------------------
    def _quarantined(self, verdict: str | None, i: int, ts: int, value: float, what: str) -> bool:
        """True (and the guard's action queued, the event logged) when the guards refused a value."""
        if verdict is None:
            return False
        assert self.guard is not None
        hit = self.guard.hit(verdict, i, ts, value, what)
        if hit.action != "ignore":
            for k in ([i] if i >= 0 else range(self.n)):
                merge_action(self._guard_pending, k, hit.action)
        if len(self.events) < self.max_log:
            self.events.append(BacktestEvent(ts, self.n_decisions, f"guard:{verdict}", self.account.equity(), 0.0,
                                             f"{hit.detail} (value {value!r}): action {hit.action}"))
        return True

    def on_event(self, ev: MarketEvent) -> None:
        ts = ev.ts
        g = self.guard
        if self.last_ts is not None and ts < self.last_ts:
            if g is None:
                raise DataError(f"event stream goes back in time: {iso(ts)} after {iso(self.last_ts)} ({type(ev).__name__})")
            g.counts["out_of_order"] += 1
            self._quarantined("out_of_order", getattr(ev, "index", -1), ts, math.nan, type(ev).__name__)
            return
        if g is not None and g.future(ts):
            g.counts["future"] += 1
            self._quarantined("future", getattr(ev, "index", -1), ts, math.nan, type(ev).__name__)
            return
        self.last_ts = ts
        self.n_events += 1
        if isinstance(ev, FundingEvent):
            if g is not None and self._quarantined(g.check_value("funding", ev.index, ts, ts, ev.rate), ev.index, ts,
                                                   ev.rate, "funding rate"):
                return
            self._fill_due(ts, inclusive=False, bar=None)
            if self.account.qty[ev.index] != 0.0 and ev.rate != 0.0:
                self._acc[3] += self.account.settle_funding(ev.index, ev.rate)
            return
        if isinstance(ev, BarEvent):
            self._fill_due(ts, inclusive=False, bar=ev)
            price = ev.price
            for i in range(self.n):
                p = float(price[i])
                if g is not None and p == p and self._quarantined(g.check_price("bar", i, ts, ts, p), i, ts, p, "bar price"):
                    continue  # NaN = no bar for that one; a refused price keeps the last good one
                self.raw_px[i] = p
                self.bar_px[i] = p
                if self.books[i] is None:
                    self.account.mark(i, p)
            self.bar_ts = ts
            if ev.impact_coef is not None:
                self.impact.coef = [float(c) if self.impact_on else 0.0 for c in ev.impact_coef]
            else:
                self.impact.update(price, ev.volume, ev.high, ev.low)
            return
        if isinstance(ev, TradeEvent):
            if g is not None and self._quarantined(g.check_price("trade", ev.index, ts, ts, ev.price, ordered=False),
                                                   ev.index, ts, ev.price, "trade price"):
                return
            if self.pending:
                self._fill_due(ts, inclusive=False, bar=None)
            j = ev.index
            old = self.account.price[j]
            if self.books[j] is None:
                self.raw_px[j] = ev.price
                self.account.mark(j, ev.price)
            self.check_liquidation_after_move(ts, j, old)
            return
        if isinstance(ev, BookEvent):
            self._fill_due(ts, inclusive=False, bar=None)
            j = ev.index
            old = self.account.price[j]
            if len(ev.bid_px) and len(ev.ask_px):
                mid = 0.5 * (float(ev.bid_px[0]) + float(ev.ask_px[0]))
                if g is not None and self._quarantined(g.check_price("book", j, ts, ts, mid, ordered=False),
                                                       j, ts, mid, "book mid"):
                    return
                self.books[j] = ev
                self.raw_px[j] = mid
                self.account.mark(j, mid)
            self.check_liquidation_after_move(ts, j, old)
            return
        raise DataError(f"unknown event type {type(ev).__name__}")

    def _coef(self, i: int) -> float:
        return self.impact.coef[i]

    def _execute(self, i: int, qty: float, price: float, ts: int, client_id: str = "", liquidation: bool = False) -> Fill:
        book = self.books[i]
        if book is not None:
            fill = self.fills.fill_against_book(i, qty, book.bid_px, book.bid_sz, book.ask_px, book.ask_sz,
                                                ts, client_id, liquidation)
        else:
            coef = self._coef(i)
            if liquidation and coef != coef:
                coef = 0.0
            fill = self.fills.fill_at_price(i, qty, price, coef, ts, client_id, liquidation,
                                            self.account.cost_notional(i, qty, price) if self._inverse[i] else None)
        self.account.apply_fill(fill)
        a = self._acc
        a[0] += fill.fee
        a[1] += fill.spread
        a[2] += fill.impact
        a[4] += abs(fill.qty) * fill.price
        return fill

    def _fill_due(self, now: int, inclusive: bool, bar: BarEvent | None) -> None:
        pend = self.pending
        while pend and (pend[0].t_due < now or (inclusive and pend[0].t_due <= now)):
            o = pend.popleft()
            i = o.index
            self.pend_q[i] -= o.qty
            if self.dead:
                self.cancelled += 1
                continue
            if self.books[i] is not None:
                self._execute(i, o.qty, math.nan, o.t_due, o.client_id)
                continue
            price = self.raw_px[i]
            if bar is not None and self.bar_ts is not None and self.bar_ts < o.t_due < bar.ts:
                p0, p1 = self.bar_px[i], float(bar.price[i])
                price = interpolate_price(o.t_due, self.bar_ts, p0, bar.ts, p1) if (p0 > 0 and p1 > 0) else math.nan
            if not (price > 0.0):
                self.cancelled += 1
                continue
            self._execute(i, o.qty, price, o.t_due, o.client_id)

    def check_liquidation_after_move(self, ts: int, index: int, old_price: float) -> None:
        """:meth:`_check_liquidation` after the price of ``index`` alone moved from ``old_price``
        (a trade or book update), skipped where it cannot liquidate.

        Since the last check that found no liquidation (same cash, same positions), the margin
        headroom ``equity - maintenance margin`` has fallen by at most
        ``sum_i |q_i| (1 + mm_i) |price move_i|``; while that bound stays below the headroom
        found then (less a rounding allowance far above the sums' rounding error) the check
        would find no liquidation either, so the event costs a few comparisons instead of two
        passes over the positions. Anything else (a fill, funding, the first price, a NaN)
        falls back to the full check. Callers that move prices another way must call
        :meth:`_check_liquidation` (which resets the bound), as every path here does."""
        acc = self.account
        room = self._room
        if room > 0.0 and acc.cash == self._ref_cash and acc.qty == self._ref_qty:
            drift = self._drift + self._drift_coef[index] * abs(acc.price[index] - old_price)
            if drift < room:  # False for NaN
                self._drift = drift
                return
        self._check_liquidation(ts)

    def _check_liquidation(self, ts: int) -> None:
        if self.dead:
            return
        acc = self.account
        e, m, gross = acc.margin_state(self.mm)
        if not (m > 0.0 and e <= m):
            # no liquidation: the headroom the next price moves are measured against
            self._room = (e - m) - 1e-9 * (abs(acc.cash) + 2.0 * gross) - 1e-300
            self._ref_cash = acc.cash
            self._ref_qty = list(acc.qty)
            self._drift_coef = [abs(q) * (1.0 + mm) for q, mm in zip(acc.qty, self.mm, strict=True)]
            self._drift = 0.0
            return
        self._room = -1.0
        for i in range(self.n):
            q = acc.qty[i]
            if q != 0.0:
                self._execute(i, -q, acc.price[i], ts, "liquidation", liquidation=True)
        self.cancelled += len(self.pending)
        self.pending.clear()
        self.pend_q = [0.0] * self.n
        idx = self.n_decisions
        self.events.append(BacktestEvent(ts, idx, "liquidation", e, m,
                                         f"equity {e:.2f} <= maintenance margin {m:.2f}: all positions closed"))
        if acc.cash <= 0.0:
            self.events.append(BacktestEvent(ts, idx, "bankrupt", acc.cash, 0.0,
                                             "equity not positive after liquidation: trading stops"))
            acc.floor_at_zero()
            self.dead = True

    # -- decisions --------------------------------------------------------------------------------
    def on_decision(self, ts: int, index: int) -> None:
        self._fill_due(ts, inclusive=False, bar=None)
        self._check_liquidation(ts)
        self._fill_due(ts, inclusive=True, bar=None)
        acc = self.account
        mask = 0
        if not self.dead:
            e = acc.equity()
            prices = np.array(self.raw_px)
            if not e - e == 0.0:  # inf/NaN equity: flatten and halt, never an exception
                if not self.risk.halted:
                    self.risk.halt()
                    self.events.append(BacktestEvent(ts, index, "halt", e, 0.0,
                                                     f"equity is {e!r} (not finite): de-risked to flat and halted"))
                cur = np.zeros(self.n)
                out = PolicyOutput(np.zeros(self.n))
                e = 1.0  # flat targets need no equity; any finite value sizes them
            else:
                cur = acc.exposure(self.pend_q, e)
                out = self.policy(DecisionContext(ts, index, cur, e, prices))
                if not isinstance(out, PolicyOutput):
                    out = PolicyOutput(np.asarray(out, dtype=np.float64))
            target = out.target
            if self._guard_pending:
                tgt = np.asarray(target, dtype=np.float64).tolist()
                if apply_actions(tgt, cur.tolist(), self._guard_pending, self.guard_factor):
                    self.risk.halt()
                self._guard_pending.clear()
                target = np.array(tgt)
            decision = self.risk.apply(ts, target, cur, e, feature_age_ns=out.feature_age_ns,
                                       dispersion=out.dispersion, vol=out.vol, prices=prices)
            for rec in decision.interventions:
                mask |= self._rule_bit.get(rec.rule, 0)  # future_expiry is no rule bit
            if self.record and decision.interventions and len(self.log) < self.max_log:
                self.log.extend(decision.interventions)
            orders = generate_orders(ts, decision.exposure, acc.qty, self.pend_q, e, prices, self.spec,
                                     latency_ns=self.latency_ns, contract_n=acc.contract_n)
            for o in orders:
                self._place(o, prices, ts)
        self._record(ts, mask)
        self.n_decisions += 1

    def _place(self, o: Order, prices: np.ndarray, ts: int) -> None:
        """Send one order: filled at once with zero latency, else due at t + latency (an
        execution desk, :mod:`dea.backtest.event_exec`, overrides this to work it as a parent)."""
        if self.latency_ns == 0:
            self._execute(o.index, o.qty, prices[o.index], ts, o.client_id)
        else:
            self.pending.append(o)
            self.pend_q[o.index] += o.qty

    def _record(self, ts: int, mask: int) -> None:
        acc = self.account
        e, m, _ = acc.margin_state(self.mm)
        a = self._acc
        if self.record:
            r = self._rec
            ep = self._e_prev
            inv = 1.0 / ep if ep > 0.0 else 0.0
            r["clock"].append(ts)
            r["equity"].append(e)
            r["gross"].append((e - ep + a[0] + a[1] + a[2] + a[3]) * inv)
            r["fees"].append(a[0] * inv)
            r["spread"].append(a[1] * inv)
            r["impact"].append(a[2] * inv)
            r["funding"].append(a[3] * inv)
            r["turnover"].append(a[4] * inv)
            r["margin"].append(m / e if e > 0.0 else 0.0)
            r["mask"].append(mask)
            r["expo"].append(acc.exposure(None, e) if e > 0.0 else np.zeros(self.n))
        self._e_prev = e
        self._acc = [0.0] * 5

    # -- driving ----------------------------------------------------------------------------------
    def run(self, events: Iterable[MarketEvent], decisions: Iterable[int]) -> BacktestResult:
        """Replay ``events`` (time-ordered) with decisions at the ``decisions`` times."""
        dec_iter: Iterator[int] = iter(decisions)
        next_dec = next(dec_iter, None)
        idx = 0
        for ev in events:
            while next_dec is not None and next_dec < ev.ts:
                self.on_decision(int(next_dec), idx)
                idx += 1
                next_dec = next(dec_iter, None)
            self.on_event(ev)
        while next_dec is not None:
            self.on_decision(int(next_dec), idx)
            idx += 1
            next_dec = next(dec_iter, None)
        return self.result()

    def result(self) -> BacktestResult:
        r = self._rec
        T = len(r["clock"])
        equity = np.array(r["equity"], dtype=np.float64)
        prev = np.concatenate([[self.costs.initial_equity], equity[:-1]]) if T else np.zeros(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            net = np.where(prev > 0, equity / np.where(prev > 0, prev, 1.0) - 1.0, 0.0)
        acc = self.account
        mask = np.array(r["mask"], dtype=np.int32)
        notes = []
        if self.cancelled:
            notes.append(f"{self.cancelled} order(s) cancelled (no price at the fill time, or account closed)")
        if len(self.log) >= self.max_log:
            notes.append(f"intervention log truncated at {self.max_log} records (counts are complete)")
        return BacktestResult(
            name=self.name,
            clock=np.array(r["clock"], dtype=np.int64),
            instruments=tuple(i.symbol for i in self.instruments),
            initial_equity=self.costs.initial_equity,
            equity=equity,
            returns=net,
            gross_returns=np.array(r["gross"]),
            costs={k: np.array(r[k]) for k in COST_KINDS},
            turnover=np.array(r["turnover"]),
            exposures=np.array(r["expo"]).reshape(T, self.n),
            margin_use=np.array(r["margin"]),
            instrument_costs={"fees": np.array(acc.fees), "spread": np.array(acc.spread),
                              "impact": np.array(acc.impact), "funding": np.array(acc.funding)},
            instrument_pnl=acc.price_pnl(),
            traded_notional=np.array(acc.traded),
            events=tuple(self.events),
            interventions=counts_from_mask(mask) if self.record else dict(self.risk.counts),
            intervention_mask=mask,
            intervention_log=tuple(self.log),
            periods_per_year=self.periods_per_year,
            latency_ns=self.latency_ns,
            engine="event",
            notes=tuple(notes),
        )


def market_events(market) -> Iterator[MarketEvent]:  # noqa: ANN001 - dea.backtest.market.Market (batch module)
    """Bar and funding events of a prepared :class:`~dea.backtest.market.Market`, in replay order."""
    price, funding, coef = market.price, market.funding, market.impact_coef
    vol, hi, lo = market.volume, market.high, market.low
    for s in range(len(market.clock)):
        ts = int(market.clock[s])
        yield BarEvent(ts, price[s], None if vol is None else vol[s],
                       None if hi is None else hi[s], None if lo is None else lo[s], coef[s])
        row = funding[s]
        for i in np.flatnonzero(row):
            yield FundingEvent(ts, int(i), float(row[i]))


def replay_market(market, targets: np.ndarray, risk: RiskConfig, costs: CostsConfig, *,  # noqa: ANN001
                  latency_ns: int = 0, feature_age_ns: np.ndarray | None = None,
                  dispersion: np.ndarray | None = None, vol: np.ndarray | None = None,
                  name: str = "policy", periods_per_year: float | None = None,
                  accounts: AccountsConfig | None = None) -> BacktestResult:
    """Event-driven backtest of precomputed targets on a prepared market (bars + funding)."""
    if market.depth is not None:
        raise DataError("replay_market replays bars; pass book depth as BookEvents to EventBacktester.run")
    ppy = periods_per_year or (NS_PER_YEAR / market.step_ns)
    bt = EventBacktester(market.instruments, costs, risk,
                         TargetSchedule(targets, feature_age_ns=feature_age_ns, dispersion=dispersion, vol=vol),
                         latency_ns=latency_ns, impact_k=market.impact_k, name=name, periods_per_year=ppy,
                         accounts=accounts)
    res = bt.run(market_events(market), (int(t) for t in market.clock))
    if market.notes:
        res = _with_notes(res, market.notes)
    return res


def _with_notes(res: BacktestResult, notes: Sequence[str]) -> BacktestResult:
    from dataclasses import replace

    return replace(res, notes=tuple(notes) + tuple(res.notes))
