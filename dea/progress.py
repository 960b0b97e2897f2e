"""Progress of long work — ingest, features, walk-forward folds, tuning trials, stress, replay.

One helper for every long loop, so a user sees the same thing everywhere: on a terminal a live bar
(tqdm, when installed) with the time left; in a log (output not a terminal, e.g. ``make demo >
demo.log``) one plain line per step, ``walk-forward: 2/4 folds (fold 1: val Sharpe 0.81), 35s
elapsed, about 35s left``, because a redrawn bar written to a file is hundreds of ``\\r`` frames.

Lines go through the ``dea.progress`` logger at INFO, so ``dea --quiet`` hides them and a library
caller decides whether to see them by configuring logging (nothing is printed when nobody asked).
The estimate is the mean time per finished step times the steps left: walk-forward folds grow, so
it errs on the short side, which the line says by "about".
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

LOGGER_NAME = "dea.progress"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short, unambiguous, no fractions a reader must parse."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {seconds!r}")
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a file, pipe or pytest capture is not)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class Progress:
    """Count finished steps of a known (or unknown) total and report each one with an estimate.

    ``with Progress("walk-forward", total=4, unit="fold") as p: ... p.advance(detail="...")``.
    ``interactive`` forces the terminal bar on or off (default: ``stream`` is a terminal and
    tqdm is installed); ``min_interval`` (seconds) thins the log lines of very many short steps
    (replay) to one per interval, the last step always reported; ``clock`` is injectable so the
    estimate can be tested without sleeping.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "step",
        stream: TextIO | None = None,
        interactive: bool | None = None,
        min_interval: float = 0.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError(f"progress total must be >= 0, got {total}")
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.min_interval = float(min_interval)
        self._log = logger or logging.getLogger(LOGGER_NAME)
        self._clock = clock
        self._start = clock()
        # with a minimum interval, a fast loop reports only its end: no line for its first step
        self._last_line = self._start if min_interval > 0 else -math.inf
        self._stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        wanted = self._log.isEnabledFor(logging.INFO)
        if interactive is None:
            interactive = wanted and is_terminal(self._stream)
        if interactive and wanted:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # serve-only installs: lines instead of a bar
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=label, unit=unit, file=self._stream, dynamic_ncols=True, leave=True)

    # ------------------------------------------------------------------------------ estimates
    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def eta_seconds(self) -> float | None:
        """Seconds left at the mean pace so far; None before the first step or without a total."""
        if self.total is None or self.done == 0:
            return None
        return self.elapsed / self.done * max(0, self.total - self.done)

    def line(self, detail: str = "") -> str:
        """The log line for the current state (what :meth:`advance` writes when not a terminal)."""
        plural = self.unit if self.unit.endswith("s") else self.unit + "s"
        count = f"{self.done}/{self.total} {plural}" if self.total is not None else f"{self.done} {plural}"
        parts = [f"{self.label}: {count}"]
        if detail:
            parts[0] += f" ({detail})"
        parts.append(f"{format_duration(self.elapsed)} elapsed")
        eta = self.eta_seconds()
        if eta is not None and self.done < (self.total or 0):
            parts.append(f"about {format_duration(eta)} left")
        return ", ".join(parts)

    # ------------------------------------------------------------------------------ stepping
    def advance(self, n: int = 1, detail: str = "") -> None:
        """Record ``n`` finished steps; report them (bar update, or one log line)."""
        if n < 0:
            raise ValueError(f"progress can only advance, got n={n}")
        self.done += n
        if self._bar is not None:
            if detail:
                self._bar.set_postfix_str(detail, refresh=False)
            self._bar.update(n)
            return
        now = self._clock()
        last = self.total is not None and self.done >= self.total
        if last or now - self._last_line >= self.min_interval:
            self._last_line = now
            self._log.info(self.line(detail))

    def note(self, message: str) -> None:
        """A line about the work that is not a step (printed above a live bar, not through it)."""
        if self._bar is not None:
            self._bar.write(message, file=self._stream)
        else:
            self._log.info(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def track(
    items: Iterable[T],
    label: str,
    *,
    total: int | None = None,
    unit: str = "step",
    detail: Callable[[T], str] | None = None,
    **kwargs: Any,
) -> Iterator[T]:
    """Yield ``items`` and report each one as finished when the loop asks for the next.

    ``total`` defaults to ``len(items)`` when it has one; ``detail(item)`` adds a short note
    (the item's name) to its line. Other keywords go to :class:`Progress`.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(label, total, unit=unit, **kwargs) as p:
        for item in items:
            yield item
            p.advance(detail=detail(item) if detail is not None else "")


__all__ = ["LOGGER_NAME", "Progress", "format_duration", "is_terminal", "track"]
