"""Typed order-book feed events (numpy/stdlib only: the live feed and serving build these).

Times are int64 ns UTC. ``available_at`` is the local receive time (DESIGN.md: exchange data is
known when it arrives); ``ts_event`` the exchange's own stamp (transaction time ``T`` where the
message has one, else event time ``E``, else the receive time for messages without either).
Prices and sizes are floats parsed from Binance's decimal strings (``float("61800.20")``), so
equal strings give equal keys in the streaming book.
"""

from __future__ import annotations

from dataclasses import dataclass

Level = tuple[float, float]  # (price, size); size 0 deletes the level in a diff


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """REST depth snapshot: the full book as of update id ``last_update_id``."""

    available_at: int
    ts_event: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """Depth diff covering update ids ``first_update_id`` (U) .. ``final_update_id`` (u).

    ``prev_final_update_id`` (pu) is the previous diff's ``u`` on USDT-M/COIN-M futures and -1
    on spot, whose diffs chain by ``U == previous u + 1`` instead.
    """

    available_at: int
    ts_event: int
    symbol: str
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid/ask after update id ``update_id``."""

    available_at: int
    ts_event: int
    symbol: str
    update_id: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade; ``side`` is the aggressor: +1 buy, -1 sell (Binance ``m``: buyer is maker -> -1)."""

    available_at: int
    ts_event: int
    symbol: str
    trade_id: int
    price: float
    size: float
    side: int


BookEvent = DepthSnapshot | DepthDiff
Event = DepthSnapshot | DepthDiff | BookTicker | Trade
