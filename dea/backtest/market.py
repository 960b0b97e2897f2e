"""Market inputs of a backtest on the decision clock, prepared once from a :class:`Panel`.

Why a separate step: the vectorised kernel and the event replay must charge the same funding and
impact from the same data. This module checks the panel against the instruments and the costs
config (a perpetual that charges funding needs real funding data; the square-root impact model
needs volume), and turns it into plain arrays: execution prices, funding settled per step and the
impact coefficient ``k * sigma / sqrt(ADV)`` (see :mod:`dea.execution.fills`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dea.backtest.config import CostsConfig
from dea.data.panel import Panel
from dea.errors import ConfigError, DataError, MissingFundingError
from dea.instruments import Instrument
from dea.timeutil import iso


@dataclass(frozen=True)
class BookDepth:
    """L2 depth on the decision clock: [T, N, L] prices and sizes, best level first; NaN where the
    book is unknown (fills there use the bar model)."""

    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


@dataclass(frozen=True)
class Market:
    """Arrays a backtest consumes. ``funding`` is the rate settled in (t-1, t] per instrument,
    zero where the instrument pays none (spot, ``funding: none``, or ``costs.funding: ignore``)."""

    clock: np.ndarray
    step_ns: int
    instruments: tuple[Instrument, ...]
    price: np.ndarray
    funding: np.ndarray
    impact_coef: np.ndarray
    impact_k: np.ndarray
    volume: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None
    depth: BookDepth | None = None
    notes: tuple[str, ...] = ()

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(i.symbol for i in self.instruments)

    @cached_property
    def forward_returns(self) -> np.ndarray:
        """Return over (t, t+1] per row and instrument, ``price[t+1] / price[t] - 1`` (NaN on the
        last row): what an exposure decided at t earns."""
        r = np.full(self.price.shape, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            r[:-1] = self.price[1:] / self.price[:-1] - 1.0
        return r

    @cached_property
    def tradable(self) -> np.ndarray:
        """Rows [T] whose forward return, next settlement's funding and impact are all known: the
        rows a policy may be trained on, scored on and consulted at (training and backtest alike)."""
        fund = np.full(self.price.shape, np.nan)
        fund[:-1] = self.funding[1:]
        return (np.isfinite(self.forward_returns).all(1) & np.isfinite(fund).all(1)
                & np.isfinite(np.asarray(self.impact_coef, dtype=np.float64)).all(1))

    @cached_property
    def funding_events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Non-zero settlements as (step index, instrument index, rate), in time then instrument
        order: what the kernel reads instead of scanning a mostly-zero [T, N] array every run."""
        t, i = np.nonzero(self.funding)
        return t.astype(np.int64), i.astype(np.int64), np.ascontiguousarray(self.funding[t, i], dtype=np.float64)


