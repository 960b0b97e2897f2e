"""The option overlay in the live loop (``serving.options_overlay``).

At each decision the loop gives the overlay the underlying's guarded price, the implied
volatility (flat, or a panel field such as DVOL) and, once the perpetual's orders are sent and
filled, the decided perpetual exposure; the overlay runs the overlay backtest's stepper
(:class:`dea.options.overlay.OverlayStepper`: mark, settle at expiry, roll under the greek
budgets with the perpetual's exposure counted in the delta) and trades on the paper option venue
(:mod:`serving.exchanges.paper_options`). The backtest's call order is kept: the option is
marked before the perpetual is sized (its value is part of the equity), settled and rolled after.

Write-ahead, as the loop's orders: a roll's order (client id ``<prefix>-opt-<t>``, one roll per
decision) is journaled before it is sent; the venue's fill is journaled under its fill id
(idempotent) with its cash, which moves the loop's account mirror; the step ends with the
overlay's state (position, mark, inputs, greeks) journaled at ``t``. A restart restores the
position from the journaled fills, looks every open option order up at the venue (its fills are
journaled; one the venue never saw is re-sent if it was decided at the restart's decision, else
cancelled), and re-runs a step whose state was not journaled, on the same inputs: a re-decided
roll has the same client id, so nothing is traded twice and nothing is lost.

Nothing trades on a bad input: an underlying price or IV that is missing, not positive or older
than its limit, or a value the market-data guards quarantined on the underlying's instrument (or
not attributed to one instrument, e.g. an exogenous series) since the last decision, makes the
overlay *hold*: no mark, no settlement, no roll at that decision (journaled with the reason).
A halted loop (kill switch) does not roll.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dea.errors import ConfigError, JournalError
from dea.instruments import Instrument
from dea.options.contracts import parse_option_name
from dea.options.overlay import OptionPosition, OverlayStepper, RollOrder
from dea.options.overlay_config import LiveOverlayConfig
from dea.options.portfolio import GreekExposure
from dea.risk.greeks import GreekBudgetConfig
from dea.timeutil import iso, parse_duration
from serving.exchanges.paper_options import OptionFill, OptionOrder, PaperOptionVenue
from serving.journal import OPEN_STATUSES, Journal, OptionFillRow, OptionOrderRow

log = logging.getLogger("dea.serving.options")

Hook = Callable[[str, int], None]


def check_overlay_latency(cfg: Any, latency_ns: int) -> None:
    """Refuse, at start-up, an options overlay with a decision latency above 0: the paper option
    venue fills a roll at the decision's own underlying price and model premium, so the option
    leg would trade ``latency`` earlier than the perpetual (DESIGN: every order a decision makes
    executes at t + latency at the price then) and its greeks would be counted on a fill that
    could not have happened."""
    if cfg.serving.options_overlay is None or latency_ns <= 0:
        return
    raise ConfigError(
        f"serving.options_overlay needs a decision latency of 0, not {latency_ns / 1e9:g}s (costs.latency "
        f"{cfg.costs.latency!r}, data.clock.latency {cfg.data.clock.latency!r}): the paper option venue "
        "(serving/exchanges/paper_options.py) fills a roll at once, at the decision's underlying price and model "
        "premium, while the perpetual's orders fill at t + latency; the option would trade on a price the latency "
        "says was not yet reachable. Set costs.latency: 0s (and data.clock.latency), or remove serving.options_overlay."
    )


def check_option_venue(exchange: str, cfg: Any) -> None:
    """Refuse, at start-up, an options overlay on a venue that cannot trade options, or with a
    decision latency (:func:`check_overlay_latency`)."""
    if cfg.serving.options_overlay is None:
        return
    from dea.backtest.config import latency_from_config

    check_overlay_latency(cfg, int(latency_from_config(cfg)))
    if exchange == "paper":
        return
    raise ConfigError(
        f"serving.options_overlay needs --exchange paper, not {exchange!r}: the ccxt adapter "
        "(serving/exchanges/ccxt_exchange.py) sends only market orders on the config's linear instruments; it has "
        "no option order path (option instrument names, coin premiums, expiry settlement, option fills), so the "
        "overlay's puts/calls would never be traded while its greeks counted in the risk checks. Use --exchange "
        "paper (the paper option venue), or remove serving.options_overlay to trade the perpetuals alone."
    )


@dataclass(frozen=True)
class OverlayInputs:
    """The overlay's inputs at one decision; ``hold`` says why it must not act (None: it may)."""

    t: int
    price: float
    iv: float
    hold: str | None


