"""Portfolio greeks per underlying and the pre-trade greek budgets."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from dea.errors import RiskError
from dea.options import GreekExposure, OptionError, aggregate, greeks, position_greeks
from dea.risk.greeks import GreekBudgetConfig, check_option_order


def test_aggregate_per_underlying_adds_linear_exposure() -> None:
    # two BTC options and one ETH option; hand numbers: delta_usd = delta * qty * mult * S
    g = greeks([50_000.0, 50_000.0, 2_000.0], [45_000.0, 55_000.0, 2_000.0], 30 / 365, [0.6, 0.6, 0.8], [False, True, True])
    qty, mult, s = np.array([2.0, -1.0, 10.0]), np.ones(3), np.array([50_000.0, 50_000.0, 2_000.0])
    pg = aggregate(g, qty, mult, s, np.array([0, 0, 1]), ("BTC", "ETH"), 1_000_000.0, linear_exposure=np.array([0.5, -0.1]))
    btc_delta = 0.5 + (2 * g.delta[0] - g.delta[1]) * 50_000 / 1e6
    assert pg.of("BTC").delta == pytest.approx(btc_delta, rel=1e-12)
    assert pg.of("ETH").delta == pytest.approx(-0.1 + 10 * g.delta[2] * 2_000 / 1e6, rel=1e-12)
    assert pg.of("BTC").vega == pytest.approx((2 * g.vega[0] - g.vega[1]) / 1e6, rel=1e-12)
    assert pg.of("ETH").gamma == pytest.approx(10 * g.gamma[2] * 2_000**2 / 100 / 1e6, rel=1e-12)
    assert pg.of("SOL") == GreekExposure()
    one = position_greeks(greeks(50_000.0, 45_000.0, 30 / 365, 0.6, False), 2.0, 1.0, 50_000.0, 1e6)
    assert one.delta == pytest.approx(2 * g.delta[0] * 50_000 / 1e6)


def test_aggregate_refuses_missing_values() -> None:
    g = greeks([100.0], [100.0], 0.1, 0.5, True)
    with pytest.raises(OptionError, match="quantity is not finite at position 0"):
        aggregate(g, np.array([np.nan]), np.ones(1), np.array([100.0]), np.zeros(1, int), ("BTC",), 1e4)


def test_vega_budget_binds_and_scales_to_whole_steps() -> None:
    per = GreekExposure(delta=-0.01, gamma=0.001, vega=0.0004)
    budgets = GreekBudgetConfig(max_vega=0.002, contract_step=0.1)
    d = check_option_order(GreekExposure(delta=1.0), per, 10.0, budgets)
    # 0.002 / 0.0004 = 5 contracts of the 10 requested
    assert (d.quantity, d.binding, d.refused) == (5.0, ("vega",), False)
    assert d.scale == pytest.approx(0.5)
    within = check_option_order(GreekExposure(), per, 4.0, budgets)
    assert (within.quantity, within.binding) == (4.0, ())


def test_breach_can_shrink_but_never_grow() -> None:
    per = GreekExposure(vega=0.001)
    budgets = GreekBudgetConfig(max_vega=0.002)
    over = GreekExposure(vega=0.005)
    assert check_option_order(over, per, 1.0, budgets).refused  # would widen the breach
    assert check_option_order(over, per, -2.0, budgets).quantity == -2.0  # reduces it: allowed
    # selling through zero is capped at the budget on the other side: 0.005 - 7*0.001 = -0.002
    assert check_option_order(over, per, -9.0, budgets).quantity == pytest.approx(-7.0)


def test_delta_budget_counts_the_perpetual() -> None:
    budgets = GreekBudgetConfig(max_delta=1.0, action="refuse")
    call = GreekExposure(delta=0.02)
    d = check_option_order(GreekExposure(delta=0.95), call, 5.0, budgets)  # 0.95 + 0.10 > 1.0
    assert d.refused and d.quantity == 0.0 and d.binding == ("delta",)
    assert not check_option_order(GreekExposure(delta=0.5), call, 5.0, budgets).refused


def test_budget_config_is_strict_and_inputs_finite() -> None:
    with pytest.raises(ValidationError):
        GreekBudgetConfig(max_vegaa=0.1)
    with pytest.raises(ValidationError):
        GreekBudgetConfig(max_vega=-1)
    with pytest.raises(RiskError, match="finite"):
        check_option_order(GreekExposure(vega=float("nan")), GreekExposure(vega=0.1), 1.0, GreekBudgetConfig(max_vega=1.0))


@pytest.mark.parametrize("greek", ["delta", "gamma", "vega"])
def test_each_budget_binds_on_its_own_greek(greek: str) -> None:
    per = GreekExposure(**{greek: 0.01})
    budgets = GreekBudgetConfig(**{f"max_{greek}": 0.05}, contract_step=1.0)
    d = check_option_order(GreekExposure(), per, 8.0, budgets)
    assert (d.quantity, d.binding) == (5.0, (greek,))
    # the other greeks' budgets do not bind on it
    other = GreekBudgetConfig(**{f"max_{g}": 0.05 for g in ("delta", "gamma", "vega") if g != greek}, contract_step=1.0)
    assert check_option_order(GreekExposure(), per, 8.0, other).quantity == 8.0
