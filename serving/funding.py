"""Live funding: settlements from the venue's funding information, and the missing-funding rule.

Why: a live perpetual pays or receives funding at the venue's settlement instants; treating an
unknown rate as 0 is the bias DEA exists to avoid (DESIGN.md). Venues publish the *current* rate
with the next settlement time (Binance ``@markPrice``: ``r`` and ``T``; ccxt ``fetchFundingRate``:
``fundingRate`` and ``fundingTimestamp``); when the announced settlement time moves on, the
previous instant has settled at the last rate announced before it, which is what
:class:`FundingTracker` emits as a :class:`~serving.events.FundingEvent`. :class:`FundingWatch`
tells the loop when a perpetual has had no funding information for longer than its interval.
stdlib only.
"""

from __future__ import annotations

from serving.events import FundingEvent, FundingRateEvent


class FundingTracker:
    """Per instrument: the announced (rate, next settlement) -> settled :class:`FundingEvent`."""

    def __init__(self, n: int, sources: list[int]) -> None:
        self._next = [0] * n
        self._rate = [float("nan")] * n
        self._sources = sources  # data.sources index of each instrument's funding source (-1: none)

    def on_rate(self, ev: FundingRateEvent) -> FundingEvent | None:
        """The settlement this update reveals (the announced instant moved on), else None."""
        j = ev.instrument
        prev_t, prev_r = self._next[j], self._rate[j]
        out = None
        if prev_t and ev.next_funding_ns > prev_t and prev_r == prev_r and ev.available_at >= prev_t:
            out = FundingEvent(ev.available_at, prev_t, self._sources[j], j, prev_r)
        if ev.next_funding_ns >= prev_t:
            self._next[j], self._rate[j] = ev.next_funding_ns, ev.rate
        return out


class FundingWatch:
    """When did each funded perpetual last get funding information (``available_at``)?

    ``missing(t)`` lists the instruments with none for longer than their interval; each missing
    episode is reported once as *new* (for the log and journal) while the instrument stays
    listed until information arrives again."""

    def __init__(self, intervals: dict[int, int]) -> None:
        self.intervals = intervals
        self._seen: dict[int, int | None] = dict.fromkeys(intervals)
        self._flagged: set[int] = set()
        self._since: int | None = None

    def seen(self, j: int, av: int) -> None:
        if j in self._seen:
            self._seen[j] = av
            self._flagged.discard(j)

    def start(self, av: int) -> None:
        if self._since is None:
            self._since = av

    def missing(self, t: int) -> list[tuple[int, int, bool]]:
        """``(instrument, last information ns, newly missing)`` for each instrument past its interval."""
        out = []
        for j, interval in self.intervals.items():
            last = self._seen[j]
            ref = last if last is not None else self._since
            if ref is None or t - ref <= interval:
                continue
            new = j not in self._flagged
            self._flagged.add(j)
            out.append((j, ref, new))
        return out


__all__ = ["FundingTracker", "FundingWatch"]
