"""The market path a stress scenario is written on: prices, liquidity, funding and venue health.

A :class:`MarketPath` is what the live loop would have seen, one row per decision step: the
execution price and volume of each instrument, the spread and resting depth a market order
meets (optionally the full L2 levels), the funding the account pays, whether the feed delivered
data at all, how long orders take, and which share of orders the exchange rejects. Scenario
generators (:mod:`dea.stress.generators`) return modified copies; nothing is mutated in place.

numpy only at import (the live-loop replay in ``serving`` uses it); table conversions import
pyarrow lazily.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.errors import DataError


@dataclass(frozen=True)
class BookLevels:
    """L2 levels per step and instrument, shape [T, N, L]; level 0 is the touch."""

    bid_price: np.ndarray
    bid_size: np.ndarray
    ask_price: np.ndarray
    ask_size: np.ndarray

    def depth_notional(self) -> np.ndarray:
        """Quote notional resting on both sides, [T, N] (what a liquidity drain thins)."""
        return (self.bid_price * self.bid_size).sum(axis=2) + (self.ask_price * self.ask_size).sum(axis=2)

    def spread_bps(self) -> np.ndarray:
        mid = 0.5 * (self.bid_price[..., 0] + self.ask_price[..., 0])
        return (self.ask_price[..., 0] - self.bid_price[..., 0]) / mid * 1e4


@dataclass(frozen=True)
class MarketPath:
    """One scenario's market, on the decision clock. Shapes: [T] or [T, N].

    ``depth``: quote notional resting per side near the touch (the impact model's liquidity);
    ``funding_rate``: latest known rate at t (NaN for instruments without funding);
    ``funding_settled``: sum of rates settled in (t-1, t] (0 where nothing settled);
    ``feed_ok``: False where the market-data feed delivered nothing (the market still moves);
    ``latency_ns``: decision-to-exchange delay; ``reject_share``: share of orders refused.
    ``shock``: [start, end) step indices of the scenario's shock, for reports (None: no shock).
    """

    clock: np.ndarray
    step_ns: int
    instruments: tuple[str, ...]
    price: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    depth: np.ndarray
    funding_rate: np.ndarray
    funding_settled: np.ndarray
    feed_ok: np.ndarray
    latency_ns: np.ndarray
    reject_share: np.ndarray
    book: BookLevels | None = None
    name: str = "base"
    shock: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        t, n = self.price.shape if self.price.ndim == 2 else (-1, -1)
        if t < 2 or n != len(self.instruments):
            raise DataError(f"market path {self.name!r}: price must be [T>=2, {len(self.instruments)}], got {self.price.shape}")
        if self.clock.shape != (t,) or np.any(np.diff(self.clock) <= 0):
            raise DataError(f"market path {self.name!r}: clock must be [T] strictly increasing int64 ns")
        for f in ("volume", "spread_bps", "depth", "funding_rate", "funding_settled"):
            if getattr(self, f).shape != (t, n):
                raise DataError(f"market path {self.name!r}: {f} has shape {getattr(self, f).shape}, expected {(t, n)}")
        for f in ("feed_ok", "latency_ns", "reject_share"):
            if getattr(self, f).shape != (t,):
                raise DataError(f"market path {self.name!r}: {f} has shape {getattr(self, f).shape}, expected {(t,)}")
        if not (np.isfinite(self.price).all() and (self.price > 0).all()):
            bad = np.argwhere(~(np.isfinite(self.price) & (self.price > 0)))[0]
            raise DataError(
                f"market path {self.name!r}: price of {self.instruments[bad[1]]} at step {bad[0]} is "
                f"{self.price[bad[0], bad[1]]!r}; prices must be finite and positive"
            )
        if self.book is not None and self.book.bid_price.shape[:2] != (t, n):
            raise DataError(f"market path {self.name!r}: book levels shape {self.book.bid_price.shape} vs {(t, n)}")

    @property
    def n_steps(self) -> int:
        return int(self.price.shape[0])

    def column(self, symbol: str) -> int:
        try:
            return self.instruments.index(symbol)
        except ValueError:
            raise DataError(f"market path {self.name!r} has no instrument {symbol!r}; it has {list(self.instruments)}") from None

    def columns(self, symbols: Sequence[str] | None) -> list[int]:
        return list(range(len(self.instruments))) if symbols is None else [self.column(s) for s in symbols]

    def log_returns(self) -> np.ndarray:
        """[T-1, N] log returns of the price."""
        return np.diff(np.log(self.price), axis=0)

    def replace(self, **changes: object) -> "MarketPath":
        return dataclasses.replace(self, **changes)


def path_from_prices(
    clock: np.ndarray,
    price: np.ndarray,
    instruments: Sequence[str],
    *,
    volume: np.ndarray | None = None,
    spread_bps: float | np.ndarray = 2.0,
    depth: float | np.ndarray | None = None,
    funding_rate: np.ndarray | None = None,
    funding_settled: np.ndarray | None = None,
    book: BookLevels | None = None,
    name: str = "base",
) -> MarketPath:
    """Build a healthy-venue path from prices (the usual base of synthetic shocks).

    Without a book the resting depth defaults to the step's traded notional (volume × price),
    which is the order of magnitude a bar-only impact model assumes. Missing funding arrays mean
    "no funding" (instruments that do not settle), stated explicitly by the caller.
    """
    clock = np.asarray(clock, dtype=np.int64)
    price = np.asarray(price, dtype=np.float64)
    if price.ndim == 1:
        price = price[:, None]
    t, n = price.shape
    if t < 2:
        raise DataError("market path needs at least two steps")
    steps = np.diff(clock)
    step_ns = int(np.median(steps)) if steps.size else 0
    vol = np.full((t, n), np.nan) if volume is None else np.asarray(volume, dtype=np.float64).reshape(t, n)
    if book is not None:
        spread = book.spread_bps()
        dep = book.depth_notional() / 2
    else:
        spread = np.broadcast_to(np.asarray(spread_bps, dtype=np.float64), (t, n)).copy()
        dep = vol * price if depth is None else np.broadcast_to(np.asarray(depth, dtype=np.float64), (t, n)).copy()
    return MarketPath(
        clock=clock,
        step_ns=step_ns,
        instruments=tuple(instruments),
        price=price,
        volume=vol,
        spread_bps=spread,
        depth=dep,
        funding_rate=np.full((t, n), np.nan) if funding_rate is None else np.asarray(funding_rate, dtype=np.float64).reshape(t, n),
        funding_settled=np.zeros((t, n)) if funding_settled is None else np.asarray(funding_settled, dtype=np.float64).reshape(t, n),
        feed_ok=np.ones(t, dtype=bool),
        latency_ns=np.zeros(t, dtype=np.int64),
        reject_share=np.zeros(t),
        book=book,
        name=name,
    )


def path_from_bars_table(table: object, instruments: Sequence[str] | None = None, name: str = "base") -> MarketPath:
    """Build a path from a canonical ``bars`` table (pyarrow), close prices on the close clock.

    Bars are stamped by open; their close is known at ``available_at``, which becomes the path's
    clock. Every instrument must have a bar at every stamp (a stress base must not have holes).
    """
    import pyarrow.compute as pc  # lazy: batch-only path

    cols = table.column_names  # type: ignore[attr-defined]
    for c in ("available_at", "instrument", "close", "volume"):
        if c not in cols:
            raise DataError(f"bars table for stress path lacks column {c!r}")
    symbols = list(instruments) if instruments else sorted(set(table.column("instrument").to_pylist()))  # type: ignore[attr-defined]
    clocks, closes, vols = [], [], []
    for s in symbols:
        sub = table.filter(pc.equal(table.column("instrument"), s)).sort_by("available_at")  # type: ignore[attr-defined]
        if sub.num_rows == 0:
            raise DataError(f"bars table has no rows for instrument {s!r}")
        clocks.append(sub.column("available_at").to_numpy())
        closes.append(sub.column("close").to_numpy(zero_copy_only=False))
        vols.append(sub.column("volume").to_numpy(zero_copy_only=False))
    for s, c in zip(symbols[1:], clocks[1:], strict=True):
        if c.shape != clocks[0].shape or np.any(c != clocks[0]):
            raise DataError(f"bars of {s!r} are not on the same clock as {symbols[0]!r}; align them first")
    return path_from_prices(clocks[0], np.column_stack(closes), symbols, volume=np.column_stack(vols), name=name)


def path_to_bars_table(path: MarketPath) -> object:
    """The path as a canonical ``bars`` table (open = previous close, high/low their envelope).

    Lets any consumer of canonical tables (backtest, feature engine, data store) replay a
    scenario. ``ts_event`` is the bar open (clock - step); ``available_at`` its close.
    """
    import pyarrow as pa

    from dea.data.schema import conform

    t, n = path.price.shape
    close = path.price
    open_ = np.vstack([close[:1], close[:-1]])
    rows = {
        "ts_event": np.repeat(path.clock - path.step_ns, n),
        "available_at": np.repeat(path.clock, n),
        "instrument": np.tile(np.array(path.instruments, dtype=object), t),
        "open": open_.ravel(),
        "high": np.maximum(open_, close).ravel(),
        "low": np.minimum(open_, close).ravel(),
        "close": close.ravel(),
        "volume": path.volume.ravel(),
    }
    return conform("bars", pa.table(rows), f"stress path {path.name!r}")
