"""The fill and cost model shared by the vectorised backtest, the event-driven backtest and the
live paper exchange.

Every fill is priced at a *reference* price (bar price, or book mid) and pays three costs, each
in account currency and reported separately:

- fee: ``|q| * ref * fee_rate`` (the instrument's maker or taker rate, ``costs.fee_side``); an
  inverse contract's bar costs are on the contract notional it trades instead, ``|dN|``, which a
  reduction closes at the entry price (``|q| * P_entry``, :mod:`dea.risk.margin`);
- spread: ``|q| * ref * half_spread`` from ``costs.half_spread_bps`` on bars, or
  ``|q| * (best ask - mid)`` (buys) / ``|q| * (mid - best bid)`` (sells) on a book;
- impact: on bars the square-root law — the price moves by ``k * sigma * sqrt(|q| ref / ADV)``
  and the order pays that on its notional, i.e. ``coef * (|q| ref)^1.5`` with
  ``coef = k * sigma / sqrt(ADV)`` (``sigma`` per-step volatility, ``ADV`` mean per-step traded
  notional: the ratio is the same at any sampling step); on a book, the walk:
  ``|q| * (average fill price - best price)`` over as many levels as the order needs.

Latency: an order decided at t fills at t + latency against the state prevailing then; on bars
(samples of a continuous price) the reference price is linearly interpolated between the bars
bracketing t + latency; on books and trades it is the last state at or before t + latency.

The scalar functions are plain code that numba compiles unchanged (the vectorised kernel inlines
them); the classes are for the event-driven paths. Numpy + stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.backtest.config import CostsConfig
from dea.errors import DataError, ExchangeError
from dea.instruments import Instrument

# ---------------------------------------------------------------------------------------------
# scalar cost functions (numba-compatible)
# ---------------------------------------------------------------------------------------------


def bar_fill_costs(notional, fee_rate, half_spread, impact_coef):
    """(fee, spread, impact) in currency for a fill of absolute ``notional`` against bar prices."""
    return notional * fee_rate, notional * half_spread, impact_coef * notional * math.sqrt(notional)


def interpolate_price(t, t0, p0, t1, p1):
    """Price at ``t`` on the straight line between bars (t0, p0) and (t1, p1)."""
    if t1 <= t0:
        return p1
    f = (t - t0) / (t1 - t0)
    return p0 + (p1 - p0) * f


def walk_book(level_px, level_sz, qty):
    """Walk ``qty`` (> 0) through levels (best first). Returns (average price, unfilled qty);
    the unfilled remainder, if depth runs out, is priced at the last level."""
    remaining = qty
    cost = 0.0
    last = math.nan
    for lv in range(len(level_px)):
        px = level_px[lv]
        sz = level_sz[lv]
        if not (sz > 0.0) or px != px:
            continue
        take = sz if sz < remaining else remaining
        cost += take * px
        remaining -= take
        last = px
        if remaining <= 0.0:
            break
    unfilled = remaining if remaining > 0.0 else 0.0
    if unfilled > 0.0 and last == last:
        cost += unfilled * last
    return cost / qty, unfilled


def book_fill_costs(qty, bid_px, bid_sz, ask_px, ask_sz, fee_rate):
    """(mid, fee, spread, impact, unfilled) for a market order of signed ``qty`` on a book."""
    best_bid = bid_px[0]
    best_ask = ask_px[0]
    mid = 0.5 * (best_bid + best_ask)
    aq = abs(qty)
    if qty > 0:
        avg, unfilled = walk_book(ask_px, ask_sz, aq)
        spread = aq * (best_ask - mid)
        impact = aq * (avg - best_ask)
    else:
        avg, unfilled = walk_book(bid_px, bid_sz, aq)
        spread = aq * (mid - best_bid)
        impact = aq * (best_bid - avg)
    return mid, aq * mid * fee_rate, spread, impact, unfilled


# ---------------------------------------------------------------------------------------------
# fills for the event-driven paths
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``qty`` signed base units at reference ``price``, plus its costs (currency)."""

    index: int
    ts: int
    qty: float
    price: float
    fee: float
    spread: float
    impact: float
    client_id: str = ""
    liquidation: bool = False
    unfilled_depth: float = 0.0  # quantity priced beyond the book's last level

    @property
    def cost(self) -> float:
        return self.fee + self.spread + self.impact

    @property
    def avg_price(self) -> float:
        """Effective price including spread and impact (fee excluded)."""
        if self.qty == 0:
            return self.price
        return self.price + math.copysign((self.spread + self.impact) / abs(self.qty), self.qty)

    @property
    def cash_flow(self) -> float:
        return -self.qty * self.price - self.cost


def fee_rates(instruments: Sequence[Instrument], fee_side: str) -> np.ndarray:
    """Per-instrument fee rate for the configured side (``taker`` or ``maker``)."""
    return np.array([i.taker_fee if fee_side == "taker" else i.maker_fee for i in instruments], dtype=np.float64)


