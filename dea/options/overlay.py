"""One decision of the rolled option overlay: mark, settle at expiry, roll under the greek budgets.

Why one stepper: the overlay backtest (:func:`dea.backtest.options_overlay.run_overlay`) and the
live loop (:mod:`serving.options_overlay`) must roll, price, budget and settle the option the
same way; both drive this class, so the backtest's hand-checked tests anchor the live overlay.

The stepper holds at most one option series on ``underlying`` (a protective put, long, or a
covered call, short) and the per-unit value it was last marked at. At each decision the caller:

1. :meth:`OverlayStepper.revalue` — the held option at the decision's price and IV (a snapshot
   mark when one is known and fresh, else Black-76; at or after expiry its intrinsic value); the
   change, in USD, is the option's PnL since the last mark;
2. trades the linear (perpetual) exposure to its target;
3. :meth:`OverlayStepper.settlement` — at the first decision at or after expiry the option
   settles at intrinsic value on that decision's price, less the delivery fee (cash settlement,
   as Deribit's European options); :meth:`OverlayStepper.close` then drops it;
4. :meth:`OverlayStepper.plan_roll` — with no option held and a long linear exposure, the next
   series: strike ``moneyness`` × price on the ``strike_step`` grid, expiring at the first
   listed expiry (08:00 UTC, :func:`listed_expiry`) at or after ``tenor`` later,
   ``hedge_ratio`` units of underlying per unit of the linear position, cut by
   :func:`dea.risk.greeks.check_option_order` with the linear exposure counted in the delta;
   :meth:`OverlayStepper.open` holds what was bought (or sold).

Fees (Deribit's rule, :func:`trade_fee` / :func:`delivery_fee`): ``rate`` × underlying notional
capped at ``cap_of_premium`` × premium. Amounts are USD per unit of underlying unless named
otherwise. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dea.options.black76 import greeks, year_fraction
from dea.options.contracts import EXPIRY_HOUR_UTC, MONTHS
from dea.options.overlay_config import OptionFeeConfig, OverlayLegConfig
from dea.options.portfolio import GreekExposure, position_greeks
from dea.risk.greeks import GreekBudgetConfig, GreekDecision, check_option_order
from dea.timeutil import parse_duration


class MarkSource(Protocol):
    """Option marks in USD per unit of underlying (NaN where none is known and fresh)."""

    def lookup(self, instrument: str, t: int) -> float: ...


_DAY_NS = 86_400_000_000_000
_EXPIRY_NS = EXPIRY_HOUR_UTC["deribit"] * 3_600_000_000_000


def listed_expiry(t_ns: int) -> int:
    """The first Deribit expiry instant (08:00 UTC) at or after ``t_ns``: the expiry a series'
    name (which carries only the date) stands for, so that the stepper, the venue and a restart
    parsing the name agree on when the option expires."""
    return -((-(int(t_ns) - _EXPIRY_NS)) // _DAY_NS) * _DAY_NS + _EXPIRY_NS


def option_name(underlying: str, expiry_ns: int, strike: float, is_call: bool) -> str:
    """Deribit-style name (``BTC-3JAN24-40000-P``; a fractional strike written with ``d``)."""
    d = np.datetime64(int(expiry_ns), "ns").astype("datetime64[D]").item()
    k = str(int(strike)) if float(strike).is_integer() else repr(float(strike)).replace(".", "d")
    return f"{underlying}-{d.day}{MONTHS[d.month - 1]}{d.year % 100:02d}-{k}-{'C' if is_call else 'P'}"


def trade_fee(fees: OptionFeeConfig, underlying_price: float, premium: float) -> float:
    """Deribit's option trade fee per unit of underlying: ``rate`` × price, capped at
    ``cap_of_premium`` × premium (USD)."""
    return min(fees.rate * underlying_price, fees.cap_of_premium * premium)


def intrinsic(is_call: bool, strike: float, underlying_price: float) -> float:
    """Settlement value per unit of underlying at ``underlying_price``."""
    return max(underlying_price - strike if is_call else strike - underlying_price, 0.0)


def delivery_fee(fees: OptionFeeConfig, underlying_price: float, payoff: float) -> float:
    """Deribit's delivery fee per unit of underlying on an in-the-money settlement (0 otherwise)."""
    return min(fees.delivery_rate * underlying_price, fees.cap_of_premium * payoff) if payoff > 0 else 0.0


