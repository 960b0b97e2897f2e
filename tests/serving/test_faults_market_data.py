"""Fault injection on the live loop's market data: each attack of issue 11 on a clean seeded
market (serving.faults), guarded and unguarded. Guarded: the bad value is quarantined (counted in
the metric, journaled, logged), nothing is traded at a bad price, no exception leaves the loop.
Unguarded runs show that each attack is real (it trades wrong, freezes or never goes stale)."""

from __future__ import annotations

import logging

import pytest

from serving.faults import ATTACKS, CLEAN, EXPECTED_GUARD, run_market_data_attack

N_BARS = 300


@pytest.fixture(autouse=True)
def _quiet():
    logger = logging.getLogger("dea")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_attack_is_guarded_and_nothing_trades_on_bad_data(kind):
    r = run_market_data_attack(kind, seed=11, n_bars=N_BARS, keep_decisions=True)
    assert r.error is None and r.errors == 0
    assert r.tried >= 1 and r.guarded == r.tried
    assert r.wrong_trades == 0
    assert r.decisions == N_BARS  # every decision of the clock was taken: the loop never froze
    guard = EXPECTED_GUARD[kind]
    assert r.metrics.get(guard, 0.0) >= 1.0
    rows = [row for row in r.guard_rows if row["guard"] == guard]
    assert rows and all(row["instrument"] in ("SIM0", "*") for row in rows)
    if kind in ("inf_price", "equity_inf"):  # de-risk and halt: flat from the next decision on
        assert r.summary["halted"]
        halted = [d for d in r.decision_rows if d["detail"].get("halted")]
        assert halted and all(d["allowed"] == [0.0, 0.0] for d in halted)
        assert any("halt_reason" in d["detail"] for d in halted)


def test_nan_close_for_five_days_makes_the_stale_rule_fire():
    guarded = run_market_data_attack("nan_close_5d", seed=2, n_bars=N_BARS)
    unguarded = run_market_data_attack("nan_close_5d", seed=2, n_bars=N_BARS, guards=False)
    # the age counts from the last good close: after risk.stale.max_age (1d) of NaN closes the
    # stale rule holds; unguarded, each NaN row reset the age and the rule never fired
    assert guarded.summary["interventions"].get("stale_data", 0) >= 5 * 24 - 24 - 2
    assert unguarded.summary["interventions"].get("stale_data", 0) == 0


@pytest.mark.parametrize("kind", ["spike_50pct", "conflict_duplicate"])
def test_unguarded_spike_trades_at_the_bad_price(kind):
    r = run_market_data_attack(kind, seed=11, n_bars=N_BARS, guards=False)
    assert r.wrong_trades >= 1  # the attack is real: the guards are what prevents it


def test_unguarded_2030_event_freezes_the_loop():
    clean = run_market_data_attack("future_2030", seed=5, n_bars=N_BARS)
    frozen = run_market_data_attack("future_2030", seed=5, n_bars=N_BARS, guards=False)
    assert frozen.summary["interventions"].get("stale_data", 0) > 50
    assert frozen.summary["fills"] < clean.summary["fills"] * 0.8
    assert clean.summary["interventions"].get("stale_data", 0) == 0


def test_missing_funding_derisks_never_settles_zero():
    r = run_market_data_attack("missing_funding", seed=4, n_bars=N_BARS, keep_decisions=True)
    flagged = [d for d in r.decision_rows if "guard:derisk" in d["action"]]
    assert flagged  # every decision while SIM0's funding is unknown de-risks it
    first = min(d["t_ns"] for d in flagged)
    row = next(g for g in r.guard_rows if g["guard"] == "funding_missing")
    assert row["t_ns"] <= first and row["action"] == "derisk"
    err = run_market_data_attack("missing_funding", seed=4, n_bars=N_BARS, overrides=["guards.funding_missing=error"])
    assert err.errors == 1 and err.error.startswith("MissingFundingError") and "SIM0" in err.error


def test_guards_change_nothing_on_clean_data():
    a = run_market_data_attack(CLEAN, seed=9, n_bars=200, keep_decisions=True)
    b = run_market_data_attack(CLEAN, seed=9, n_bars=200, keep_decisions=True, guards=False)
    assert a.summary["guarded"] == {} and a.summary["fills"] > 100
    assert [(d["t_ns"], d["action"], d["allowed"]) for d in a.decision_rows] == \
        [(d["t_ns"], d["action"], d["allowed"]) for d in b.decision_rows]
