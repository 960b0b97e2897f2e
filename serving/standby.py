"""A hot standby: ``dea serve --standby`` follows the journal and the feed, then takes over warm.

Why: a standby that waits idle for the lease and only then starts the loop begins with cold
features (a live feed cannot be replayed from the start) and either holds through a warm-up or
decides on half-warm inputs, right after a crash, when the book most needs managing. The
:class:`StandbyLoop` runs the ordinary :class:`~serving.loop.LiveLoop` on the feed from the
start, with every decision *silent* (features, guards, prices and a paper venue stay warm;
nothing is journaled or sent), and it never runs ahead of the writer: before each decision it
waits until the journal holds that decision (the primary made it) or the primary's lease has
expired. Then it takes the lease, loads the journal exactly as a restart does (account, risk
state, open orders, the recurrent state replayed from the journaled inputs), reconciles with the
venue at the last journaled decision, and decides the next one itself -- with the same inputs
the primary would have had. If the features are not warm yet at that point (a standby started
late on a live feed) the loop's warm-up rule holds until they are, and the takeover says so.

While following, the loop sees the journal through a read-only view: a write is a bug, and
raises (the primary journals its own guard events; the standby's are only logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from dea.errors import JournalError
from dea.timeutil import iso
from serving.journal import Journal
from serving.lease import LeaseKeeper
from serving.loop import LiveLoop, LoopSummary

log = logging.getLogger("dea.serving.standby")

#: reads a following standby may make; every other journal method is a write
_READS = frozenset({"path", "lease", "last_decision_t", "funding_recorded", "decision_target", "decisions",
                    "events", "guard_events", "orders", "ledger", "fills", "load", "get_meta", "decision_allowed",
                    # serving.options_overlay: its position is read at start and again at takeover
                    "option_positions", "option_fills", "option_orders", "option_states", "last_option_state"})


class _FollowerJournal:
    """The journal as a following standby may use it: reads pass, guard rows are dropped (the
    writer journals its own), any other write raises :class:`JournalError`."""

    def __init__(self, journal: Journal) -> None:
        self._j = journal

    def record_guard(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        if name in _READS:
            return getattr(self._j, name)
        raise JournalError(f"standby: {name} would write the journal {self._j.path} while following the writer")


class _StopFollowing(Exception):
    pass


class StandbyLoop(LiveLoop):
    """A :class:`LiveLoop` that follows ``journal``'s writer until its lease expires.

    ``keeper``: this process's :class:`LeaseKeeper` (not holding the lease yet). ``poll_s``: how
    often a standby that has caught up with the journal looks again (default: ttl/20, at most
    50 ms). Everything else as :class:`LiveLoop`."""

    def __init__(self, cfg: Any, model: Any, exchange: Any, journal: Journal, *, keeper: LeaseKeeper,
                 poll_s: float | None = None, **kwargs: Any) -> None:
        self.following = True
        self.keeper = keeper
        self._journal_rw = journal
        self.followed = 0  # decisions followed silently
        self.followed_to: int | None = None
        self.took_over_at: int | None = None
        #: called once the lease is taken (``dea serve`` starts its metrics endpoint there)
        self.on_takeover: Callable[[], None] | None = None
        self.poll_s = poll_s if poll_s is not None else min(0.05, keeper.ttl_ns / 20e9)
        super().__init__(cfg, model, exchange, _FollowerJournal(journal), **kwargs)  # type: ignore[arg-type]
        # a paper venue in this process sees the followed market from the start (books, impact)
        self._venue_fresh = bool(getattr(exchange, "is_fresh", False))
        self._silent = not self._venue_fresh
        log.info("standby %s: following journal %s and the feed until the writer's lease expires", keeper.holder,
                 journal.path)

    # -- following ---------------------------------------------------------------------------------
    def _restore(self) -> None:
        if self.following:  # nothing to load yet: the writer is still writing
            self.metrics.set_model(self.slot.current.version, self.slot.current.source,
                                   getattr(self.slot.current, "sha256", None))
            return
        super()._restore()

    def reconcile(self, now: int) -> None:
        if self.following:
            return  # the writer reconciles; the standby does at takeover
        super().reconcile(now)

    def _decide(self, t: int, recv_ns: int) -> None:
        if self.following and not (self.trade_from is not None and t < self.trade_from):
            self._gate(t)
        super()._decide(t, recv_ns)
        if self.following:
            self.followed += 1
            self.followed_to = t

    def _gate(self, t: int) -> None:
        """Wait until the writer journaled decision ``t`` (then it is followed silently) or its
        lease expired (then take over before deciding ``t``)."""
        j = self._journal_rw
        while True:
            last = j.last_decision_t()
            if last is not None and last >= t:
                self.resume_after = last
                return
            if self.keeper.try_acquire() is not None:
                self._take_over(t)
                return
            if self.stop_event is not None and self.stop_event.is_set():
                raise _StopFollowing
            time.sleep(self.poll_s)

    def _take_over(self, t_next: int | None) -> None:
        """Holding the lease: load the journal like a restart, reconcile, go on deciding."""
        self.following = False
        self.journal = self._journal_rw
        self._open.clear()
        self.pend_q = [0.0] * self.n
        self.resume_after = None
        super()._restore()
        if self.overlay is not None:  # the option position as the writer left it, on the writable journal,
            followed = self.overlay  # with the inputs the standby saw (a step not journaled is re-run on them)
            self.overlay = self._build_overlay(followed.venue)
            self.overlay.carry_inputs(followed)
        for k, p in enumerate(self.raw_px):  # the rebuilt mirror, marked at the followed prices
            if p == p:
                self.account.mark(k, p)
        self._venue_fresh = self.resume_after is not None and bool(getattr(self.exchange, "is_fresh", False))
        self._silent = False
        warm = bool(self.stream.is_warm)
        last = self.resume_after
        self.took_over_at = t_next if t_next is not None else last
        detail = {"holder": self.keeper.holder, "followed_decisions": self.followed,
                  "followed_to": self.followed_to, "last_journaled": last, "features_warm": warm}
        self.journal.record_event("standby_takeover", detail, t_next)
        log.info("took over as standby %s: followed %d decisions (to %s); last journaled decision %s; features %s",
                 self.keeper.holder, self.followed, iso(self.followed_to) if self.followed_to else None,
                 iso(last) if last else None, "warm" if warm else "NOT warm yet",
                 extra={"event": "standby_takeover", **detail})
        if self.on_takeover is not None:
            self.on_takeover()
        if not warm:
            log.warning("standby took over before its features were warm (it followed the feed for %d decisions): "
                        "decisions hold (action warmup) until they are", self.followed)
        if last is not None and (t_next is None or last < t_next):
            # the standby's mirror and market stand at the last journaled decision, as a restart's do
            self.reconcile(last)

    # -- run / stop --------------------------------------------------------------------------------
    def run(self, feed: Iterable[Any], *, max_events: int | None = None, max_decisions: int | None = None) -> LoopSummary:
        try:
            s = super().run(feed, max_events=max_events, max_decisions=max_decisions)
        except _StopFollowing:
            self.summary.stopped = str(getattr(self.stop_event, "reason", "stop requested")) + " (standby, following)"
            log.info("standby stopped while following: %s", self.summary.stopped)
            return self._finish(time.perf_counter())
        cut = (max_events is not None and s.events >= max_events) or (
            max_decisions is not None and s.decisions >= max_decisions)
        if self.following and s.stopped is None and not cut:
            # the feed ended before the writer stopped: take over once it is gone, then reconcile
            stop = (lambda: self.stop_event is not None and self.stop_event.is_set())
            if self.keeper.wait(poll_s=self.poll_s, stop=stop) is None:
                s.stopped = str(getattr(self.stop_event, "reason", "stop requested")) + " (standby, following)"
                return s
            self._take_over(None)
            s = self._finish(time.perf_counter())
        return s

    def shutdown(self, reason: str) -> None:
        if self.following:  # the standby holds no orders and writes nothing
            self.summary.stopped = reason + " (standby, following)"
            log.info("standby stopped while following: %s", reason)
            return
        super().shutdown(reason)


__all__ = ["StandbyLoop"]
