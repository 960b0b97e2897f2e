"""Swap models without stopping the loop, and never into a broken one.

Loading a model (download, session creation, metadata check, smoke test) takes milliseconds to
seconds; a decision takes microseconds. So a replacement is loaded and verified in a background
thread and only *published*; the loop adopts it between two decisions with one reference swap
(:meth:`ModelSlot.swap_if_ready`, one attribute read when nothing is pending). A load that fails
leaves the current model in place and records why (``last_error``, ``failures``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dea.errors import DeaError
from serving.runner import PolicyRunner

log = logging.getLogger("dea.serving.hotswap")

Loader = Callable[[str], PolicyRunner]


@dataclass(frozen=True)
class SwapOutcome:
    source: str
    ok: bool
    version: str | None
    error: str | None
    seconds: float


class ModelSlot:
    """The active :class:`PolicyRunner` plus at most one verified replacement waiting to go live."""

    def __init__(self, runner: PolicyRunner, loader: Loader) -> None:
        self.current = runner
        self._loader = loader
        self._pending: PolicyRunner | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.swaps = 0
        self.failures = 0
        self.last_error: str | None = None
        self.outcomes: list[SwapOutcome] = []

    def request(self, source: str, *, wait: bool = False) -> threading.Thread:
        """Load and verify ``source`` in the background; it goes live at the next swap point."""
        thread = threading.Thread(target=self._load, args=(source,), name=f"dea-load:{source}", daemon=True)
        with self._lock:
            self._thread = thread
        thread.start()
        if wait:
            thread.join()
        return thread

    def _load(self, source: str) -> None:
        t0 = time.perf_counter()
        try:
            runner = self._loader(source)
        except DeaError as exc:
            self._failed(source, str(exc), t0)
            return
        except Exception as exc:  # a loader bug must not kill the loop either
            self._failed(source, f"{type(exc).__name__}: {exc}", t0)
            return
        with self._lock:
            self._pending = runner
            self.outcomes.append(SwapOutcome(source, True, runner.version, None, time.perf_counter() - t0))
        log.info("model %s (version %s) loaded and verified; swapping at the next decision", source, runner.version)

    def _failed(self, source: str, error: str, t0: float) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = error
            self.outcomes.append(SwapOutcome(source, False, None, error, time.perf_counter() - t0))
        log.error("model swap to %s refused, keeping %s: %s", source, self.current.version, error)

    def swap_if_ready(self) -> PolicyRunner | None:
        """Adopt the pending runner, if any (call between decisions). Returns the new runner."""
        if self._pending is None:
            return None
        with self._lock:
            runner, self._pending = self._pending, None
        if runner is None:  # pragma: no cover - raced with another swapper
            return None
        self.current = runner
        self.swaps += 1
        return runner

    def join(self, timeout: float | None = None) -> None:
        """Wait for an in-flight load (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


class ModelWatcher:
    """Polls a source for a new version and asks the slot to load it.

    ``probe()`` returns a token identifying what the source points at now (a registry version
    for ``models:/NAME@champion``, a file's mtime+size for a path); when it changes, the slot
    loads ``resolve(token)``. Probe errors are logged and retried at the next poll.
    """

    def __init__(
        self,
        slot: ModelSlot,
        probe: Callable[[], str],
        resolve: Callable[[str], str],
        *,
        interval_s: float = 30.0,
        initial: str | None = None,
    ) -> None:
        self.slot = slot
        self.probe = probe
        self.resolve = resolve
        self.interval_s = interval_s
        self.seen = initial
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.probe_errors = 0

    def poll_once(self) -> bool:
        """One poll; True when a load was requested."""
        try:
            token = self.probe()
        except Exception as exc:  # registry down: keep serving, try later
            self.probe_errors += 1
            log.warning("model watcher: probe failed: %s", exc)
            return False
        if token == self.seen:
            return False
        self.seen = token
        self.slot.request(self.resolve(token))
        return True

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.poll_once()

        self._thread = threading.Thread(target=loop, name="dea-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def registry_probe(name: str, alias: str, tracking_uri: str | None) -> Callable[[], str]:
    """Probe for :class:`ModelWatcher`: the version ``models:/NAME@ALIAS`` points at."""
    from serving.model_source import registry_version

    return lambda: registry_version(name, alias, tracking_uri=tracking_uri)


def file_probe(path: str) -> Callable[[], str]:
    """Probe for :class:`ModelWatcher`: a file's mtime and size (atomic replace changes both), and
    its manifest's: a deploy that replaces the model and its manifest one after the other is
    retried when the second lands (a model checked against the old manifest is refused)."""
    import os

    from dea.model_artifact import manifest_path

    side = manifest_path(path)

    def probe() -> str:
        st = os.stat(path)
        try:
            ms = os.stat(side)
            m = f"{ms.st_mtime_ns}:{ms.st_size}"
        except FileNotFoundError:
            m = "-"
        return f"{st.st_mtime_ns}:{st.st_size}/{m}"

    return probe
