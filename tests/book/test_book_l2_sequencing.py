"""Hand-checkable tests of the sequencing rules, the streaming L2 book and SyncedBook, and the
agreement of the batch (numba) sequencer with the streaming one."""

from __future__ import annotations

import numpy as np
import pytest

from dea.book import sequencing as seq
from dea.book.capture import EV_DIFF, EV_GAP, EV_SNAPSHOT, sequence_book
from dea.book.events import DepthDiff, DepthSnapshot
from dea.book.l2 import ASK, BID, L2Book, SyncedBook
from dea.book.scan import K_DIFF, K_SNAPSHOT


def test_futures_and_spot_rules() -> None:
    F, S = seq.FUTURES, seq.SPOT
    # stale: futures drop u < L, spot drop u <= L
    assert seq.is_stale(F, 100, 99) and not seq.is_stale(F, 100, 100)
    assert seq.is_stale(S, 100, 100) and not seq.is_stale(S, 100, 101)
    # first diff straddles: futures U <= L <= u, spot U <= L+1 <= u
    assert seq.bridges_snapshot(F, 100, 95, 100) and not seq.bridges_snapshot(S, 100, 95, 100)
    assert seq.bridges_snapshot(S, 100, 101, 105) and not seq.bridges_snapshot(F, 100, 101, 105)
    # continuation: futures pu == prev u, spot U == prev u + 1
    assert seq.follows(F, 200, 250, 200) and not seq.follows(F, 200, 201, 199)
    assert seq.follows(S, 200, 201, -1) and not seq.follows(S, 200, 202, -1)
    assert seq.market_mode(5) == F and seq.market_mode(-1) == S


def test_l2book_updates_touch_levels_and_depth() -> None:
    b = L2Book()
    b.load([(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)], [(101.0, 1.5), (102.0, 2.5), (0.5, 0.0)])
    assert b.best_bid() == (100.0, 1.0) and b.best_ask() == (101.0, 1.5)
    b.apply([(100.0, 0.0), (99.5, 4.0)], [(101.0, 0.0), (103.0, 1.0)])
    assert b.best_bid() == (99.5, 4.0) and b.best_ask() == (102.0, 2.5)
    assert b.levels(BID, 2) == [(99.5, 4.0), (99.0, 2.0)]
    assert b.levels(ASK, 5) == [(102.0, 2.5), (103.0, 1.0)]
    assert b.level_units(BID, 1) == [400_000_000]
    # mid 100.75; 100 bps band: bids >= 99.7425 (none), asks <= 101.7575 (none)
    assert b.depth_within_bps(100.0) == (0.0, 0.0)
    # 300 bps band: bids >= 97.7275 (99.5, 99, 98), asks <= 103.7725 (102, 103)
    assert b.depth_within_bps(300.0) == (9.0, 3.5)
    b.apply([(42.0, 0.0)], [])  # deleting an absent level is a no-op
    assert len(b) == 5 and b.n_bids == 3 and b.n_asks == 2


def _snap(t: int, last: int, bid: float = 100.0, ask: float = 101.0) -> DepthSnapshot:
    return DepthSnapshot(t, t, last, ((bid, 1.0),), ((ask, 1.0),))


def _diff(t: int, U: int, u: int, pu: int, bids=(), asks=()) -> DepthDiff:
    return DepthDiff(t, t, "X", U, u, pu, tuple(bids), tuple(asks))


def test_synced_book_buffers_drops_stale_and_resyncs_after_a_gap() -> None:
    sb = SyncedBook()
    seen: list[tuple[str, int]] = []

    def cb(ev, t):
        seen.append(("gap" if ev is None else type(ev).__name__, t))

    sb.feed(_diff(1, 90, 95, 89), cb)  # before any snapshot: buffered
    sb.feed(_diff(2, 96, 105, 95, bids=[(100.5, 2.0)]), cb)  # buffered; straddles L=100
    assert sb.needs_snapshot and not seen
    sb.feed(_snap(3, 100), cb)  # applies the snapshot, drops the stale diff, applies the other at t=3
    assert seen == [("DepthSnapshot", 3), ("DepthDiff", 3)]
    assert sb.stale_dropped == 1 and sb.valid and sb.book.best_bid() == (100.5, 2.0)
    sb.feed(_diff(4, 106, 110, 105), cb)
    assert sb.last_update_id == 110
    sb.feed(_diff(5, 120, 125, 115), cb)  # pu 115 != 110: gap
    assert sb.gaps == 1 and not sb.valid and sb.needs_snapshot and seen[-1] == ("gap", 5)
    assert "continue update id 110" in sb.last_gap
    sb.feed(_diff(6, 126, 130, 125), cb)  # buffered while waiting
    sb.feed(_snap(7, 127, bid=99.0), cb)  # resync: diff 120-125 stale, 126-130 straddles 127
    assert sb.resyncs == 1 and sb.valid and sb.last_update_id == 130
    assert seen[-2:] == [("DepthSnapshot", 7), ("DepthDiff", 7)]


