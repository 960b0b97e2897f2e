"""One writer per journal: a lease with a heartbeat, and a standby that waits for it.

Why: two processes trading one account from one journal would each send what the other already
sent. The lease (holder, epoch, heartbeat, expiry; a row in the journal, taken atomically in an
IMMEDIATE transaction) is renewed by a heartbeat thread and by every decision (the decision's
transaction is fenced on it, see :meth:`serving.journal.Journal._tx`), so a writer that lost it
cannot journal -- and therefore cannot send -- another order. A standby (``dea serve --standby``)
polls until the lease expires, takes it (bumping the epoch) and then starts like a restart: the
journal is loaded, the venue reconciled by client id, and trading goes on with no order sent twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from dea.errors import JournalError
from serving.journal import Journal, Lease, LeaseHeldError

log = logging.getLogger("dea.serving.lease")


def holder_id() -> str:
    """This process, for the lease row and the logs: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class LeaseKeeper:
    """Holds a journal's lease: renews it every ``ttl/3`` from a thread; ``lost`` says why not."""

    def __init__(self, journal: Journal, ttl_ns: int, holder: str | None = None) -> None:
        self.journal = journal
        self.ttl_ns = int(ttl_ns)
        self.holder = holder or holder_id()
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> Lease:
        """Take the lease now or raise :class:`LeaseHeldError` (a live writer holds it)."""
        lease = self.journal.acquire_lease(self.holder, self.ttl_ns)
        self._start()
        return lease

    def try_acquire(self) -> Lease | None:
        """Take the lease if it is free or expired (a following standby's check); None otherwise.

        Reads first: only an expired or free lease costs a write transaction, so a standby that
        checks at every decision does not contend with the writer."""
        cur = self.journal.lease()
        if cur is not None and cur.holder != self.holder and cur.expires_ns >= time.time_ns():
            return None
        got = self.journal.try_acquire_lease(self.holder, self.ttl_ns)
        if got is not None:
            log.info("standby %s took over the journal %s (epoch %d)", self.holder, self.journal.path, got.epoch)
            self._start()
        return got

    def wait(self, *, poll_s: float | None = None, stop: Callable[[], bool] | None = None,
             on_wait: Callable[[Lease | None], None] | None = None) -> Lease | None:
        """Standby: poll until the lease is free or expired, then take it (None if ``stop()``)."""
        poll = poll_s if poll_s is not None else max(0.05, self.ttl_ns / 3e9)
        logged = False
        while True:
            got = self.journal.try_acquire_lease(self.holder, self.ttl_ns)
            if got is not None:
                log.info("standby %s took over the journal %s (epoch %d)", self.holder, self.journal.path, got.epoch)
                self._start()
                return got
            if not logged:
                cur = self.journal.lease()
                log.info("standby %s: journal %s is held by %s; following until its lease expires", self.holder,
                         self.journal.path, cur.holder if cur else "?")
                logged = True
            if on_wait is not None:
                on_wait(self.journal.lease())
            if stop is not None and stop():
                return None
            time.sleep(poll)

    def _start(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.ttl_ns / 3e9):
                try:
                    self.journal.renew_lease()
                except LeaseHeldError as exc:
                    self.lost = str(exc)
                    return
                except JournalError as exc:  # pragma: no cover - a broken journal stops the loop too
                    self.lost = str(exc)
                    return
                except Exception as exc:  # sqlite busy beyond its timeout: try again next beat
                    log.warning("lease heartbeat failed: %s", exc)

        self._thread = threading.Thread(target=beat, name="dea-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lost is None:
            try:
                self.journal.release_lease()
            except JournalError as exc:  # pragma: no cover
                log.warning("lease release failed: %s", exc)
