"""The market-data guard: one verdict per price, rate and timestamp, before anything uses it.

Why one class for every path: the batch panel (:mod:`dea.guards.batch`), the event backtest
(:mod:`dea.backtest.event`) and the live loop (:mod:`serving.loop`, replay and live feeds) must
quarantine exactly the same values, or a backtest would trade on data the live loop refuses (or
the reverse). State is O(instruments x streams); each check is a few float operations in plain
Python (numpy's call overhead would dominate on the per-event path).

A *stream* is one source of one kind for one instrument (``stream`` is any hashable the caller
picks, e.g. the source index); ordering and duplicates are judged per stream, jumps per
instrument across streams (a mark price can confirm a bar's move).

Verdicts: ``None`` (accepted) or the guard name (``missing``, ``nonfinite``, ``nonpositive``,
``jump``, ``conflict``, ``duplicate``, ``out_of_order``, ``future``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from dea.guards.config import GuardsConfig
from dea.timeutil import parse_duration

GUARD_NAMES = ("missing", "nonfinite", "nonpositive", "jump", "conflict", "duplicate", "out_of_order", "future",
               "funding_missing", "equity")
SEVERITY = {"ignore": 0, "hold": 1, "derisk": 2, "halt": 3}
_NO_TS = -(2**62)


@dataclass(frozen=True, slots=True)
class GuardHit:
    """One quarantined value (what is counted, logged and journaled)."""

    guard: str
    instrument: int
    ts: int
    value: float
    action: str
    detail: str


class _Jump:
    __slots__ = ("last", "var", "nobs", "cand", "cand_av")

    def __init__(self) -> None:
        self.last = math.nan
        self.var = 0.0
        self.nobs = 0
        self.cand = math.nan
        self.cand_av = 0


class MarketGuard:
    """Per-value guard state for ``n`` instruments (see module docstring).

    ``clock()``: the local clock (int ns since the epoch) that ``future`` compares against; the
    wall clock by default (a historical replay is always in the past)."""

    def __init__(self, cfg: GuardsConfig, symbols: Sequence[str], *, clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        self.symbols = tuple(symbols)
        self.enabled = cfg.enabled
        self.clock = clock
        self.tol = parse_duration(cfg.future_tolerance)
        self.rel_tol = cfg.duplicate_rel_tol
        j = cfg.jump
        self.jump_on = j.enabled and (j.k_sigma is not None or j.max_move is not None)
        self.k = j.k_sigma
        self.min_move = j.min_move
        self.max_move = j.max_move
        self.alpha = 1.0 - 0.5 ** (1.0 / j.halflife)
        self.warmup = j.warmup
        self.window = None if j.confirm_window is None else parse_duration(j.confirm_window)
        self.actions = cfg.actions.model_dump()
        self._streams: dict[tuple[Hashable, int], list] = {}
        self._jump = [_Jump() for _ in self.symbols]
        self._horizon = 0  # cached clock() + tol: the wall clock is read at most every 10 ms
        self.counts: dict[str, int] = dict.fromkeys(GUARD_NAMES, 0)

    # -- checks ------------------------------------------------------------------------------------
    def future(self, stamp: int) -> bool:
        """True when ``stamp`` lies beyond the local clock plus the tolerance."""
        if stamp <= self._horizon:
            return False
        self._horizon = self.clock() + self.tol
        return stamp > self._horizon

    def check_price(self, stream: Hashable, j: int, ts: int, av: int, price: float, *, ordered: bool = True) -> str | None:
        """Verdict on one price of instrument ``j`` (stamped ``ts_event`` ``ts``, available ``av``).

        ``ordered=False``: a stream whose stamps may repeat or interleave (trades, book mids):
        no ordering or duplicate check."""
        if not self.enabled:
            return None
        if self.future(ts if ts > av else av):
            return self._count("future")
        if price != price:
            return self._count("missing")
        if price - price != 0.0:
            return self._count("nonfinite")
        if price <= 0.0:
            return self._count("nonpositive")
        verdict = self._order(stream, j, ts, price) if ordered else None
        if verdict is not None:
            return self._count(verdict)
        if self.jump_on and self._is_jump(j, av, price):
            return self._count("jump")
        return None

    def check_value(self, stream: Hashable, j: int, ts: int, av: int, value: float, *, allow_nan: bool = False,
                    ordered: bool = True) -> str | None:
        """Verdict on a rate or other signed value (funding rates, exogenous series): time,
        finiteness and (``ordered``) order only. ``allow_nan``: NaN means "no value" and passes."""
        if not self.enabled:
            return None
        if self.future(ts if ts > av else av):
            return self._count("future")
        if value != value:
            return None if allow_nan else self._count("missing")
        if value - value != 0.0:
            return self._count("nonfinite")
        verdict = self._order(stream, j, ts, value) if ordered else None
        return None if verdict is None else self._count(verdict)

    def _count(self, name: str) -> str:
        self.counts[name] += 1
        return name

    def _order(self, stream: Hashable, j: int, ts: int, value: float) -> str | None:
        key = (stream, j)
        st = self._streams.get(key)
        if st is None:
            self._streams[key] = [ts, value]
            return None
        last_ts, last_v = st
        if ts < last_ts:
            return "out_of_order"
        if ts == last_ts:
            return "duplicate" if abs(value - last_v) <= self.rel_tol * max(abs(last_v), 1e-300) else "conflict"
        st[0], st[1] = ts, value
        return None

    def _is_jump(self, j: int, av: int, p: float) -> bool:
        s = self._jump[j]
        last = s.last
        if last != last:
            s.last, s.nobs = p, 1
            return False
        r = math.log(p / last)
        if s.cand == s.cand:
            if self.window is not None and av - s.cand_av > self.window:
                s.cand = math.nan
            elif abs(math.log(p / s.cand)) < abs(r):  # closer to the jump: confirmed, p is the new level
                s.cand = math.nan
                self._good(s, p, r)
                return False
            else:  # back near the old level: the jump was a spike; judge p on its own
                s.cand = math.nan
        if self._beyond(s, p / last - 1.0, r):
            s.cand, s.cand_av = p, av
            return True
        self._good(s, p, r)
        return False

    def _beyond(self, s: _Jump, frac: float, r: float) -> bool:
        if self.max_move is not None and abs(frac) > self.max_move:
            return True
        if self.k is not None and s.nobs > self.warmup:
            return abs(r) > max(self.k * math.sqrt(s.var), self.min_move)
        return False

    def _good(self, s: _Jump, p: float, r: float) -> None:
        s.var += self.alpha * (r * r - s.var)
        s.nobs += 1
        s.last = p

    # -- helpers for the callers ---------------------------------------------------------------------
    def hit(self, guard: str, j: int, ts: int, value: float, what: str) -> GuardHit:
        """The record of a quarantined value (for the log, the metric and the journal)."""
        sym = self.symbols[j] if 0 <= j < len(self.symbols) else "*"
        return GuardHit(guard, j, int(ts), float(value), self.actions.get(guard, "halt"),
                        f"{what} of {sym} rejected by guard {guard!r}")


def merge_action(pending: dict[int, str], j: int, action: str) -> None:
    """Keep the most severe action per instrument until the next decision."""
    if SEVERITY[action] > SEVERITY.get(pending.get(j, "ignore"), 0):
        pending[j] = action


def apply_actions(target: list[float], current: Sequence[float], pending: dict[int, str], derisk_factor: float) -> bool:
    """Apply the pending guard actions to ``target`` in place (NaN = hold); True when one is ``halt``.

    Shared by the event backtest and the live loop, so both react to a quarantine the same way."""
    halt = False
    for j, action in pending.items():
        if action == "hold":
            target[j] = math.nan
        elif action == "derisk":
            target[j] = float(current[j]) * derisk_factor
        elif action == "halt":
            halt = True
    return halt


def finite(x: float) -> bool:
    """``math.isfinite`` for a float (no exception on anything float-like)."""
    return x - x == 0.0


__all__ = ["GUARD_NAMES", "GuardHit", "MarketGuard", "SEVERITY", "apply_actions", "finite", "merge_action"]
