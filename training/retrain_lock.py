"""A run lock for scheduled jobs: two ``dea retrain`` runs never overlap.

Mechanism: an advisory ``flock`` on a lock file, held for the whole run. The kernel releases a
``flock`` when its holder dies, however it dies (SIGKILL, OOM, power loss of a container), so a
crashed run can never wedge the schedule, and a recycled pid can never be mistaken for a live
holder. The file's content (pid, host, start time, command) is for people and for the record:
when a new run acquires a lock whose file still names a previous holder, that holder died
without cleaning up — the lock was stale — and the run says so before overwriting it.

Release truncates and unlinks the file while still holding the lock; an acquirer that waited on
the old inode notices (the path no longer names the inode it locked) and retries on the new one,
so exactly one process at a time holds the lock that the path names.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from dea.errors import DeaError
from dea.timeutil import NS_PER_S, iso

log = logging.getLogger(__name__)


class LockHeldError(DeaError):
    """Another live process holds the lock."""


@dataclass(frozen=True)
class LockInfo:
    pid: int
    host: str
    started_ns: int
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {iso(self.started_ns)} ({self.command})"

    @classmethod
    def parse(cls, text: str) -> "LockInfo | None":
        try:
            d = json.loads(text)
            return cls(int(d["pid"]), str(d["host"]), int(d["started_ns"]), str(d.get("command", "")))
        except (ValueError, KeyError, TypeError):
            return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists on this host (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(path): ...`` — raises :class:`LockHeldError` naming the holder if taken.

    ``stale_note_after_s``: a live holder older than this is reported as possibly hung (it is
    never broken: a slow run is not a dead one). ``stale_cleared`` tells, after acquiring,
    which dead holder's lock was found and replaced.
    """

    def __init__(self, path: str | Path, *, stale_note_after_s: float = 12 * 3600) -> None:
        self.path = Path(path)
        self.stale_note_after_s = stale_note_after_s
        self._fd: int | None = None
        self.stale_cleared: LockInfo | None = None
        self.info: LockInfo | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = LockInfo.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                os.close(fd)
                raise LockHeldError(self._held_message(holder)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder released (unlinked) between our open and our lock: retry
                os.close(fd)
                continue
            previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            if previous:
                self.stale_cleared = LockInfo.parse(previous) or LockInfo(-1, "?", 0, previous[:200])
                log.warning("cleared a stale lock %s: its holder %s died without releasing it", self.path, self.stale_cleared.describe())
            self.info = LockInfo(os.getpid(), socket.gethostname(), time.time_ns(), " ".join(sys.argv)[:300])
            payload = json.dumps(self.info.__dict__).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise LockHeldError(f"{self.path}: could not acquire the lock (the file kept being replaced)")

    def _held_message(self, holder: LockInfo | None) -> str:
        if holder is None:
            return f"{self.path} is locked by another process (no holder details in the file)"
        age_s = (time.time_ns() - holder.started_ns) / NS_PER_S
        msg = f"{self.path} is held by {holder.describe()}, for {age_s:.0f}s"
        if age_s > self.stale_note_after_s:
            msg += f"; that is longer than {self.stale_note_after_s:.0f}s: the run may be hung, check it"
        return msg

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
