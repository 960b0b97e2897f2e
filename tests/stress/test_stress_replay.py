"""Scenarios replayed through the live loop (paper exchange, risk engine, journal) with a
policy whose answer is known: always 0.5 long in each of two perpetuals."""

from __future__ import annotations

import numpy as np
import pytest

from serving.stress import run_stress


@pytest.fixture(scope="module")
def replays(stress_setup):
    cfg, model, tables = stress_setup
    run = run_stress(cfg, model, tables=tables)
    return {rp.name: rp for rp in run.replays}


def test_every_scenario_runs_without_hard_limit_breaches(replays) -> None:
    assert set(replays) == {"baseline", "flash_crash", "crash_50", "funding_squeeze", "stale_feed", "order_rejects",
                            "latency_spike", "liquidity_drain"}
    for name, rp in replays.items():
        assert rp.result.breaches == 0, (name, rp.result.breach_detail)
        assert rp.result.steps >= 290
    base = replays["baseline"].record
    held = base.held[np.searchsorted(base.clock, replays["baseline"].path.clock[0]):]
    assert np.allclose(held, 0.5, atol=0.05)  # the loop really holds what the policy asks


def _change_over_shock(rp, other=None) -> float:
    """Equity change from the shock's onset to its trough (in ``other``'s record if given)."""
    i0, _ = rp.path.shock
    k = i0 + 2  # the configured crash lasts 2 hourly steps
    rec = (other or rp).record
    t0, t1 = rp.path.clock[i0], rp.path.clock[k]
    e = dict(zip(rec.clock.tolist(), rec.equity.tolist()))
    return e[int(t1)] / e[int(t0)] - 1


def test_flash_crash_costs_what_the_exposure_says(replays) -> None:
    crash = replays["flash_crash"]
    # 0.5 + 0.5 long through a 20 % fall: about 20 % of equity (the same hours without the
    # shock moved far less)
    assert _change_over_shock(crash) == pytest.approx(-0.2, abs=0.03)
    assert abs(_change_over_shock(crash, replays["baseline"])) < 0.05
    assert crash.result.max_drawdown > 0.17
    assert crash.result.kill_switches == 0 and crash.result.es >= crash.result.var > 0


def test_a_crash_beyond_the_hard_limit_trips_the_kill_switch(replays) -> None:
    r = replays["crash_50"]
    assert r.result.kill_switches == 1 and r.result.breaches == 0
    after = r.record.held[r.record.halted]
    assert np.abs(after).max() < 1e-9  # flat once halted
    assert np.isfinite(r.result.time_to_derisk_s)


def test_funding_squeeze_pays_the_configured_rate(replays) -> None:
    paid = replays["funding_squeeze"].summary["costs"]["funding"] - replays["baseline"].summary["costs"]["funding"]
    equity = 1_000_000.0
    expected = 9 * 0.003 * 1.0 * equity  # 3 days x 3 settlements x gross exposure 1.0
    assert paid == pytest.approx(expected, rel=0.1)


def test_venue_failures_reach_the_loop(replays) -> None:
    assert replays["stale_feed"].result.fallbacks > 0
    assert replays["stale_feed"].summary["interventions"].get("stale_data", 0) > 0
    assert replays["order_rejects"].result.rejected_orders > 0
    assert replays["latency_spike"].summary["delayed_orders"] > 0
    drain = replays["liquidity_drain"]
    t0, t1 = (int(drain.path.clock[i]) for i in drain.path.shock)
    # same orders (prices untouched), ten times the spread and thinner depth while drained
    spread_ratio = drain.cost_between(t0, t1, 1) / replays["baseline"].cost_between(t0, t1, 1)
    impact_ratio = drain.cost_between(t0, t1, 2) / replays["baseline"].cost_between(t0, t1, 2)
    assert spread_ratio == pytest.approx(10.0, rel=0.2)
    assert impact_ratio == pytest.approx(np.sqrt(10.0), rel=0.25)