class PaperFillModel:
    """Prices fills with the backtest's fee/spread/impact model, against bars or a book.

    ``impact_k``: resolved square-root coefficient per instrument (``None`` entries -> use
    ``costs.impact.k``); with ``costs.impact.model == 'none'`` bar fills pay no impact.
    """

    def __init__(self, instruments: Sequence[Instrument], costs: CostsConfig) -> None:
        self.instruments = tuple(instruments)
        self.costs = costs
        self.fee = fee_rates(instruments, costs.fee_side).tolist()
        self.liq_fee = [i.taker_fee for i in instruments]
        self.half_spread = costs.half_spread_bps * 1e-4
        self.impact_on = costs.impact.model != "none"

    def fill_at_price(
        self,
        index: int,
        qty: float,
        price: float,
        impact_coef: float,
        ts: int,
        client_id: str = "",
        liquidation: bool = False,
        notional: float | None = None,
    ) -> Fill:
        """Fill against a bar/mark price; ``impact_coef`` from :class:`SqrtImpactEstimator`.
        ``notional``: the quote notional the costs are charged on, ``|qty| * price`` by default;
        an inverse contract's is the contract notional it trades
        (:meth:`dea.execution.account.Account.cost_notional`)."""
        if not (price > 0.0):
            raise ExchangeError(f"cannot fill {self.instruments[index].symbol}: price {price} at {ts}")
        coef = impact_coef if self.impact_on else 0.0
        if coef != coef:
            raise DataError(
                f"impact for {self.instruments[index].symbol} at {ts} needs volatility and volume "
                "history (sqrt model) but none is known yet; warm the data up or set costs.impact.model"
            )
        rate = self.liq_fee[index] if liquidation else self.fee[index]
        base = abs(qty) * price if notional is None else notional
        fee, spread, impact = bar_fill_costs(base, rate, self.half_spread, coef)
        return Fill(index, ts, qty, price, fee, spread, impact, client_id, liquidation)

    def fill_against_book(
        self,
        index: int,
        qty: float,
        bid_px: np.ndarray,
        bid_sz: np.ndarray,
        ask_px: np.ndarray,
        ask_sz: np.ndarray,
        ts: int,
        client_id: str = "",
        liquidation: bool = False,
    ) -> Fill:
        """Fill a market order by walking the book (levels best first, prices and sizes)."""
        if len(bid_px) == 0 or len(ask_px) == 0:
            raise ExchangeError(f"cannot fill {self.instruments[index].symbol} at {ts}: one side of the book is empty")
        rate = self.liq_fee[index] if liquidation else self.fee[index]
        mid, fee, spread, impact, unfilled = book_fill_costs(qty, bid_px, bid_sz, ask_px, ask_sz, rate)
        return Fill(index, ts, qty, mid, fee, spread, impact, client_id, liquidation, unfilled)


class SqrtImpactEstimator:
    """Streaming square-root impact coefficient ``k * sigma / sqrt(ADV)`` per instrument.

    Same definition as the batch :func:`dea.backtest.market.impact_coefficients`: ``sigma^2`` is
    the mean of the finite squared log returns of the last ``vol_window`` rows (the Parkinson
    high-low estimate of the current bar while no return is known yet); ``ADV`` the mean of the
    finite ``volume * price`` of the last ``adv_window`` rows. NaN where unknown.
    """

    def __init__(self, k: Sequence[float], vol_window: int, adv_window: int) -> None:
        self.k = [float(x) for x in k]
        self.n = len(self.k)
        self.vw = int(vol_window)
        self.aw = int(adv_window)
        self._r2 = [[math.nan] * self.vw for _ in range(self.n)]
        self._nv = [[math.nan] * self.aw for _ in range(self.n)]
        self._prev = [math.nan] * self.n
        self._row = 0
        self.coef = [math.nan] * self.n

    def update(self, prices: Sequence[float], volume: Sequence[float] | None,
               high: Sequence[float] | None = None, low: Sequence[float] | None = None) -> list[float]:
        """Consume one row (all instruments) and return the coefficients now in force."""
        vs, as_ = self._row % self.vw, self._row % self.aw
        for i in range(self.n):
            p = float(prices[i])
            prev = self._prev[i]
            ok = p > 0.0 and prev > 0.0 and p - p == 0.0 and prev - prev == 0.0  # an inf price is no return
            self._r2[i][vs] = math.log(p / prev) ** 2 if ok else math.nan
            self._prev[i] = p
            v = math.nan if volume is None else float(volume[i])
            self._nv[i][as_] = v * p if (v == v and p == p) else math.nan
            var = _finite_mean(self._r2[i])
            if var != var and high is not None and low is not None:
                h, lo = float(high[i]), float(low[i])
                if h > 0.0 and lo > 0.0 and h >= lo:
                    var = math.log(h / lo) ** 2 / (4.0 * math.log(2.0))
            adv = _finite_mean(self._nv[i])
            if self.k[i] == 0.0:
                self.coef[i] = 0.0
            elif var == var and adv > 0.0:
                self.coef[i] = self.k[i] * math.sqrt(var) / math.sqrt(adv)
            else:
                self.coef[i] = math.nan
        self._row += 1
        return self.coef


def _finite_mean(xs: list[float]) -> float:
    s = 0.0
    c = 0
    for x in xs:
        if x == x:
            s += x
            c += 1
    return s / c if c else math.nan
