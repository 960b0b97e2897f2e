"""Hot standby: wait on a journal whose writer lease another ``dea serve`` holds, take over when
it expires.

Why a lease and not a pid file: the primary may die without cleaning up (kill -9, power loss,
a host that vanished), and may also *stall* (a GC pause, a frozen VM) and come back. The lease
in the journal (holder, epoch, heartbeat, expiry; :meth:`serving.journal.Journal.acquire_lease`)
expires on its own when the heartbeats stop, is taken atomically by exactly one standby, and its
epoch fences the old primary: once a standby took over, every journal write of the old holder
fails, so it can no longer record (nor then send) an order.

On take-over the standby continues with the restart protocol (:mod:`serving.loop`): account from
the ledger, risk state, silent replay to the last journaled decision, reconciliation of open
orders with the venue by client id (re-sent only if the venue never saw them, and only when
young enough and still allowed by the risk engine), positions checked against the venue. Client
ids are deterministic and venues idempotent on them, so no order is sent twice.
"""

from __future__ import annotations

import logging
import threading
import time

from serving.journal import Journal, Lease, LeaseError

log = logging.getLogger("dea.serving.standby")


def wait_for_lease(
    journal: Journal,
    holder: str,
    ttl_ns: int,
    *,
    poll_s: float | None = None,
    stop: threading.Event | None = None,
    timeout_s: float | None = None,
) -> Lease | None:
    """Follow the journal until its lease can be taken; returns it (None if stopped/timed out).

    While it waits it logs who holds the lease and how far the primary got (the journal's last
    decision), so an operator sees the standby is alive and following."""
    poll = poll_s if poll_s is not None else max(0.01, min(1.0, ttl_ns / 4e9))
    t_end = None if timeout_s is None else time.monotonic() + timeout_s
    next_log = 0.0
    while True:
        try:
            lease = journal.acquire_lease(holder, ttl_ns)
        except LeaseError:
            lease = None
        if lease is not None:
            log.info("standby %s took over the journal %s (epoch %d, last decision %s)", holder, journal.path,
                     lease.epoch, journal.last_decision_t())
            journal.record_event("takeover", {"holder": holder, "epoch": lease.epoch,
                                              "last_decision": journal.last_decision_t()})
            return lease
        now = time.monotonic()
        if now >= next_log:  # show that the standby is alive and following
            held = journal.lease()
            log.info("standby: %s holds the journal (lease until %s), last decision %s",
                     held.holder if held else "?", held.expires_ns if held else "?", journal.last_decision_t())
            next_log = now + 30.0
        if (stop is not None and stop.wait(poll)) or (t_end is not None and time.monotonic() >= t_end):
            return None
        if stop is None:
            time.sleep(poll)


__all__ = ["wait_for_lease"]
