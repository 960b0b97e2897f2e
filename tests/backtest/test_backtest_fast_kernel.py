"""The zero-latency fast kernel (``kernel="auto"``) equals the general kernel (``kernel="general"``)
bit for bit, field by field: every risk rule, lots and minimum notional, funding, impact, holds, a
liquidation, instrument counts on both sides of a vector width; its in-kernel target check raises
what the general path raises; its branch-free order sizing equals the live loop's."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from bt_helpers import random_panel
from test_backtest_modes import COSTS, RISK_ALL, _inputs

from dea.backtest._kernel_fast import _order_candidate
from dea.backtest.market import prepare_market
from dea.backtest.vectorized import backtest
from dea.errors import DataError
from dea.execution.orders import order_quantity
from dea.risk.config import RiskConfig


def _assert_identical(a, b):  # noqa: ANN001
    for f in ("equity", "returns", "gross_returns", "turnover", "exposures", "margin_use", "intervention_mask",
              "instrument_pnl", "traded_notional"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for k in a.costs:
        np.testing.assert_array_equal(a.costs[k], b.costs[k], err_msg=k)
        np.testing.assert_array_equal(a.instrument_costs[k], b.instrument_costs[k], err_msg=k)
    assert a.interventions == b.interventions
    assert [(e.kind, e.index, e.equity) for e in a.events] == [(e.kind, e.index, e.equity) for e in b.events]


@pytest.mark.parametrize("n", [1, 3, 9])
def test_fast_kernel_equals_general_kernel_bit_for_bit(n: int):
    panel, insts = random_panel(500, n, seed=n)
    targets, age, disp = _inputs(500, n, seed=n + 1)
    m = prepare_market(panel, insts, COSTS)
    kw = dict(costs=COSTS, risk=RISK_ALL, feature_age_ns=age, dispersion=disp, hold_nan=True)
    a = backtest(m, targets, kernel="auto", **kw)
    b = backtest(m, targets, kernel="general", **kw)
    _assert_identical(a, b)
    assert sum(a.interventions.values()) > 0 and a.instrument_costs["impact"].all()


def test_fast_kernel_equals_general_through_liquidation_and_bankruptcy():
    panel, insts = random_panel(200, 2, seed=5)
    price = panel.fields["price"].copy()
    price[120:, 0] *= 0.7  # a 30% gap down on a 4x levered long: liquidation, then bankruptcy
    fields = {**panel.fields, "price": price, "close": price}
    panel = type(panel)(clock=panel.clock, step_ns=panel.step_ns, instruments=panel.instruments, fields=fields)
    targets = np.full((200, 2), np.nan)
    targets[0] = [4.0, 0.0]
    risk = RiskConfig(max_exposure=10.0, max_gross=10.0, max_net=10.0, max_leverage=10.0, drawdown={"enabled": False})
    m = prepare_market(panel, insts, COSTS)
    a = backtest(m, targets, costs=COSTS, risk=risk, hold_nan=True, kernel="auto")
    b = backtest(m, targets, costs=COSTS, risk=risk, hold_nan=True, kernel="general")
    assert [(e.kind, e.index) for e in a.events] == [("liquidation", 120), ("bankrupt", 120)]
    _assert_identical(a, b)


@pytest.mark.parametrize(("bad", "hold_nan", "match"), [(np.nan, False, "must be finite"),
                                                         (np.inf, True, "must not be infinite")])
def test_fast_kernel_rejects_bad_targets_naming_the_first(bad: float, hold_nan: bool, match: str):
    panel, insts = random_panel(50, 3, seed=2)
    m = prepare_market(panel, insts, COSTS)
    targets = np.full((50, 3), 0.1)
    targets[49, 2] = bad  # the last row: read from the padded tail
    targets[30, 1] = bad
    for kernel in ("auto", "general"):
        with pytest.raises(DataError, match=match) as err:
            backtest(m, targets, costs=COSTS, risk=RiskConfig(), hold_nan=hold_nan, kernel=kernel)
        assert "P1" in str(err.value) and "2 bad values" in str(err.value)


@nb.njit(error_model="numpy")
def _order_lanes(target_w, equity, price, position_q, pending_q, lot, min_notional, sized):  # noqa: ANN001, ANN202
    """The kernel's compiled order sizing (division by zero gives inf there, as in the kernel)."""
    quantity, keep = _order_candidate(target_w, equity, price, position_q, pending_q, lot, min_notional, sized)
    return quantity if keep else 0.0


def test_branch_free_order_sizing_equals_order_quantity():
    rng = np.random.default_rng(0)
    cases = [
        (0.0, 1e6, 100.0, 0.0, 0.0, 0.0, 0.0), (0.0, 1e6, 100.0, 3.0, 0.0, 0.1, 5.0),
        (0.5, 0.0, 100.0, 1.0, 0.0, 0.0, 0.0), (0.5, 1e6, 0.0, 1.0, 0.0, 0.0, 0.0),
        (0.5, 1e6, np.nan, 1.0, 0.0, 0.0, 0.0), (0.5, -1.0, 100.0, 1.0, 0.0, 0.0, 0.0),
        (0.5, 1e6, 100.0, 5000.0, 0.0, 0.0, 0.0),  # already there: dust
        (1e-9, 1e6, 100.0, 0.0, 0.0, 0.001, 0.0),  # rounds to zero lots
        (1e-6, 1e6, 100.0, 0.0, 0.0, 0.0, 5.0),  # under the minimum notional
        (-1e-6, 1e6, 100.0, 0.01, 0.0, 0.0, 5.0),  # a close that is small is still sent
    ]
    for _ in range(3000):
        cases.append((rng.normal(0, 1) * (rng.random() > 0.1), 10 ** rng.uniform(2, 7), 10 ** rng.uniform(-2, 5),
                      rng.normal(0, 50) * (rng.random() > 0.3), 0.0, rng.choice([0.0, 0.001, 1.0]),
                      rng.choice([0.0, 5.0, 100.0])))
    for c in cases:
        want = order_quantity(*c)
        sized = c[5] > 0.0 or c[6] > 0.0
        got = _order_lanes(*(float(x) for x in c), sized)
        assert got == want or (got == 0.0 and want == 0.0), c