def test_spot_rule_in_synced_book() -> None:
    sb = SyncedBook()
    sb.feed(_snap(1, 100))
    sb.feed(_diff(2, 101, 103, -1))
    sb.feed(_diff(3, 104, 104, -1))
    assert sb.mode == seq.SPOT and sb.valid and sb.gaps == 0
    sb.feed(_diff(4, 106, 107, -1))  # 105 missing
    assert sb.gaps == 1 and not sb.valid


@pytest.mark.parametrize("mode", [seq.FUTURES, seq.SPOT])
def test_batch_sequencer_agrees_with_synced_book(mode: int) -> None:
    """Random streams with gaps and resyncs: the numba sequencer emits exactly the events the
    streaming SyncedBook applies (kind, message, time), or both refuse the same gap."""
    rng = np.random.default_rng(3 + mode)
    outcomes = {"refused": 0, "resynced": 0, "clean": 0}
    for trial in range(60):
        msgs: list[DepthSnapshot | DepthDiff] = []
        u = 1000
        t = 0
        for _ in range(rng.integers(5, 40)):
            t += 1
            if rng.random() < 0.12:
                msgs.append(_snap(t, u - int(rng.integers(0, 3))))
                continue
            step = int(rng.integers(1, 4))
            hole = int(rng.random() < 0.1)
            U = u + 1 + hole
            new_u = U + step
            msgs.append(_diff(t, U, new_u, u if mode == seq.FUTURES else -1))
            u = new_u
        kind = np.array([K_SNAPSHOT if isinstance(m, DepthSnapshot) else K_DIFF for m in msgs], np.int8)
        recv = np.array([m.available_at for m in msgs], np.int64)
        U = np.array([0 if isinstance(m, DepthSnapshot) else m.first_update_id for m in msgs], np.int64)
        uu = np.array([m.last_update_id if isinstance(m, DepthSnapshot) else m.final_update_id for m in msgs], np.int64)
        pu = np.array([-1 if isinstance(m, DepthSnapshot) else m.prev_final_update_id for m in msgs], np.int64)
        r = sequence_book(kind, recv, U, uu, pu, mode)
        ev_kind, ev_msg, ev_time, _, n_ev, gaps, resyncs, stale, err_msg, _, _ = r

        sb = SyncedBook(mode)
        got: list[tuple[int, int, int]] = []
        index = {id(m): i for i, m in enumerate(msgs)}
        fail_at = None
        for i, m in enumerate(msgs):
            before = sb.gaps
            sb.feed(m, lambda ev, tt, i=i: got.append((EV_GAP if ev is None else EV_SNAPSHOT if isinstance(ev, DepthSnapshot) else EV_DIFF, i if ev is None else index[id(ev)], tt)))
            later_snapshot = any(isinstance(x, DepthSnapshot) for x in msgs[i + 1 :])
            if sb.gaps > before and not later_snapshot:
                fail_at = i
                break
        if fail_at is not None:
            assert err_msg >= 0, trial
            outcomes["refused"] += 1
            continue
        assert err_msg < 0, trial
        # gap events carry the failing diff's index in both
        want = [(int(k), int(m), int(tt)) for k, m, tt in zip(ev_kind[:n_ev], ev_msg[:n_ev], ev_time[:n_ev])]
        got_fixed = [(k, m, tt) for k, m, tt in got]
        assert [(k, tt) for k, _, tt in want] == [(k, tt) for k, _, tt in got_fixed], trial
        assert [m for k, m, _ in want if k != EV_GAP] == [m for k, m, _ in got_fixed if k != EV_GAP], trial
        assert (gaps, resyncs, stale) == (sb.gaps, sb.resyncs, sb.stale_dropped), trial
        outcomes["resynced" if resyncs else "clean"] += 1
    assert min(outcomes.values()) >= 3, outcomes  # every path was exercised