@dataclass(frozen=True)
class OptionPosition:
    """The option series held: ``contracts`` signed (+ long), each ``multiplier`` units."""

    instrument: str
    strike: float
    expiry_ns: int
    is_call: bool
    contracts: float
    multiplier: float


@dataclass(frozen=True)
class RollOrder:
    """A roll the budgets allowed: ``contracts`` (signed, 0 when refused) of ``requested``, at
    ``premium_usd`` per unit; ``fee_usd`` is the Deribit fee on ``contracts``."""

    ts: int
    instrument: str
    strike: float
    expiry_ns: int
    is_call: bool
    requested: float
    contracts: float
    premium_usd: float
    unit_fee_usd: float
    decision: GreekDecision

    @property
    def fee_usd(self) -> float:
        return self.unit_fee_usd * abs(self.contracts)

    def event(self) -> dict[str, Any]:
        """The overlay backtest's roll event (also journaled live)."""
        return {"event": "roll", "ts": int(self.ts), "instrument": self.instrument, "requested": self.requested,
                "contracts": self.contracts, "premium_usd": self.premium_usd, "binding": list(self.decision.binding),
                "reason": self.decision.reason}


@dataclass(frozen=True)
class Settlement:
    """The held option at expiry: ``payoff`` USD per unit at ``price``, ``fee_usd`` in total."""

    ts: int
    instrument: str
    contracts: float
    multiplier: float
    price: float
    payoff: float
    fee_usd: float

    @property
    def cash_usd(self) -> float:
        """What the account receives (negative: pays, a short call assigned), fee deducted."""
        return self.contracts * self.multiplier * self.payoff - self.fee_usd

    def event(self) -> dict[str, Any]:
        return {"event": "settle", "ts": int(self.ts), "instrument": self.instrument, "contracts": self.contracts,
                "price": self.price, "payoff": self.payoff}


