"""Instrument kinds through the backtest: spot long-only, dated futures settling and rolling, and the
kernel's reporting-currency equity consistent with the per-account ledger across random paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bt_helpers import FREE, LOOSE, STEP, T0, inst, market
from dea.backtest.ledger import ContractLedger
from dea.backtest.vectorized import backtest
from dea.config import load_config
from dea.config.accounts import AccountsConfig
from dea.errors import ConfigError
from dea.instruments import Instrument
from dea.risk.engine import exposure_bounds, gross_limit
from dea.timeutil import iso

ENGINES = ("numba", "reference")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("engine", ENGINES)
def test_spot_short_into_a_falling_price_is_refused(engine: str):
    falling = np.linspace(100.0, 60.0, 8)
    spot = Instrument(symbol="BTC", kind="spot", base="BTC", taker_fee=0.0, maker_fee=0.0)
    res = backtest(market(falling, instruments=[spot]), np.full((8, 1), -1.0), costs=FREE, risk=LOOSE, engine=engine)
    assert np.all(res.exposures == 0.0)
    np.testing.assert_allclose(res.equity, 1e6)  # no profit from a short the account cannot hold
    assert res.interventions["long_only"] == 8
    # levered spot is cut to fully invested
    lev = backtest(market(falling, instruments=[spot]), np.full((8, 1), 2.0), costs=FREE, risk=LOOSE, engine=engine)
    assert lev.exposures[0, 0] == pytest.approx(1.0)
    # with a margin account the same short is allowed and earns the fall
    acc = AccountsConfig(list=[{"name": "m", "venue": "unknown", "collateral": "USD", "margin": True}])
    short = backtest(market(falling, instruments=[spot]), np.full((8, 1), -1.0), costs=FREE, risk=LOOSE,
                     accounts=acc, engine=engine)
    assert short.final_equity > 1.3e6 and short.interventions["long_only"] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_dated_future_settles_at_expiry_and_rolls(engine: str):
    price = np.array([[100.0, 100.0], [110.0, 111.0], [120.0, 121.0], [130.0, 129.0], [np.nan, 125.0], [np.nan, 140.0]])
    expiry = iso(T0 + 3 * STEP)
    fut = inst("F", kind="future", funding=None, expiry=expiry)
    perp = inst("P")
    alone = backtest(market(price, instruments=[fut, perp]), np.tile([1.0, 0.0], (6, 1)), costs=FREE, risk=LOOSE,
                     engine=engine)
    np.testing.assert_allclose(alone.exposures[3:, 0], 0.0)  # closed at the settlement row
    np.testing.assert_allclose(alone.equity[3:], 1e6 * 1.3)  # PnL up to the settlement price 130
    rolled_fut = inst("F", kind="future", funding=None, expiry=expiry, roll_to="P")
    rolled = backtest(market(price, instruments=[rolled_fut, perp]), np.tile([1.0, 0.0], (6, 1)), costs=FREE,
                      risk=LOOSE, engine=engine)
    assert rolled.exposures[3, 0] == 0.0 and rolled.exposures[3, 1] == pytest.approx(1.0)
    # after the roll the equity follows the perpetual: 1.3M * 140 / 129 at the end
    assert rolled.final_equity == pytest.approx(1.3e6 * 140 / 129)


def test_future_instrument_fields_are_used_or_refused():
    with pytest.raises(ValueError, match="no expiry"):
        Instrument(symbol="F", kind="future")
    with pytest.raises(ValueError, match="only dated futures"):
        Instrument(symbol="P", kind="perpetual", funding="none", expiry="2024-01-01")
    with pytest.raises(ValueError, match="roll_to"):
        Instrument(symbol="S", kind="spot", roll_to="X")
    with pytest.raises(ValueError, match="contract_size applies"):
        Instrument(symbol="S", kind="spot", contract_size=100)
    with pytest.raises(ConfigError, match="options overlay"):
        exposure_bounds([Instrument(symbol="BTC-26JUN20-8000-C", kind="option", expiry="2020-06-26T08:00:00Z")])


def test_demo_config_spot_is_long_only_and_unlevered():
    cfg = load_config(REPO / "configs" / "demo.yaml")
    lower, upper = exposure_bounds(cfg.data.instruments, cfg.accounts, cfg.risk)
    np.testing.assert_array_equal(lower, 0.0)
    np.testing.assert_array_equal(upper, 1.0)
    assert gross_limit(cfg.risk, cfg.data.instruments, cfg.accounts) == 1.0


def _fills(res, price):  # noqa: ANN001, ANN202 - quantities the kernel held, step by step
    q = res.exposures * res.equity[:, None] / price
    return np.diff(np.vstack([np.zeros((1, q.shape[1])), q]), axis=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), T=st.integers(3, 30))
def test_kernel_equity_matches_the_ledger_on_random_paths(seed: int, T: int):
    """Linear USD account: kernel equity == ledger equity each step. Inverse: the kernel's
    reporting-currency PnL == the coin PnL of the same contracts (dN = dq * P) valued at the mark;
    margin is consistent with exposure."""
    rng = np.random.default_rng(seed)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, (T, 1)), axis=0))
    targets = rng.uniform(-3, 3, (T, 1))
    lin = inst("L")
    res = backtest(market(price, instruments=[lin]), targets, costs=FREE, risk=LOOSE)
    led = ContractLedger([lin], initial={"unknown:USD": 1e6})
    inv = Instrument(symbol="I", kind="perpetual", contract="inverse", base="BTC", contract_size=100.0,
                     funding="none", taker_fee=0.0, maker_fee=0.0)
    iled = ContractLedger([inv])
    for t, dq in enumerate(_fills(res, price)[:, 0]):
        p = float(price[t, 0])
        if dq:
            led.fill(0, float(dq), p)
            iled.fill(0, float(dq) * p, p)  # the same fill as inverse contract notional
        led.mark(0, p)
        iled.mark(0, p)
        eq = led.equity("unknown:USD")
        assert eq == pytest.approx(res.equity[t], rel=1e-9)
        assert iled.equity("unknown:BTC") * p == pytest.approx(res.equity[t] - 1e6, rel=1e-7, abs=1e-3)
        assert led.margin("unknown:USD") == pytest.approx(0.005 * abs(res.exposures[t, 0]) * res.equity[t], rel=1e-9)
        if res.equity[t] > 0:
            assert led.exposure(0, eq) == pytest.approx(res.exposures[t, 0], rel=1e-9, abs=1e-12)


def test_settlement_row_falls_back_to_the_last_mark_and_basis_is_annualised():
    from dea.backtest.expiry import basis, settlement_rows
    from dea.timeutil import NS_PER_YEAR

    clock = T0 + np.arange(5, dtype=np.int64) * STEP
    fut = inst("F", kind="future", funding=None, expiry=iso(T0 + 3 * STEP + STEP // 2))  # between rows 3 and 4
    priced = np.array([[100.0], [101.0], [102.0], [103.0], [104.0]])
    assert settlement_rows(clock, priced, [fut]) == {0: 4}  # first decision at or after the expiry
    ended = priced.copy()
    ended[4] = np.nan  # the series stops before expiry: close at its last mark
    assert settlement_rows(clock, ended, [fut]) == {0: 3}
    b, ann = basis(np.array([102.0, 101.0]), np.array([100.0, 100.0]),
                   np.array([0, NS_PER_YEAR // 2]), NS_PER_YEAR)
    np.testing.assert_allclose(b, [0.02, 0.01])
    np.testing.assert_allclose(ann, [0.02, 0.02])
    _, past = basis(np.array([100.0]), np.array([100.0]), np.array([NS_PER_YEAR]), NS_PER_YEAR)
    assert np.isnan(past).all()


def test_event_engine_with_a_live_policy_closes_the_expired_future():
    """Closed loop (the engine's own RiskEngine, no target rewriting): the future still leaves."""
    from dea.backtest.event import EventBacktester, market_events

    price = np.array([[100.0, 100.0], [110.0, 111.0], [120.0, 121.0], [130.0, 129.0], [np.nan, 125.0]])
    fut = inst("F", kind="future", funding=None, expiry=iso(T0 + 3 * STEP), roll_to="P")
    m = market(price, instruments=[fut, inst("P")])
    bt = EventBacktester(m.instruments, FREE, LOOSE, lambda ctx: np.array([1.0, 0.0]))
    res = bt.run(market_events(m), (int(t) for t in m.clock))
    assert res.exposures[3, 0] == 0.0 and res.exposures[3, 1] == pytest.approx(1.0)
    assert any(r.rule == "future_expiry" for r in res.intervention_log)
