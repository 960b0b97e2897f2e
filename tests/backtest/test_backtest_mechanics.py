"""Hand-checkable cases for each backtest mechanism, run through both engines (numba kernel and
the event-driven reference): fees, spread, impact, funding sign and timing, latency, lots,
minimum notional, liquidation, book walk."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bt_helpers import FREE, LOOSE, STEP, costs_with, inst, market

from dea.backtest.config import CostsConfig
from dea.backtest.event import BookEvent, EventBacktester, FundingEvent, TargetSchedule
from dea.backtest.market import BookDepth, impact_coefficients, prepare_market
from dea.backtest.vectorized import backtest
from dea.data.panel import Panel
from dea.errors import ConfigError, DataError, MissingFundingError
from dea.execution.fills import book_fill_costs, walk_book
from dea.execution.orders import order_quantity
from dea.instruments import Instrument

ENGINES = ("numba", "reference")
NAN = np.nan


def run(m, targets, engine, costs=FREE, risk=LOOSE, **kw):  # noqa: ANN001, ANN201
    return backtest(m, np.asarray(targets, dtype=float), costs=costs, risk=risk, engine=engine, hold_nan=True, **kw)


@pytest.mark.parametrize("engine", ENGINES)
def test_fee_and_spread_arithmetic(engine: str):
    m = market([100.0, 100.0, 100.0], instruments=[inst(taker_fee=0.001, maker_fee=0.0002)])
    costs = costs_with(half_spread_bps=2.0)
    r = run(m, [[0.5], [NAN], [0.0]], engine, costs=costs)
    # buy 5,000 @ 100: fee 0.1% of 500,000 = 500, spread 2 bps = 100; sell back: same again
    np.testing.assert_allclose(r.instrument_costs["fees"], [1000.0])
    np.testing.assert_allclose(r.instrument_costs["spread"], [200.0])
    np.testing.assert_allclose(r.costs["fees"][0], 500 / 1e6)
    np.testing.assert_allclose(r.costs["spread"][0], 100 / 1e6)
    np.testing.assert_allclose(r.turnover[0], 0.5)
    np.testing.assert_allclose(r.equity, [999_400.0, 999_400.0, 998_800.0])
    np.testing.assert_allclose(r.exposures[:, 0], [500_000 / 999_400, 500_000 / 999_400, 0.0])
    np.testing.assert_allclose(r.returns, r.gross_returns - sum(r.costs[k] for k in r.costs), atol=1e-15)
    maker = costs_with(half_spread_bps=2.0, fee_side="maker")
    np.testing.assert_allclose(run(m, [[0.5], [NAN], [NAN]], engine, costs=maker).instrument_costs["fees"], [100.0])


@pytest.mark.parametrize("engine", ENGINES)
def test_sqrt_impact_cost(engine: str):
    m = market([100.0, 100.0], coef=1e-6)
    costs = costs_with(impact={"model": "sqrt", "k": 0.5})
    r = run(m, [[0.5], [NAN]], engine, costs=costs)
    np.testing.assert_allclose(r.instrument_costs["impact"], [1e-6 * 500_000**1.5])  # 353.55
    np.testing.assert_allclose(r.equity[0], 1e6 - 1e-6 * 500_000**1.5)


def test_impact_coefficient_from_volume_and_volatility():
    price = np.array([[100.0], [101.0], [100.0], [101.0]])
    volume = np.full((4, 1), 1000.0)
    high, low = price * 1.02, price * 0.98
    coef = impact_coefficients(price, volume, high, low, np.array([0.5]), vol_window=2, adv_window=2)
    # t=0: no return yet -> Parkinson high/low estimate; ADV = 1000 * 100
    park = math.log(1.02 / 0.98) / math.sqrt(4 * math.log(2))
    np.testing.assert_allclose(coef[0, 0], 0.5 * park / math.sqrt(100_000))
    # t=2: |log return| = log(1.01) both steps; ADV = mean(101,000, 100,000)
    np.testing.assert_allclose(coef[2, 0], 0.5 * math.log(1.01) / math.sqrt(100_500))


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_sign_and_timing_around_settlement(engine: str):
    perp = Instrument(symbol="BTC-PERP", kind="perpetual", funding="f", taker_fee=0.0, maker_fee=0.0)
    fund = np.zeros((4, 1))
    fund[2, 0] = 0.001  # settled in (t1, t2]
    m = market([100.0] * 4, instruments=[perp], funding=fund)
    long_ = run(m, [[0.5], [NAN], [NAN], [NAN]], engine)
    np.testing.assert_allclose(long_.instrument_costs["funding"], [500.0])  # 5,000 * 100 * 0.1%: longs pay
    np.testing.assert_allclose(long_.costs["funding"], [0, 0, 5e-4, 0])
    np.testing.assert_allclose(long_.equity, [1e6, 1e6, 999_500.0, 999_500.0])
    short = run(m, [[-0.5], [NAN], [NAN], [NAN]], engine)
    np.testing.assert_allclose(short.instrument_costs["funding"], [-500.0])  # shorts receive
    np.testing.assert_allclose(short.final_equity, 1_000_500.0)
    opened_at_settlement = run(m, [[0.0], [NAN], [0.5], [NAN]], engine)
    np.testing.assert_allclose(opened_at_settlement.instrument_costs["funding"], [0.0])
    closed_at_settlement = run(m, [[0.5], [NAN], [0.0], [NAN]], engine)
    np.testing.assert_allclose(closed_at_settlement.instrument_costs["funding"], [500.0])
    # decided at t1: with one step of latency it fills at t2, after the settlement -> no funding;
    # with half a step it fills at t1.5, before it -> pays
    late = run(m, [[0.0], [0.5], [NAN], [NAN]], engine, latency_ns=STEP)
    np.testing.assert_allclose(late.instrument_costs["funding"], [0.0])
    half = run(m, [[0.0], [0.5], [NAN], [NAN]], engine, latency_ns=STEP // 2)
    np.testing.assert_allclose(half.instrument_costs["funding"], [500.0])


def _panel(fields: dict, symbols=("BTC",)) -> Panel:  # noqa: ANN001
    T = len(next(iter(fields.values())))
    return Panel(clock=np.arange(T, dtype=np.int64) * STEP, step_ns=STEP, instruments=tuple(symbols), fields=fields)


def test_missing_funding_is_an_error_and_funding_none_is_explicit():
    price = np.full((3, 1), 100.0)
    perp = Instrument(symbol="BTC", kind="perpetual", funding="f")
    with pytest.raises(MissingFundingError, match="no 'funding_settled'"):
        prepare_market(_panel({"price": price}), [perp], FREE)
    gap = np.array([[0.0], [NAN], [0.0]])
    with pytest.raises(MissingFundingError, match="BTC is unknown at"):
        prepare_market(_panel({"price": price, "funding_settled": gap}), [perp], FREE)
    declared = Instrument(symbol="BTC", kind="perpetual", funding="none")
    m = prepare_market(_panel({"price": price}), [declared], FREE)
    assert not m.funding.any() and any("funding: none" in n for n in m.notes)
    with pytest.raises(ConfigError, match="needs a 'volume' field"):
        prepare_market(_panel({"price": price}), [Instrument(symbol="BTC")], CostsConfig())


@pytest.mark.parametrize("engine", ENGINES)
def test_latency_shifts_the_fill_price(engine: str):
    m = market([100.0, 110.0, 121.0])
    tg = [[1.0], [NAN], [NAN]]
    np.testing.assert_allclose(run(m, tg, engine).equity, [1e6, 1.1e6, 1.21e6])
    # 10,000 units decided at 100 fill one step later at 110
    np.testing.assert_allclose(run(m, tg, engine, latency_ns=STEP).equity, [1e6, 1e6, 1.11e6])
    # half a step: the price interpolated between the bars, 105
    np.testing.assert_allclose(run(m, tg, engine, latency_ns=STEP // 2).equity, [1e6, 1.05e6, 1.16e6])
    # one and a half steps: between 110 and 121 -> 115.5
    np.testing.assert_allclose(run(m, tg, engine, latency_ns=3 * STEP // 2).equity, [1e6, 1e6, 1e6 + 10_000 * (121 - 115.5)])


@pytest.mark.parametrize("engine", ENGINES)
def test_lot_rounding_and_min_notional(engine: str):
    m = market([30_000.0, 30_000.0], instruments=[inst(lot_size=0.01, min_notional=1000.0)])
    r = run(m, [[0.5], [NAN]], engine)
    np.testing.assert_allclose(r.exposures[0, 0], 16.66 * 30_000 / 1e6)  # 16.666.. -> 16.66 lots
    np.testing.assert_allclose(r.traded_notional, [16.66 * 30_000])
    tiny = run(m, [[0.0005], [NAN]], engine)  # 500 of notional < 1,000 minimum: no order
    assert tiny.traded_notional[0] == 0.0


def test_order_quantity_rules():
    assert order_quantity(0.5, 1e6, 30_000.0, 0.0, 0.0, 0.01, 0.0) == pytest.approx(16.66)
    assert order_quantity(-0.5, 1e6, 30_000.0, 0.0, 0.0, 0.01, 0.0) == pytest.approx(-16.66)
    # closing below the minimum notional is allowed (reduce-only), opening is not
    assert order_quantity(0.0, 1e6, 30_000.0, 0.01, 0.0, 0.01, 1000.0) == -0.01
    assert order_quantity(0.0003, 1e6, 30_000.0, 0.0, 0.0, 0.01, 1000.0) == 0.0
    # orders still in flight count: no second order for the same change
    assert order_quantity(0.5, 1e6, 100.0, 0.0, 5000.0, 0.0, 0.0) == 0.0
    assert order_quantity(0.5, 1e6, float("nan"), 0.0, 0.0, 0.0, 0.0) == 0.0


@pytest.mark.parametrize("engine", ENGINES)
def test_liquidation_at_maintenance_margin(engine: str):
    i = inst(maintenance_margin=0.005)
    safe = run(market([100.0, 81.0, 81.0], instruments=[i]), [[5.0], [NAN], [NAN]], engine)
    assert safe.events == ()  # equity 50,000 > margin 50,000 * 81 * 0.5% = 20,250
    r = run(market([100.0, 81.0, 80.2, 90.0], instruments=[i]), [[5.0], [NAN], [NAN], [5.0]], engine)
    (ev,) = r.events
    assert ev.kind == "liquidation" and ev.index == 2
    np.testing.assert_allclose([ev.equity, ev.margin], [10_000.0, 20_050.0])
    np.testing.assert_allclose(r.exposures[2], [0.0])
    np.testing.assert_allclose(r.equity[2], 10_000.0)
    assert r.exposures[3, 0] > 0  # trading goes on with what is left
    assert r.liquidations() == (ev,)
    # the liquidation pays the taker fee
    fee = run(market([100.0, 81.0, 80.2], instruments=[inst(maintenance_margin=0.005, taker_fee=0.001)]),
              [[5.0], [NAN], [NAN]], engine)
    expected = 1e6 - 50_000 * 0.001 * 100 - 50_000 * 19.8 - 50_000 * 80.2 * 0.001
    np.testing.assert_allclose(fee.equity[2], expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_bankruptcy_floors_equity_and_stops_trading(engine: str):
    r = run(market([100.0, 79.0, 100.0], instruments=[inst(maintenance_margin=0.005)]), [[5.0], [NAN], [1.0]], engine)
    assert [e.kind for e in r.events] == ["liquidation", "bankrupt"]
    np.testing.assert_allclose(r.equity, [1e6, 0.0, 0.0])
    np.testing.assert_allclose(r.exposures[2], [0.0])


def test_walk_book_over_several_levels():
    ask_px, ask_sz = np.array([100.0, 101.0, 102.0]), np.array([1.0, 2.0, 5.0])
    bid_px, bid_sz = np.array([99.0, 98.0]), np.array([3.0, 3.0])
    avg, unfilled = walk_book(ask_px, ask_sz, 2.5)
    assert (avg, unfilled) == (pytest.approx(100.6), 0.0)  # 1 @ 100 + 1.5 @ 101
    mid, fee, spread, impact, unfilled = book_fill_costs(2.5, bid_px, bid_sz, ask_px, ask_sz, 0.001)
    assert (mid, spread, impact) == (99.5, pytest.approx(1.25), pytest.approx(1.5))
    assert fee == pytest.approx(2.5 * 99.5 * 0.001)
    mid, fee, spread, impact, unfilled = book_fill_costs(-4.0, bid_px, bid_sz, ask_px, ask_sz, 0.0)
    assert (spread, impact) == (pytest.approx(2.0), pytest.approx(1.0))  # 3 @ 99 + 1 @ 98
    avg, unfilled = walk_book(ask_px, ask_sz, 10.0)  # depth runs out: 2 more at the last level
    assert (avg, unfilled) == (pytest.approx(101.6), 2.0)


def test_book_walk_in_both_engines():
    ask_px, ask_sz = np.array([100.0, 101.0, 102.0]), np.array([1.0, 2.0, 5.0])
    bid_px, bid_sz = np.array([99.0, 98.0, 97.0]), np.array([3.0, 3.0, 3.0])
    m = market([99.5, 99.5], instruments=[inst(taker_fee=0.001)])  # the panel price is the mid
    costs = costs_with(impact={"model": "book", "k": 0.5}, initial_equity=995.0)
    T = 2
    depth = BookDepth(*(np.broadcast_to(a, (T, 1, 3)).copy() for a in (bid_px, bid_sz, ask_px, ask_sz)))
    r = backtest(m, np.array([[0.25], [NAN]]), costs=costs, risk=LOOSE, depth=depth, hold_nan=True)
    # 2.5 units (0.25 * 995 / 99.5) walk the asks: spread 1.25, impact 1.5, fee 0.1% of 2.5 * mid
    np.testing.assert_allclose(r.instrument_costs["spread"], [1.25])
    np.testing.assert_allclose(r.instrument_costs["impact"], [1.5])
    np.testing.assert_allclose(r.instrument_costs["fees"], [2.5 * 99.5 * 0.001])
    bt = EventBacktester(m.instruments, costs, LOOSE, TargetSchedule(np.array([[0.25], [NAN]])))
    from dea.backtest.event import BarEvent

    events = [BarEvent(int(m.clock[0]), m.price[0]), BookEvent(int(m.clock[0]), 0, bid_px, bid_sz, ask_px, ask_sz),
              BarEvent(int(m.clock[1]), m.price[1])]
    ev = bt.run(events, m.clock)
    for k in ("spread", "impact", "fees"):
        np.testing.assert_allclose(ev.instrument_costs[k], r.instrument_costs[k])


def test_event_stream_must_be_time_ordered():
    m = market([100.0, 100.0])
    bt = EventBacktester(m.instruments, FREE, LOOSE, TargetSchedule(np.zeros((2, 1))))
    bt.on_event(FundingEvent(int(m.clock[1]), 0, 0.0))
    with pytest.raises(DataError, match="back in time"):
        bt.on_event(FundingEvent(int(m.clock[0]), 0, 0.0))


def test_bad_targets_are_refused():
    m = market([100.0, 100.0])
    with pytest.raises(DataError, match="shape"):
        backtest(m, np.zeros((3, 1)), costs=FREE, risk=LOOSE)
    with pytest.raises(DataError, match="must be finite"):
        backtest(m, np.array([[0.5], [NAN]]), costs=FREE, risk=LOOSE)
    with pytest.raises(DataError, match="infinite"):
        backtest(m, np.array([[0.5], [np.inf]]), costs=FREE, risk=LOOSE, hold_nan=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_impact_at_a_trade_is_an_error(engine: str):
    m = market([100.0, 100.0], coef=NAN)
    costs = costs_with(impact={"model": "sqrt", "k": 0.5})
    with pytest.raises(DataError, match="impact for I0"):
        run(m, [[0.5], [NAN]], engine, costs=costs)
