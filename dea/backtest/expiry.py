"""Dated futures in the backtest: settlement at expiry, the roll rule, and basis.

Why on the targets: a dated future stops existing at its expiry, so no policy target can hold it
past then. :func:`apply_expiry` rewrites the target matrix before the risk rules and the kernel
see it (both engines call it through :func:`dea.backtest.vectorized.backtest`):

- from the roll instant ``expiry - roll_before`` on, the future's target is 0: the position is
  closed at the price of that decision, which for ``roll_before: 0s`` on a clock that lands on the
  expiry is the settlement price (when the series has no price at or after that instant, the
  close happens at the last decision before it that has one, the last mark before settlement);
- with ``roll_to: SYMBOL`` the future's exposure moves onto that instrument at the same decision
  (added to its own target), which keeps the exposure continuous across expiries: chain the
  quarterly contracts, or roll the last one into the perpetual.

NaN targets (hold) are resolved to the last finite target first, as the kernel would hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dea.errors import ConfigError
from dea.instruments import Instrument


def _ffill(col: np.ndarray) -> np.ndarray:
    """Forward-fill NaN (hold) targets with the last finite one (0 before the first)."""
    out = col.copy()
    last = 0.0
    for r in range(len(out)):
        if out[r] == out[r]:
            last = out[r]
        else:
            out[r] = last
    return out


def settlement_rows(clock: np.ndarray, price: np.ndarray, instruments: Sequence[Instrument]) -> dict[int, int]:
    """Instrument index -> clock row at which each dated future is closed (see module doc);
    futures whose roll instant is after the clock are absent."""
    rows: dict[int, int] = {}
    for i, inst in enumerate(instruments):
        t = inst.roll_ns
        if t is None or inst.kind != "future":
            continue
        r = int(np.searchsorted(clock, t, side="left"))
        if r >= len(clock):
            continue
        priced = np.flatnonzero(np.isfinite(price[:, i]) & (price[:, i] > 0))
        after = priced[priced >= r]
        before = priced[priced < r]
        if len(after) and (after[0] == r or not len(before)):
            rows[i] = int(after[0])
        elif len(before):
            rows[i] = int(before[-1])
        else:
            raise ConfigError(f"future {inst.symbol!r} expires at {inst.expiry} but its price series has no value")
    return rows


def apply_expiry(targets: np.ndarray, clock: np.ndarray, instruments: Sequence[Instrument],
                 price: np.ndarray | None = None) -> np.ndarray:
    """``targets`` [T, N] with every dated future closed from its settlement row on and its
    exposure moved to ``roll_to`` (a new array; the input is returned unchanged when no future
    settles inside the clock)."""
    if not any(i.kind == "future" for i in instruments):
        return targets
    symbols = [i.symbol for i in instruments]
    px = np.ones_like(targets) if price is None else np.asarray(price, dtype=np.float64)
    rows = settlement_rows(clock, px, instruments)
    if not rows:
        return targets
    out = np.array(targets, dtype=np.float64, copy=True)
    # settle in expiry order so a chain F1 -> F2 -> PERP carries F1's exposure all the way
    for i in sorted(rows, key=lambda k: (instruments[k].roll_ns, k)):
        inst = instruments[i]
        r = rows[i]
        held = _ffill(out[:, i])
        if inst.roll_to is not None:
            if inst.roll_to not in symbols:
                raise ConfigError(f"future {inst.symbol!r} rolls to {inst.roll_to!r}, which is not an instrument {symbols}")
            j = symbols.index(inst.roll_to)
            dest = _ffill(out[:, j])
            dest[r:] += held[r:]
            out[r:, j] = dest[r:]
        out[r:, i] = 0.0
    return out


def basis(future_px: np.ndarray, index_px: np.ndarray, t_ns: np.ndarray, expiry_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(basis, annualised basis) of a dated future to its perpetual or index: ``F / S - 1`` and
    that divided by the time to expiry in years (NaN at or after expiry, where it is undefined)."""
    from dea.timeutil import NS_PER_YEAR

    f = np.asarray(future_px, dtype=np.float64)
    s = np.asarray(index_px, dtype=np.float64)
    b = f / s - 1.0
    tau = (expiry_ns - np.asarray(t_ns, dtype=np.float64)) / NS_PER_YEAR
    ann = np.where(tau > 0, b / np.where(tau > 0, tau, 1.0), np.nan)
    return b, ann
