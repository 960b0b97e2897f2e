"""Binance depth-diff sequencing rules, written once.

Why here and plain: the streaming :class:`~dea.book.l2.SyncedBook` (live) calls these functions
directly, and the batch sequencer (:mod:`dea.book.capture`) compiles the *same* functions with
numba, so the live and replay paths cannot disagree on what a gap is.

Rules (Binance "how to manage a local order book correctly"), with ``L`` the snapshot's
``lastUpdateId`` and each diff covering update ids ``U..u``:

- futures (USDT-M and COIN-M; diffs carry ``pu``): drop diffs with ``u < L``; the first applied
  diff must satisfy ``U <= L <= u``; afterwards each diff's ``pu`` must equal the previous ``u``.
- spot (no ``pu``): drop diffs with ``u <= L``; the first applied diff must satisfy
  ``U <= L + 1 <= u``; afterwards each diff's ``U`` must equal the previous ``u + 1``.

The real captures satisfy exactly these: ``usdm_ethusdt_20240808`` has a first diff with
``u == L`` (only the futures rule accepts it), ``spot_ethusdt_20240808`` one with ``U == L + 1``
(only the spot rule accepts it).
"""

from __future__ import annotations

FUTURES = 0
SPOT = 1


def market_mode(prev_final_update_id: int) -> int:
    """Sequencing mode of a diff stream from its first diff: futures diffs carry ``pu`` (>= 0)."""
    return FUTURES if prev_final_update_id >= 0 else SPOT


def is_stale(mode: int, last_update_id: int, u: int) -> bool:
    """A diff entirely covered by the snapshot: drop it."""
    if mode == FUTURES:
        return u < last_update_id
    return u <= last_update_id


def bridges_snapshot(mode: int, last_update_id: int, first_id: int, u: int) -> bool:
    """The first diff applied after a snapshot must straddle it."""
    if mode == FUTURES:
        return first_id <= last_update_id and u >= last_update_id
    return first_id <= last_update_id + 1 and u >= last_update_id + 1


def follows(mode: int, prev_u: int, first_id: int, pu: int) -> bool:
    """A diff continues the previous applied diff with no missing update."""
    if mode == FUTURES:
        return pu == prev_u
    return first_id == prev_u + 1
