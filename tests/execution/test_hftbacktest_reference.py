"""DEA's queue simulator against an independent restatement of hftbacktest's queue models
(``benchmarks/hftbacktest_reference.py``; hftbacktest itself cannot be installed next to the
project's pins): the formula on a hand case, then every fill of touch probes on the real USDT-M
BTCUSDT capture, identical in time and size under all four models."""

from __future__ import annotations

import pytest

from benchmarks.hftbacktest_reference import RefExchange, RefOrder, cross_check
from dea.book.capture import parse_capture
from dea.execution.queue import QueueModel
from dea.execution.replay import capture_messages

S = 1_000_000_000


@pytest.fixture(scope="module")
def msgs(shared_data):  # noqa: ANN001, ANN201
    p = parse_capture(shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz")
    return capture_messages(p, end_ns=int(p.ev_time[0]) + 120 * S)


def test_depth_update_formula_by_hand() -> None:
    # level 10 -> 6 with 1 traded since the last update: 3 cancelled; 3 ahead of us, 7 behind
    # n = 1: P(cancel behind) = 7 / 10, so 0.3 * 3 of it was ahead: 3 - 0.9 = 2.1 ahead now
    ref = RefExchange("power", 1.0)
    o = RefOrder("a", 1, 100.0, 1.0, 3.0, 10**18, traded=1.0)
    assert ref._depth(o, 10.0, 6.0) == pytest.approx(2.1)
    assert QueueModel("power", 1.0).on_depth(3.0, 10.0, 6.0, 1.0) == pytest.approx(2.1)
    # n = 2: P(behind) = 49 / 58, ahead share 9 / 58 of the 3 cancelled
    o = RefOrder("b", 1, 100.0, 1.0, 3.0, 10**18, traded=1.0)
    assert ref.__class__("power", 2.0)._depth(o, 10.0, 6.0) == pytest.approx(3 - 3 * 9 / 58)
    assert QueueModel("power", 2.0).on_depth(3.0, 10.0, 6.0, 1.0) == pytest.approx(3 - 3 * 9 / 58)
    # risk-averse: cancels never advance us, the level caps the queue
    assert QueueModel("risk_averse").on_depth(3.0, 10.0, 2.5, 0.0) == 2.5
    assert RefExchange("risk_averse")._depth(RefOrder("c", 1, 100.0, 1.0, 3.0, 10**18), 10.0, 2.5) == 2.5


@pytest.mark.parametrize(("model", "n"), [("risk_averse", 1.0), ("power", 1.0), ("power", 2.0), ("power", 3.0)])
def test_every_probe_fill_equals_the_reference_on_the_capture(msgs, model: str, n: float) -> None:  # noqa: ANN001
    r = cross_check(msgs, model, n, every_ns=5 * S, ttl_ns=20 * S)
    assert r["probes"] >= 30
    assert r["identical"] == r["probes"]  # every fill of every probe: same time, same size
    dea, ref = r["dea"], r["reference"]
    assert dea.fills == ref.fills > 0 and dea.fill_rate == ref.fill_rate > 0.5
    assert dea.markout_bps == pytest.approx(ref.markout_bps, abs=1e-12)


def test_queue_fills_come_in_lots() -> None:
    from dea.execution.order_types import OrderRequest
    from dea.execution.queue import LimitOrderSimulator

    sim = LimitOrderSimulator(lot=0.001)
    sim.on_snapshot(0, [(100.0, 0.0104)], [(100.1, 1.0)])
    sim.submit(1, OrderRequest("X", 0, 0.01, "a", 1, kind="limit", price=100.0, tif="GTX"))
    assert sim.orders["a"].front == pytest.approx(0.0104)
    sim.on_trade(2, 100.0, 0.0108, -1)  # overrun by 0.0004 < half a lot: not a fill yet
    assert sim.fills == []
    sim.on_trade(3, 100.0, 0.003, -1)  # overrun 0.0034 -> 4 lots, but at most this trade's 0.003
    assert [(f.ts, f.qty) for f in sim.fills] == [(3, pytest.approx(0.003))]
    sim.on_trade(4, 100.0, 0.02, -1)  # the rest
    assert sum(f.qty for f in sim.fills) == pytest.approx(0.01) and sim.orders["a"].status == "filled"
    exact = LimitOrderSimulator()  # lot 0: exact sizes
    exact.on_snapshot(0, [(100.0, 0.0104)], [(100.1, 1.0)])
    exact.submit(1, OrderRequest("X", 0, 0.01, "a", 1, kind="limit", price=100.0, tif="GTX"))
    exact.on_trade(2, 100.0, 0.0108, -1)
    assert [f.qty for f in exact.fills] == [pytest.approx(0.0004)]