class OverlayStepper:
    """The overlay's option leg across decisions (see the module doc for the call order)."""

    def __init__(self, leg: OverlayLegConfig, budgets: GreekBudgetConfig, fees: OptionFeeConfig, *,
                 underlying: str = "BTC", marks: MarkSource | None = None) -> None:
        self.leg = leg
        self.budgets = budgets
        self.fees = fees
        self.underlying = underlying
        self.marks = marks
        self.is_call = leg.strategy == "covered_call"
        self.sign = -1.0 if self.is_call else 1.0
        self.tenor_ns = parse_duration(leg.tenor)
        self.position: OptionPosition | None = None
        self.value = 0.0  # USD per unit at the last mark
        self.priced_from = {"snapshot": 0, "model": 0}

    # -- state -------------------------------------------------------------------------------------
    @property
    def contracts(self) -> float:
        return self.position.contracts if self.position is not None else 0.0

    def market_value(self) -> float:
        """USD value of the held option at its last mark (0 when flat)."""
        p = self.position
        return p.contracts * p.multiplier * self.value if p is not None else 0.0

    def restore(self, position: OptionPosition | None, value: float) -> None:
        """Take over a position (and its last per-unit mark) from a journal."""
        self.position = position if position is not None and position.contracts != 0.0 else None
        self.value = float(value) if self.position is not None else 0.0

    # -- pricing -----------------------------------------------------------------------------------
    def _unit_value(self, ts: int, price: float, iv: float, instrument: str, strike: float, expiry: int) -> float:
        if ts >= expiry:  # expired: worth its settlement, whatever a snapshot said earlier
            return intrinsic(self.is_call, strike, price)
        mark = self.marks.lookup(instrument, int(ts)) if self.marks is not None else math.nan
        if math.isfinite(mark):
            self.priced_from["snapshot"] += 1
            return mark
        self.priced_from["model"] += 1
        return float(greeks(price, strike, year_fraction(ts, expiry), iv, self.is_call).price)

    def revalue(self, ts: int, price: float, iv: float) -> float:
        """Mark the held option at ``ts``; returns its USD PnL since the last mark (0 when flat)."""
        p = self.position
        if p is None:
            return 0.0
        new = self._unit_value(ts, price, iv, p.instrument, p.strike, p.expiry_ns)
        pnl = p.contracts * p.multiplier * (new - self.value)
        self.value = new
        return pnl

    def exposure(self, ts: int, price: float, iv: float, equity: float) -> GreekExposure:
        """Model greeks of the held option as fractions of ``equity`` (zero when flat)."""
        p = self.position
        if p is None:
            return GreekExposure()
        g = greeks(price, p.strike, year_fraction(ts, p.expiry_ns), iv, p.is_call)
        return position_greeks(g, p.contracts, p.multiplier, price, equity)

    # -- expiry ------------------------------------------------------------------------------------
    def settlement(self, ts: int, price: float) -> Settlement | None:
        """The held option's settlement when ``ts`` is at or after its expiry (else None)."""
        p = self.position
        if p is None or ts < p.expiry_ns:
            return None
        payoff = intrinsic(p.is_call, p.strike, price)
        fee = delivery_fee(self.fees, price, payoff) * abs(p.contracts) * p.multiplier
        return Settlement(int(ts), p.instrument, p.contracts, p.multiplier, float(price), payoff, fee)

    def close(self) -> None:
        """The held option is gone (settled)."""
        self.position, self.value = None, 0.0

    # -- rolling -----------------------------------------------------------------------------------
    def plan_roll(self, ts: int, price: float, iv: float, linear_exposure: float, equity: float) -> RollOrder | None:
        """The next series when none is held and the linear exposure is long (else None): sized
        by ``hedge_ratio``, cut by the greek budgets with ``linear_exposure`` in the delta. The
        greeks are fractions of the equity left after the largest fee this roll can cost, so the
        budget still holds once the fee is paid."""
        if self.position is not None or not linear_exposure > 0:
            return None
        leg, s = self.leg, float(price)
        strike = max(leg.strike_step, round(leg.moneyness * s / leg.strike_step) * leg.strike_step)
        expiry = listed_expiry(int(ts) + self.tenor_ns)  # the named series' own expiry (08:00 UTC)
        name = option_name(self.underlying, expiry, strike, self.is_call)
        g = greeks(s, strike, year_fraction(ts, expiry), iv, self.is_call)
        wanted = self.sign * leg.hedge_ratio * linear_exposure * equity / s / leg.multiplier
        premium = self._unit_value(int(ts), s, iv, name, strike, expiry)
        unit_fee = trade_fee(self.fees, s, premium) * leg.multiplier
        per = position_greeks(g, 1.0, leg.multiplier, s, equity - unit_fee * abs(wanted))
        decision = check_option_order(GreekExposure(delta=linear_exposure), per, wanted, self.budgets)
        return RollOrder(int(ts), name, strike, expiry, self.is_call, wanted, decision.quantity, premium, unit_fee, decision)

    def open(self, order: RollOrder, contracts: float | None = None, premium_usd: float | None = None) -> None:
        """Hold what the roll bought or sold (``contracts``/``premium_usd``: as filled, default
        the order's); nothing when it was refused."""
        q = order.contracts if contracts is None else float(contracts)
        if q == 0.0:
            return
        self.position = OptionPosition(order.instrument, order.strike, order.expiry_ns, order.is_call, q, self.leg.multiplier)
        self.value = order.premium_usd if premium_usd is None else float(premium_usd)


__all__ = [
    "MarkSource",
    "OptionPosition",
    "OverlayStepper",
    "RollOrder",
    "Settlement",
    "delivery_fee",
    "intrinsic",
    "option_name",
    "trade_fee",
]
