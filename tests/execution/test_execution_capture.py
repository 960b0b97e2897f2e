"""Execution on the real Binance USDT-M BTCUSDT capture: the simulator's taker walk equals the
backtest's book model, queue models bracket passive fills, the event backtest works its orders
as parents with queue-aware fills, and the shortfall decomposition adds up."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dea.backtest.config import CostsConfig
from dea.backtest.event import PolicyOutput
from dea.backtest.event_exec import ExecutionBacktester
from dea.book.capture import parse_capture
from dea.execution.order_types import OrderRequest
from dea.execution.passive import passive_study
from dea.execution.quality import shortfall
from dea.execution.queue import LimitOrderSimulator, QueueModel
from dea.execution.replay import capture_messages, feed, run_parents
from dea.execution.schedule import ExecutionConfig
from dea.instruments import Instrument
from dea.risk.config import RiskConfig

S = 1_000_000_000


@pytest.fixture(scope="module")
def msgs(shared_data):  # noqa: ANN001, ANN201
    p = parse_capture(shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz")
    return capture_messages(p, end_ns=int(p.ev_time[0]) + 150 * S)


def test_immediate_shortfall_is_the_modelled_book_walk(msgs) -> None:  # noqa: ANN001
    t0 = msgs[0].ts
    starts = [(t0 + 20 * S, 30.0), (t0 + 60 * S, -30.0), (t0 + 100 * S, 5.0)]
    recs = run_parents(msgs, starts, ExecutionConfig(algo="immediate"))
    assert len(recs) == 3
    for r in recs:
        sf = shortfall(r)
        assert sf.fill_rate == pytest.approx(1.0) and sf.timing == 0.0 and sf.opportunity == 0.0
        # zero latency, one market order: spread + walk are exactly what the backtest's book model
        # charges; the fee differs only in its base (venue: executed notional; model: mid notional)
        model_fee = abs(r.qty) * r.arrival_mid * 0.0005
        assert sf.spread + sf.impact == pytest.approx(r.modelled_cost - model_fee, rel=1e-9)
        assert sf.fees == pytest.approx(sum(abs(f.qty) * f.price for f in r.fills) * 0.0005, rel=1e-12)
        assert sf.impact > 0.0  # 30 BTC walks past the touch
        assert sf.total == pytest.approx(sf.spread + sf.impact + sf.timing + sf.fees + sf.opportunity)
        s = math.copysign(1.0, r.qty)
        direct = sum(s * (f.price - r.arrival_mid) * abs(f.qty) for f in r.fills) + sum(f.fee for f in r.fills)
        assert sf.total == pytest.approx(direct)


def test_worked_schedules_on_capture(msgs) -> None:  # noqa: ANN001
    t0 = msgs[0].ts
    for algo in ("twap", "pov", "passive_aggressive"):
        cfg = ExecutionConfig(algo=algo, horizon="40s", slices=4, participation=0.05, passive_timeout="15s",
                              submit_latency="20ms", cancel_latency="20ms")
        recs = run_parents(msgs, [(t0 + 30 * S, 2.0), (t0 + 80 * S, -2.0)], cfg)
        for r in recs:
            sf = shortfall(r)
            assert sf.filled == pytest.approx(2.0), algo  # every schedule completes on this book
            assert sf.total == pytest.approx(sf.spread + sf.impact + sf.timing + sf.fees + sf.opportunity)
            assert 0 < sf.duration_s <= 41.0
            if algo == "passive_aggressive":
                assert all(f.maker for f in r.fills[:1])  # the first fill is the resting order's


def test_risk_averse_never_fills_earlier_than_power(msgs) -> None:  # noqa: ANN001
    sims = {m.name: LimitOrderSimulator(model=m) for m in (QueueModel("risk_averse"), QueueModel("power", 1.0))}
    posted = 0
    next_post = msgs[0].ts + 5 * S
    for m in msgs:
        for sim in sims.values():
            feed(sim, m)
        ref = sims["power1"]
        if m.ts >= next_post and ref.valid:
            for side, px in ((1, ref.best(1)), (-1, ref.best(-1))):
                req = OrderRequest("BTCUSDT", 0, side * 0.01, f"q{posted}", m.ts, kind="limit", price=px, tif="GTX")
                posted += 1
                for sim in sims.values():
                    sim.submit(m.ts, req)
            next_post = m.ts + 5 * S
    first = {name: {} for name in sims}
    for name, sim in sims.items():
        for f in sim.fills:
            first[name].setdefault(f.client_id, f.ts)
    assert posted > 40
    ra, p1 = first["risk_averse"], first["power1"]
    assert len(p1) >= len(ra) > 0.5 * posted  # most touch probes fill within the capture
    assert all(cid in p1 and p1[cid] <= t for cid, t in ra.items())
    stats = passive_study(msgs, every_ns=10 * S, ttl_ns=20 * S)
    by = {s.model: s for s in stats}
    assert by["risk_averse"].fill_rate <= by["power1"].fill_rate
    assert all(s.markout_bps < 0 for s in stats)  # passive fills are adversely selected


def test_event_backtest_works_orders_on_the_capture(msgs) -> None:  # noqa: ANN001
    perp = Instrument(symbol="BTCUSDT", kind="perpetual", funding="none", taker_fee=0.0005, maker_fee=0.0002,
                      lot_size=0.001, tick_size=0.1)
    costs = CostsConfig(impact={"model": "book"}, initial_equity=1_000_000.0)
    risk = RiskConfig(max_exposure=2.0, max_gross=2.0, max_net=2.0, max_leverage=2.0, drawdown={"enabled": False})
    targets = [0.5, 0.5, -0.3, -0.3, 0.0]
    bt = ExecutionBacktester(
        [perp], costs, risk, lambda ctx: PolicyOutput(np.array([targets[ctx.index]])),
        execution=ExecutionConfig(algo="passive_aggressive", passive_timeout="10s", cancel_latency="50ms"),
    )
    t0 = msgs[0].ts
    res = bt.run_capture(((0, m) for m in msgs), [t0 + (10 + 25 * k) * S for k in range(5)])
    recs = bt.parent_records()
    assert len(recs) >= 3
    fills = [f for r in recs for f in r.fills]
    assert any(f.maker for f in fills) and any(not f.maker for f in fills)
    assert bt.account.qty[0] == pytest.approx(sum(f.qty for f in fills), abs=1e-9)
    assert abs(bt.account.qty[0]) < 1e-9 or abs(res.exposures[-1][0]) < 0.05  # flat at the end
    assert res.costs["fees"].sum() > 0
