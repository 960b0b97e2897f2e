"""Stress report figures on hand-checkable records."""

from __future__ import annotations

import numpy as np
import pytest

from dea.stress.metrics import Limits, ReplayRecord, historical_var_es, limit_breaches, max_drawdown, summarise, time_to_derisk

LIM = Limits(caps=np.array([1.0, 1.0]), max_gross=1.5, max_net=1.0, max_leverage=1.5, dd_hard=0.3)


def test_drawdown_and_var_by_hand() -> None:
    assert max_drawdown(np.array([100, 120, 90, 130, 104.0])) == pytest.approx(0.25)
    r = np.linspace(-0.10, 0.09, 20)  # 20 evenly spaced returns
    var, es = historical_var_es(r, 0.9)
    assert var == pytest.approx(-np.quantile(r, 0.1))
    assert es == pytest.approx(-r[r <= np.quantile(r, 0.1)].mean())


def test_breaches_name_the_step_and_the_limit() -> None:
    ordered = np.array([[0.5, 0.5], [1.2, 0.0], [0.9, 0.9], [0.0, 0.0]])
    eq = np.array([1.0, 1.0, 0.6, 0.6])
    halted = np.array([False, False, False, True])
    out = limit_breaches(ordered, LIM, eq, halted)
    assert any("step 1: |w[0]| 1.2 > cap 1" in s for s in out)
    assert any("step 2: gross 1.8 > 1.5" in s for s in out)
    assert any("step 2: net 1.8 > 1" in s for s in out)
    assert any("step 2: drawdown 0.4000" in s for s in out)
    assert not any(s.startswith("step 3") for s in out)  # halted: the switch did its job


def test_time_to_derisk_and_summary() -> None:
    clock = np.arange(6) * 60 * 10**9
    held = np.array([[1.0, 0], [1.0, 0], [0.8, 0], [0.4, 0], [0.1, 0], [0.0, 0]])
    assert time_to_derisk(clock, held, 1, 0.5) == 120.0
    assert np.isnan(time_to_derisk(clock, np.zeros((6, 2)), 1, 0.5))
    rec = ReplayRecord(clock, np.array([1.0, 1.0, 0.95, 0.9, 0.92, 0.92]), held, held, np.array([0, 0, 0, 1, 1, 0], bool))
    res = summarise("x", rec, LIM, score_from=0, shock_start=1)
    assert res.pnl == pytest.approx(-0.08) and res.max_drawdown == pytest.approx(0.1)
    assert res.kill_switches == 1 and res.breaches == 0 and res.time_to_derisk_s == 120.0
