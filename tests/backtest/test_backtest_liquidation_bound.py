"""The event replay's cheap liquidation test on trade/book updates (a bound on how far the
margin headroom can have fallen since the last full check) liquidates at exactly the event the
full check does, and the one-pass account valuation equals the separate ones bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from bt_helpers import FREE, LOOSE, inst

from dea.backtest.event import EventBacktester, PolicyOutput, TradeEvent
from dea.execution.account import Account
from dea.timeutil import NS_PER_S


class _Counting(EventBacktester):
    """The replay under test, counting its full checks."""

    full_checks = 0

    def _check_liquidation(self, ts: int) -> None:
        self.full_checks += 1
        super()._check_liquidation(ts)


class _FullCheck(EventBacktester):
    """The reference: the full liquidation check on every price move."""

    def check_liquidation_after_move(self, ts: int, index: int, old_price: float) -> None:
        self._check_liquidation(ts)


def _trades(seed: int, n: int, drift: float):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    px = [100.0, 50.0]
    out = []
    for k in range(n):
        i = k % 2
        px[i] *= float(np.exp(drift + 2e-3 * rng.standard_normal()))
        out.append(TradeEvent((k + 1) * NS_PER_S, i, px[i], 1.0))
    return out


def _run(cls, events, leverage):  # noqa: ANN001, ANN202
    insts = [inst("A", maintenance_margin=0.05), inst("B", maintenance_margin=0.02)]

    def policy(ctx):  # noqa: ANN001, ANN202 - levered long A, short B, re-levered at every decision
        return PolicyOutput(np.array([leverage, -leverage / 2]))

    bt = cls(insts, FREE, LOOSE, policy)
    decisions = [k * 200 * NS_PER_S + NS_PER_S // 2 for k in range(len(events) // 200)]
    return bt, bt.run(iter(events), decisions)


@pytest.mark.parametrize(("seed", "drift", "leverage"), [(0, -1e-3, 8.0), (1, -5e-4, 12.0), (2, 0.0, 15.0),
                                                         (3, 3e-4, 10.0)])
def test_cheap_liquidation_check_liquidates_where_the_full_check_does(seed: int, drift: float, leverage: float):
    events = _trades(seed, 3000, drift)
    fast, a = _run(_Counting, events, leverage)
    full, b = _run(_FullCheck, events, leverage)
    assert [(e.t_ns, e.kind, e.equity, e.margin) for e in a.events] == [(e.t_ns, e.kind, e.equity, e.margin)
                                                                       for e in b.events]
    np.testing.assert_array_equal(a.equity, b.equity)
    assert fast.account.cash == full.account.cash and fast.account.qty == full.account.qty
    if seed in (0, 1, 2):  # these paths really liquidate, between two decisions
        assert a.events and a.events[0].kind == "liquidation" and a.events[0].t_ns % NS_PER_S == 0
    assert fast.full_checks < len(events) // 2  # most updates took the cheap test


def test_margin_state_equals_the_separate_valuations():
    rng = np.random.default_rng(4)
    acc = Account(5, 1e6)
    mm = rng.uniform(0, 0.1, 5).tolist()
    for _ in range(200):
        acc.qty = (rng.normal(0, 1e3, 5) * (rng.random(5) > 0.3)).tolist()
        acc.price = rng.uniform(1, 1e4, 5).tolist()
        acc.cash = float(rng.normal(0, 1e7))
        e, m, gross = acc.margin_state(mm)
        assert (e, m, gross) == (acc.equity(), acc.maintenance_margin(mm), acc.gross_notional())
