"""The vectorised kernel and the event-driven replay agree on the same bar data, with every risk
rule, latency, lots, funding and impact switched on; the streaming impact estimator matches the
batch one."""

from __future__ import annotations

import numpy as np
import pytest
from bt_helpers import STEP, random_panel

from dea.backtest.config import CostsConfig
from dea.backtest.event import BarEvent, EventBacktester, FundingEvent, TargetSchedule
from dea.backtest.market import prepare_market
from dea.backtest.vectorized import backtest
from dea.execution.fills import SqrtImpactEstimator
from dea.risk.config import RiskConfig
from dea.timeutil import NS_PER_S

RISK_ALL = RiskConfig(
    max_exposure={"P0": 0.8, "*": 0.6},
    max_gross=1.5,
    max_net=0.9,
    max_leverage=1.4,
    vol_target={"enabled": True, "target_annual": 0.5, "halflife": 10, "max_scale": 1.5},
    drawdown={"soft": 0.04, "hard": 0.12},
    no_trade_band=0.02,
    max_order_notional=0.3,
    max_orders_per_minute=20,
    stale={"max_age": "2h", "action": "derisk", "derisk_factor": 0.5},
    dispersion_scale=1.5,
)
COSTS = CostsConfig(half_spread_bps=1.5, impact={"model": "sqrt", "k": 0.8, "vol_window": 12, "adv_window": 6},
                    initial_equity=2_000_000.0)


def _inputs(T: int, N: int, seed: int):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    targets = np.clip(rng.normal(0, 0.6, (T, N)), -1.2, 1.2)
    targets[rng.random((T, N)) < 0.1] = np.nan  # holds
    age = np.where(rng.random(T) < 0.05, 3 * 3600 * NS_PER_S, 60 * NS_PER_S).astype(float)
    age[rng.random(T) < 0.05] = np.nan  # unknown age
    disp = np.abs(rng.normal(0, 0.3, (T, N)))
    return targets, age, disp


def _assert_same(a, b, rtol=1e-12):  # noqa: ANN001
    np.testing.assert_allclose(a.equity, b.equity, rtol=rtol)
    np.testing.assert_allclose(a.exposures, b.exposures, rtol=rtol, atol=1e-12)
    for k in a.costs:
        np.testing.assert_allclose(a.instrument_costs[k], b.instrument_costs[k], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.turnover, b.turnover, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(a.intervention_mask, b.intervention_mask)
    assert a.interventions == b.interventions
    assert [(e.kind, e.index) for e in a.events] == [(e.kind, e.index) for e in b.events]


@pytest.mark.parametrize("latency", [0, STEP, STEP // 4, 2 * STEP + STEP // 3])
def test_backtest_modes_agree_with_all_rules_on(latency: int):
    panel, insts = random_panel(600, 3, seed=latency % 97)
    targets, age, disp = _inputs(600, 3, seed=1)
    kw = dict(instruments=insts, costs=COSTS, risk=RISK_ALL, latency_ns=latency, feature_age_ns=age,
              dispersion=disp, hold_nan=True)
    a = backtest(panel, targets, engine="numba", **kw)
    b = backtest(panel, targets, engine="reference", **kw)
    assert a.engine == "numba" and b.engine == "event"
    _assert_same(a, b)
    # the scenario exercised what it claims to
    fired = {k for k, v in a.interventions.items() if v}
    assert {"stale_data", "dispersion", "vol_target", "no_trade_band", "instrument_cap",
            "max_order_notional", "drawdown_brake"} <= fired
    assert a.instrument_costs["funding"].any() and a.instrument_costs["impact"].all()
    assert len(b.intervention_log) == sum(a.interventions.values())


def test_modes_agree_through_a_liquidation():
    panel, insts = random_panel(200, 2, seed=5)
    price = panel.fields["price"].copy()
    price[120:, 0] *= 0.7  # a 30% gap down on a 4x levered long
    fields = {**panel.fields, "price": price, "close": price}
    panel = type(panel)(clock=panel.clock, step_ns=panel.step_ns, instruments=panel.instruments, fields=fields)
    targets = np.full((200, 2), np.nan)
    targets[0] = [4.0, 0.0]
    risk = RiskConfig(max_exposure=10.0, max_gross=10.0, max_net=10.0, max_leverage=10.0, drawdown={"enabled": False})
    kw = dict(instruments=insts, costs=COSTS, risk=risk, hold_nan=True)
    a = backtest(panel, targets, engine="numba", **kw)
    b = backtest(panel, targets, engine="reference", **kw)
    assert [e.kind for e in a.events][:1] == ["liquidation"] and a.events[0].index == 120
    _assert_same(a, b)


def test_streaming_impact_estimator_matches_batch():
    panel, insts = random_panel(300, 3, seed=3)
    panel.fields["volume"][50:60, 1] = np.nan  # missing volume is skipped, not zero
    m = prepare_market(panel, insts, COSTS)
    est = SqrtImpactEstimator(m.impact_k, COSTS.impact.vol_window, COSTS.impact.adv_window)
    f = panel.fields
    for t in range(300):
        coef = est.update(f["price"][t], f["volume"][t], f["high"][t], f["low"][t])
        np.testing.assert_allclose(coef, m.impact_coef[t], rtol=1e-9)


def test_replay_with_streamed_impact_agrees_within_rounding():
    """A raw bar replay (no precomputed coefficients) estimates impact as it streams."""
    panel, insts = random_panel(400, 2, seed=9)
    targets, age, disp = _inputs(400, 2, seed=4)
    risk = RiskConfig(no_trade_band=0.01, drawdown={"soft": 0.1, "hard": 0.4})
    a = backtest(panel, targets, instruments=insts, costs=COSTS, risk=risk, hold_nan=True)
    m = prepare_market(panel, insts, COSTS)

    def events():  # noqa: ANN202
        for s, ts in enumerate(m.clock):
            yield BarEvent(int(ts), m.price[s], m.volume[s], m.high[s], m.low[s])
            for i in np.flatnonzero(m.funding[s]):
                yield FundingEvent(int(ts), int(i), float(m.funding[s, i]))

    bt = EventBacktester(insts, COSTS, risk, TargetSchedule(targets), impact_k=m.impact_k)
    b = bt.run(events(), m.clock)
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-9)
    np.testing.assert_allclose(a.exposures, b.exposures, atol=1e-9)