def _rolling_finite_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the finite values of rows (t - window, t], NaN where there are none.

    Consumes ``x`` (NaNs are zeroed in place) to keep memory flat on long panels."""
    finite = np.isfinite(x)
    x[~finite] = 0.0
    cs = np.cumsum(x, axis=0, out=x)
    cc = np.cumsum(finite, axis=0, dtype=np.float64)
    del finite
    if window < len(cs):
        cs[window:] -= cs[:-window].copy()
        cc[window:] -= cc[:-window].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(cs, cc, out=cs)
    cs[cc == 0] = np.nan
    return cs


def _log_returns_sq(price: np.ndarray) -> np.ndarray:
    """Squared log returns (row 0 and rows next to a missing or non-positive price: NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        lp = np.log(np.where(price > 0, price, np.nan))
    r2 = np.empty_like(lp)
    r2[0] = np.nan
    np.subtract(lp[1:], lp[:-1], out=r2[1:])
    np.square(r2, out=r2)
    return r2


def volatility_and_adv(
    price: np.ndarray,
    volume: np.ndarray,
    high: np.ndarray | None,
    low: np.ndarray | None,
    vol_window: int,
    adv_window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step volatility and average traded notional, causal (rows up to t only)."""
    var = _rolling_finite_mean(_log_returns_sq(price), vol_window)
    if high is not None and low is not None:
        missing = np.isnan(var)
        if missing.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                h, lo = high[missing], low[missing]
                ok = (h > 0) & (lo > 0) & (h >= lo)
                park = np.where(ok, np.log(np.where(ok, h / np.where(ok, lo, 1.0), 1.0)) ** 2 / (4 * np.log(2.0)), np.nan)
            var[missing] = park
    with np.errstate(invalid="ignore"):
        adv = _rolling_finite_mean(volume * price, adv_window)
    adv[~(adv > 0)] = np.nan
    np.sqrt(var, out=var)
    return var, adv


def impact_coefficients(
    price: np.ndarray,
    volume: np.ndarray,
    high: np.ndarray | None,
    low: np.ndarray | None,
    k: np.ndarray,
    vol_window: int,
    adv_window: int,
) -> np.ndarray:
    """``k * sigma / sqrt(ADV)`` per step and instrument, causal; identical in definition to the
    streaming :class:`dea.execution.fills.SqrtImpactEstimator` (tested). One numba pass."""
    from dea.backtest._prep import impact_coef_kernel

    price = np.ascontiguousarray(price, dtype=np.float64)
    volume = np.ascontiguousarray(volume, dtype=np.float64)
    has_hl = high is not None and low is not None
    hi = np.ascontiguousarray(high, dtype=np.float64) if has_hl else np.zeros((1, 1))
    lo = np.ascontiguousarray(low, dtype=np.float64) if has_hl else np.zeros((1, 1))
    out = np.empty(price.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.log(price, out=out)  # the kernel reads the logs (of positive prices) and overwrites them
    impact_coef_kernel(price, volume, hi, lo, has_hl, np.ascontiguousarray(k, dtype=np.float64),
                       int(vol_window), int(adv_window), out)
    return out


def estimate_impact_k(price: np.ndarray, volume: np.ndarray, vol_window: int, adv_window: int) -> np.ndarray:
    """Square-root-law coefficient per instrument: the least-squares slope (through the origin)
    of |log return| on ``sigma_{t-1} * sqrt(volume_t * price_t / ADV_{t-1})``.

    An upper bound on pure impact (information moves prices too), estimated on the whole sample:
    it prices trading, it never informs a decision.
    """
    sigma, adv = volatility_and_adv(price, volume, None, None, vol_window, adv_window)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.abs(np.log(price[1:] / price[:-1]))
        x = sigma[:-1] * np.sqrt(volume[1:] * price[1:] / adv[:-1])
    ok = np.isfinite(x) & np.isfinite(y)
    num = np.where(ok, x * y, 0.0).sum(axis=0)
    den = np.where(ok, x * x, 0.0).sum(axis=0)
    if (den <= 0).any():
        raise DataError("cannot estimate impact k: an instrument has no usable price/volume history")
    return num / den


def prepare_market(panel: Panel, instruments: Sequence[Instrument], costs: CostsConfig,
                   depth: BookDepth | None = None) -> Market:
    """Check ``panel`` against ``instruments``/``costs`` and build the backtest's market arrays."""
    symbols = tuple(i.symbol for i in instruments)
    if tuple(panel.instruments) != symbols:
        raise ConfigError(f"panel instruments {panel.instruments} differ from configured instruments {symbols}")
    if "price" not in panel.fields:
        raise DataError("panel has no 'price' field (the execution price the backtest trades at)")
    price = np.ascontiguousarray(panel.fields["price"], dtype=np.float64)
    T, N = price.shape
    if len(panel.clock) != T or N != len(symbols):
        raise DataError(f"panel price has shape {price.shape}; clock has {len(panel.clock)} rows, {len(symbols)} instruments")
    if T and (np.diff(panel.clock) <= 0).any():
        raise DataError("panel clock is not strictly increasing")
    bad = price <= 0
    if bad.any():
        t, i = np.argwhere(bad)[0]
        raise DataError(f"panel price of {symbols[i]} at {iso(panel.clock[t])} is {price[t, i]}; prices must be > 0")
    notes: list[str] = []

    funding = np.zeros((T, N))
    charged = [i for i, inst in enumerate(instruments) if inst.has_funding]
    if costs.funding == "charge" and charged:
        if "funding_settled" not in panel.fields:
            names = [symbols[i] for i in charged]
            raise MissingFundingError(
                f"instruments {names} are perpetuals with a funding source but the panel has no "
                "'funding_settled' field; load the funding source or declare 'funding: none'"
            )
        settled = np.asarray(panel.fields["funding_settled"], dtype=np.float64)
        for i in charged:
            col = settled[:, i]
            missing = np.isnan(col) & np.isfinite(price[:, i])
            if missing.any():
                t = int(np.flatnonzero(missing)[0])
                raise MissingFundingError(
                    f"funding of perpetual {symbols[i]} is unknown at {iso(panel.clock[t])} "
                    f"({int(missing.sum())} steps) while it trades; missing funding is never treated as zero"
                )
            funding[:, i] = np.nan_to_num(col, nan=0.0)
    elif costs.funding == "ignore" and charged:
        notes.append("funding ignored by costs.funding: ignore")
    for inst in instruments:
        if inst.kind == "perpetual" and inst.funding == "none":
            notes.append(f"{inst.symbol}: declared 'funding: none' (no funding charged)")

    volume = panel.fields.get("volume")
    high = panel.fields.get("high")
    low = panel.fields.get("low")
    imp = costs.impact
    if imp.model == "none" or imp.k == 0:
        k = np.zeros(N)
        coef = np.zeros((T, N))
    else:
        if volume is None:
            raise ConfigError(
                f"costs.impact.model is {imp.model!r}, which needs a 'volume' field the panel does not have; "
                "set costs.impact.model: none or load bars with volume"
            )
        volume = np.asarray(volume, dtype=np.float64)
        if imp.k is None:
            k = estimate_impact_k(price, volume, imp.vol_window, imp.adv_window)
            notes.append("impact k estimated per instrument: " + ", ".join(f"{s}={v:.3g}" for s, v in zip(symbols, k)))
        else:
            k = np.full(N, float(imp.k))
        coef = impact_coefficients(price, volume, high, low, k, imp.vol_window, imp.adv_window)
    if depth is not None:
        if imp.model != "book":
            raise ConfigError("book depth given but costs.impact.model is not 'book'")
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            arr = getattr(depth, name)
            if arr.ndim != 3 or arr.shape[:2] != (T, N):
                raise DataError(f"book depth {name} has shape {arr.shape}; expected ({T}, {N}, levels)")
    return Market(
        clock=np.asarray(panel.clock, dtype=np.int64),
        step_ns=int(panel.step_ns),
        instruments=tuple(instruments),
        price=price,
        funding=funding,
        impact_coef=np.ascontiguousarray(coef),
        impact_k=k,
        volume=None if volume is None else np.asarray(volume, dtype=np.float64),
        high=None if high is None else np.asarray(high, dtype=np.float64),
        low=None if low is None else np.asarray(low, dtype=np.float64),
        depth=depth,
        notes=tuple(notes),
    )


def slice_market(market: Market, start: int, stop: int) -> Market:
    """Rows [start, stop) of a market (impact coefficients keep the history before ``start``)."""
    from dataclasses import replace

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[start:stop]

    depth = None
    if market.depth is not None:
        d = market.depth
        depth = BookDepth(d.bid_px[start:stop], d.bid_sz[start:stop], d.ask_px[start:stop], d.ask_sz[start:stop])
    return replace(market, clock=market.clock[start:stop], price=market.price[start:stop],
                   funding=market.funding[start:stop], impact_coef=market.impact_coef[start:stop],
                   volume=cut(market.volume), high=cut(market.high), low=cut(market.low), depth=depth)
