"""Events the live loop consumes (numpy/stdlib only).

Every event has ``available_at`` (int ns: when DEA could know it, DESIGN.md) and ``ts_event``.
Canonical-table rows become the small row events below; order-book messages keep the typed
events of :mod:`dea.book.events`, wrapped with the instrument they belong to (a Binance depth
snapshot does not name its symbol). :class:`Tick` carries only the passage of time: live feeds
emit it so decisions fire on schedule when the market is quiet.
"""

from __future__ import annotations

from typing import NamedTuple

from dea.book.events import Event as BookEvent


class BarEvent(NamedTuple):
    available_at: int
    ts_event: int
    source: int  # index of the source in data.sources
    instrument: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class MarkEvent(NamedTuple):
    available_at: int
    ts_event: int
    source: int
    instrument: int
    mark_price: float
    index_price: float


class ExogEvent(NamedTuple):
    available_at: int
    ts_event: int
    slot: int  # resolved by StreamingPanel.exog_slot(source, series, entity)
    value: float


class FundingEvent(NamedTuple):
    available_at: int
    ts_event: int  # the settlement instant
    source: int
    instrument: int
    rate: float


class BookMsg(NamedTuple):
    """An order-book message (snapshot, diff, book ticker, trade) for instrument ``instrument``."""

    available_at: int
    instrument: int
    event: BookEvent


class Tick(NamedTuple):
    """Time passes (wall clock of a live feed); no market information."""

    available_at: int




class FundingRateEvent(NamedTuple):
    """Live funding information of a perpetual (Binance ``<symbol>@markPrice``, ccxt
    ``fetchFundingRate``): the current rate, which settles at ``next_funding_ns``, plus mark and
    index prices (NaN when the venue gives none). The loop turns the last rate before each
    settlement instant into a :class:`FundingEvent` (see :class:`serving.funding.FundingTracker`)."""

    available_at: int
    ts_event: int
    instrument: int
    rate: float
    next_funding_ns: int
    mark_price: float = float("nan")
    index_price: float = float("nan")


MarketEvent = BarEvent | MarkEvent | ExogEvent | FundingEvent | FundingRateEvent | BookMsg | Tick