class LiveOverlay:
    """One overlay leg on one perpetual of the loop (see the module doc)."""

    def __init__(
        self,
        cfg: LiveOverlayConfig,
        instruments: Sequence[Instrument],
        journal: Journal,
        venue: PaperOptionVenue,
        *,
        cash: Callable[[float], None],
        id_prefix: str = "dea",
        risk_budgets: dict[str, GreekBudgetConfig] | None = None,
        hook: Hook | None = None,
    ) -> None:
        """``cash(paid)``: books USD the account paid (negative: received) into the loop's mirror."""
        symbols = [i.symbol for i in instruments]
        if cfg.instrument not in symbols:
            raise ConfigError(f"serving.options_overlay.instrument {cfg.instrument!r} is not an instrument; "
                              f"data.instruments: {symbols}")
        self.index = symbols.index(cfg.instrument)
        inst = instruments[self.index]
        if inst.kind != "perpetual" or inst.inverse:
            raise ConfigError(f"serving.options_overlay.instrument {cfg.instrument!r} is a {inst.contract} {inst.kind}: "
                              "the overlay protects a linear perpetual's exposure (the perp stands in for the forward)")
        if not isinstance(venue, PaperOptionVenue):
            raise ConfigError(f"serving.options_overlay trades on the paper option venue, not {type(venue).__name__}")
        self.cfg = cfg
        self.underlying = inst.base or inst.symbol
        budget = (risk_budgets or {}).get(self.underlying)
        if budget is not None and budget != cfg.budgets:
            raise ConfigError(f"risk.greeks.{self.underlying} and serving.options_overlay.budgets disagree ({budget} vs "
                              f"{cfg.budgets}): one underlying has one greek budget; give the same, or only one")
        self.risk_counts_options = budget is not None
        self.journal = journal
        self.venue = venue
        self._cash = cash
        self.prefix = id_prefix
        self.hook = hook
        self.stepper = OverlayStepper(cfg.leg, cfg.budgets, cfg.fees, underlying=self.underlying)
        self.price_max_age = parse_duration(cfg.price_max_age)
        self.iv_max_age = parse_duration(cfg.iv.max_age)
        self._notes: list[str] = []
        self.last_inputs: OverlayInputs | None = None
        self._last_good: OverlayInputs | None = None  # the latest inputs the overlay could act on
        self.counts = {"rolls": 0, "settlements": 0, "holds": 0, "refused": 0}
        self._restore()

    # -- restart -----------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Position from the journaled fills; its per-unit mark from the latest of the last
        journaled state and the last fill of that series."""
        held = self.journal.option_positions()
        if len(held) > 1:
            raise JournalError(f"{self.journal.path}: the overlay holds one option series at a time; the journal shows {held}")
        if not held:
            self.stepper.restore(None, 0.0)
        else:
            name, q = next(iter(held.items()))
            c = parse_option_name(name)
            value, at = math.nan, -1
            for f in self.journal.option_fills():
                if f.instrument == name and f.ts >= at:
                    value, at = f.price, f.ts
            st = self.journal.last_option_state()
            if st is not None and st["instrument"] == name and st["t_ns"] >= at:
                value = st["value"]
            self.stepper.restore(OptionPosition(name, c.strike, c.expiry_ns, c.is_call, q, self.cfg.leg.multiplier), value)
        if self.venue.is_fresh:
            balance: dict[str, float] = {}
            for f in self.journal.option_fills():
                balance[f.collateral] = balance.get(f.collateral, 0.0) + f.cash_collateral
            filled = {o.client_id: o.status for o in self.journal.option_orders() if o.status not in OPEN_STATUSES}
            self.venue.restore(held, balance, filled)

    # -- inputs ------------------------------------------------------------------------------------
    def on_quarantine(self, j: int, guard: str, what: str) -> None:
        """A value the market-data guards refused: on the underlying's instrument (or not
        attributed to one), the overlay holds at the next decision."""
        if j == self.index or j < 0:
            self._notes.append(f"{guard} ({what})")

    def inputs(self, t: int, price: float, price_age: float, fields: dict[str, Any], ages: dict[str, Any]) -> OverlayInputs:
        """The guarded price and IV at ``t`` and whether the overlay may act on them; consumes
        the quarantine notes since the last decision."""
        why: str | None = None
        if self._notes:
            why = "quarantined since the last decision: " + ", ".join(dict.fromkeys(self._notes))
            self._notes.clear()
        iv = self.cfg.iv.flat
        if iv is None:
            name = self.cfg.iv.field or ""
            arr, age_arr = fields.get(name), ages.get(name)
            iv = float(arr[self.index]) if arr is not None else math.nan
            age = float(age_arr[self.index]) if age_arr is not None else math.nan
            if why is None and not (iv > 0 and iv - iv == 0.0):
                why = f"IV field {name!r} is {iv!r} (missing, not positive or not finite)"
            elif why is None and not age <= self.iv_max_age:
                why = f"IV field {name!r} is {age / 3.6e12:.2f}h old (max {self.cfg.iv.max_age})"
        if why is None and not (price > 0 and price - price == 0.0):
            why = f"{self.cfg.instrument} price is {price!r}"
        elif why is None and not price_age <= self.price_max_age:
            why = f"{self.cfg.instrument} price is {price_age / 1e9:.0f}s old (max {self.cfg.price_max_age})"
        inp = OverlayInputs(int(t), float(price), float(iv), why)
        self.last_inputs = inp
        if why is None:
            self._last_good = inp
        return inp

    # -- the step ----------------------------------------------------------------------------------
    def revalue(self, inp: OverlayInputs) -> None:
        """Mark the held option (before the perpetual is sized); a hold keeps the last mark."""
        if inp.hold is None:
            self.stepper.revalue(inp.t, inp.price, inp.iv)
            p = self.stepper.position
            if p is not None:
                self.venue.mark(p.instrument, self.stepper.value, inp.price)

    def market_value(self) -> float:
        """USD value of the option held at its last mark (part of the account's equity)."""
        return self.stepper.market_value()

    def greeks(self, equity: float) -> GreekExposure:
        """The held option's greeks (fractions of ``equity``) at the last inputs that passed
        (a hold never prices the greeks on what it refused)."""
        inp = self._last_good
        if self.stepper.position is None or inp is None or not (inp.price > 0 and equity > 0) or not math.isfinite(inp.iv):
            return GreekExposure()
        return self.stepper.exposure(inp.t, inp.price, inp.iv, equity)

    def step(self, inp: OverlayInputs, exposure: float, equity: Callable[[], float], *, halted: bool = False) -> None:
        """Settle at expiry and roll (after the perpetual's orders), then journal the state.

        ``exposure``: the decided exposure of the perpetual; ``equity()``: the account's equity
        now (the loop's mirror plus the option at its mark)."""
        action = "keep"  # nothing to do: the position (or no position) is kept
        if inp.hold is not None:
            self.counts["holds"] += 1
            action = "hold:inputs"
            log.warning("options overlay holds at %s: %s", iso(inp.t), inp.hold,
                        extra={"event": "options_hold", "reason": inp.hold})
        else:
            settled = self.stepper.settlement(inp.t, inp.price)
            if settled is not None:
                fill = self.venue.settle(inp.t, settled.instrument, inp.price)
                if fill is not None:
                    self._book(fill)
                self.stepper.close()
                self.counts["settlements"] += 1
                action = "settle"
            if halted:
                action = f"{action}+halted" if action != "keep" else "hold:halted"
            else:
                order = self.stepper.plan_roll(inp.t, inp.price, inp.iv, exposure, equity())
                if order is not None:
                    action = self._roll(order, inp)
        self._record(inp, action, equity())

    def _roll(self, order: RollOrder, inp: OverlayInputs) -> str:
        event = order.event()
        if order.contracts == 0.0:
            self.counts["refused"] += 1
            self.journal.record_event("option_roll_refused", event, inp.t)
            return "roll_refused"
        cid = f"{self.prefix}-opt-{inp.t}"
        row = OptionOrderRow(cid, inp.t, order.instrument, order.contracts, order.premium_usd, inp.price, "new")
        fresh = self.journal.record_option_order(row, detail=event)
        if not fresh:  # a restart re-deciding a roll it journaled: never sent twice
            known = {o.client_id: o for o in self.journal.option_orders()}[cid]
            if known.status != "new" and known.status != "sent":
                return f"roll:{known.status}"
        self._hook("after_option_journal", inp.t)
        ack = self.venue.submit(OptionOrder(cid, inp.t, order.instrument, order.contracts, order.premium_usd, inp.price))
        self._hook("after_option_venue", inp.t)
        self._on_ack(cid, ack.status, ack.venue_id, ack.reason)
        self.venue.poll_fills()  # the reports drained: this order's fills are booked by id below
        for fill in self.venue.fills_of(cid):
            self._book(fill, order)
        if ack.status == "rejected":
            return "roll_rejected"
        self.counts["rolls"] += 1
        log.info("options overlay rolled at %s: %s %+g contracts at %.2f USD (%s)", iso(inp.t), order.instrument,
                 order.contracts, order.premium_usd, order.decision.reason,
                 extra={"event": "options_roll", "instrument": order.instrument, "contracts": order.contracts})
        return "roll" if order.decision.scale == 1.0 else f"roll:cut_by_{'/'.join(order.decision.binding)}"

    def _on_ack(self, cid: str, status: str, venue_id: str | None, reason: str | None) -> None:
        if status == "rejected":
            self.journal.update_option_order(cid, "rejected", venue_id=venue_id, reason=reason)
            log.warning("option order %s rejected: %s", cid, reason)
        elif status == "sent":
            self.journal.update_option_order(cid, "sent", venue_id=venue_id)

    def _book(self, fill: OptionFill, order: RollOrder | None = None) -> None:
        """Journal a venue fill (idempotent) and move the account and the stepper with it."""
        row = OptionFillRow(fill.fill_id, fill.client_id, fill.kind, fill.ts, fill.instrument, fill.contracts, fill.price_usd,
                            fill.underlying_price, fill.fee_usd, fill.cash_usd, fill.collateral, fill.cash_collateral,
                            fill.fee_collateral)
        if not self.journal.record_option_fill(row):
            return
        self._cash(-fill.cash_usd)
        if fill.kind == "trade":
            if order is None:  # a fill found at reconciliation: the series from its name
                c = parse_option_name(fill.instrument)
                q = self.stepper.contracts + fill.contracts
                self.stepper.restore(OptionPosition(fill.instrument, c.strike, c.expiry_ns, c.is_call, q,
                                                    self.cfg.leg.multiplier), fill.price_usd)
            else:
                self.stepper.open(order, fill.contracts, fill.price_usd)

    def _record(self, inp: OverlayInputs, action: str, equity: float) -> None:
        p = self.stepper.position
        g = self.greeks(equity) if inp.hold is None else GreekExposure()
        self.journal.record_option_state(
            inp.t, action=action, instrument=p.instrument if p else None, contracts=p.contracts if p else 0.0,
            value=self.stepper.value if p else 0.0, price=inp.price, iv=inp.iv,
            greeks={"delta": g.delta, "gamma": g.gamma, "vega": g.vega, "theta": g.theta}, equity=equity,
            detail={"hold": inp.hold} if inp.hold else None,
        )

    def restart_mark(self, t: int) -> None:
        """A restart (or a standby's takeover) reconciling at ``t``, the last journaled decision,
        whose step is not journaled: mark the held option on ``t``'s inputs, as that decision did
        before sizing the perpetual, so the equity (and the risk re-check of unsent orders) is the
        decision's, not one on the mark of the step before."""
        if self.last_inputs is not None and self.last_inputs.t == t and not self.done(t):
            self.revalue(self.last_inputs)

    def carry_inputs(self, other: "LiveOverlay") -> None:
        """Take the inputs a following standby's overlay saw (the last inputs, the last that
        passed, the quarantine notes not yet consumed): the overlay rebuilt at takeover acts on them."""
        self.last_inputs, self._last_good, self._notes = other.last_inputs, other._last_good, list(other._notes)

    def done(self, t: int) -> bool:
        """Whether the step at ``t`` is journaled (a restart re-runs it otherwise)."""
        return bool(self.journal.option_states(t))

    def reconcile(self, t: int, exposure: float, equity: Callable[[], float], now: int) -> dict[str, int]:
        """After a restart: open option orders looked up at the venue (fills journaled; one the
        venue never saw re-sent if decided at ``now``, else cancelled), then the step at ``t``
        (the last journaled decision) re-run if its state is not journaled. A re-run step
        re-decides its own roll (same client id: the venue's fill of it is booked, an order the
        venue never saw is sent, once) and journals the step as it was decided ('roll', not
        'keep' on a position found at the venue); an order of ``t`` it does not re-decide is
        looked up after it."""
        out = {"filled": 0, "resent": 0, "cancelled": 0, "rerun": 0}
        inp = self.last_inputs
        rerun = inp is not None and inp.t == t and not self.done(t)
        self._reconcile_orders(out, now, skip=t if rerun else None)
        if inp is not None and rerun:
            self.revalue(inp)
            self.step(inp, exposure, equity)
            out["rerun"] = 1
            self._reconcile_orders(out, now, skip=None)
        self.venue.poll_fills()  # drained: every fill above is journaled by id
        held = self.journal.option_positions()
        venue = self.venue.positions()
        if any(abs(venue.get(k, 0.0) - q) > 1e-9 for k, q in held.items()) or set(venue) - set(held):
            self.journal.record_event("option_reconcile", {"journal": held, "venue": venue,
                                                           "problem": "option positions differ"}, now)
            log.error("option positions differ after restart: journal %s, venue %s", held, venue)
        self.journal.record_event("option_reconciled", out, now)
        return out

    def _reconcile_orders(self, out: dict[str, int], now: int, *, skip: int | None) -> None:
        """Each open option order (but those decided at ``skip``) looked up at the venue."""
        for o in self.journal.option_orders(OPEN_STATUSES):
            if skip is not None and o.t_decision == skip:
                continue
            ack = self.venue.lookup(o.client_id)
            if ack.status == "filled":
                for fill in self.venue.fills_of(o.client_id):
                    self._book(fill)
                out["filled"] += 1
            elif ack.status == "unknown" and o.t_decision == now:
                ack = self.venue.submit(OptionOrder(o.client_id, o.t_decision, o.instrument, o.contracts, o.price_ref,
                                                    o.underlying_price))
                self._on_ack(o.client_id, ack.status, ack.venue_id, ack.reason)
                for fill in self.venue.fills_of(o.client_id):
                    self._book(fill)
                out["resent"] += 1
            elif ack.status == "unknown":
                why = f"decided at {iso(o.t_decision)}, the venue never saw it; not re-sent at {iso(now)} on a stale price"
                self.journal.update_option_order(o.client_id, "cancelled", reason=why)
                out["cancelled"] += 1
            else:
                self._on_ack(o.client_id, ack.status, ack.venue_id, ack.reason)

    def _hook(self, point: str, t: int) -> None:
        if self.hook is not None:
            self.hook(point, t)

    def report(self) -> dict[str, Any]:
        """The overlay's part of the serve summary: the position and greeks now, rolls, costs."""
        return options_report(self.journal)


def options_report(journal: Journal) -> dict[str, Any] | None:
    """From the journal: the option held and its greeks at the last step, rolls, settlements,
    premium and fees (USD), and the step actions counted (None when no overlay ran)."""
    states = journal.option_states()
    if not states:
        return None
    last = states[-1]
    fills = journal.option_fills()
    trades = [f for f in fills if f.kind == "trade"]
    settles = [f for f in fills if f.kind == "settle"]
    actions: dict[str, int] = {}
    for s in states:
        key = s["action"].split(":")[0]
        actions[key] = actions.get(key, 0) + 1
    return {
        "position": {"instrument": last["instrument"], "contracts": last["contracts"], "mark_usd": last["value"],
                     "as_of": iso(int(last["t_ns"]))},
        "greeks": {k: last[k] for k in ("delta", "gamma", "vega", "theta")},
        "rolls": len(trades),
        "settlements": len(settles),
        "premium_paid_usd": round(sum(-f.cash - f.fee for f in trades), 2),
        "settlement_received_usd": round(sum(f.cash + f.fee for f in settles), 2),
        "fees_usd": round(sum(f.fee for f in fills), 2),
        "steps": actions,
        "collateral": sorted({f.collateral for f in fills}),
    }


__all__ = ["LiveOverlay", "OverlayInputs", "check_option_venue", "check_overlay_latency", "options_report"]
