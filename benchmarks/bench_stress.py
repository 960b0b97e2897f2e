"""Stress and drift figures: scenario generation, drift scoring, live-loop replay speed.

- ``flash_crash_1m_steps_ms``: one flash crash on a 1,000,000 x 3 price path;
- ``drift_eval_ms_2000x68``: scoring 68 features over a 2,000-row window (PSI + KS), the work the
  live loop does every ``drift.every`` decisions;
- ``drift_observe_us``: per-decision cost of the drift guard between evaluations (ring buffer);
- ``replay_decisions_per_s``: decisions per second of a stress replay through the live loop
  (paper exchange, risk engine, journal) with a constant ONNX policy, sim data.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _time(fn, repeat: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run() -> dict[str, float | int | str]:
    from prometheus_client import CollectorRegistry

    from dea.config.drift import DriftConfig
    from dea.drift import RollingDriftMonitor, build_reference
    from dea.stress import flash_crash, path_from_prices
    from serving.drift_monitor import DriftGuard

    rng = np.random.default_rng(0)
    T = 1_000_000
    price = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (T, 3)), axis=0))
    path = path_from_prices(np.arange(T, dtype=np.int64) * 60_000_000_000, price, ["A", "B", "C"], depth=1e6)
    crash_s = _time(lambda: flash_crash(path, i0=T // 2, crash_steps=10, drop=0.2, recovery=0.5, recovery_steps=120), 3)

    F = 68
    train = rng.normal(size=(50_000, F))
    ref = build_reference(train, [f"f{i}" for i in range(F)])
    mon = RollingDriftMonitor(ref, window=2000, every=10**9)
    for row in rng.normal(size=(2000, F)):
        mon.update(row)
    eval_s = _time(mon.evaluate, 5)

    guard = DriftGuard(ref, DriftConfig(window=2000, every=10**6, min_samples=2000), registry=CollectorRegistry())
    rows = rng.normal(size=(20_000, F))
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        guard.observe(i, r)
    observe_us = (time.perf_counter() - t0) / len(rows) * 1e6

    replay = _replay_speed()
    return {
        "flash_crash_1m_steps_ms": round(crash_s * 1e3, 2),
        "drift_eval_ms_2000x68": round(eval_s * 1e3, 2),
        "drift_observe_us": round(observe_us, 2),
        **replay,
    }


def _replay_speed() -> dict[str, float | int | str]:
    import sys

    from dea.config import load_config
    from serving.feeds.replay import load_tables
    from serving.stress import run_stress

    tests = Path(__file__).resolve().parents[1] / "tests" / "stress"
    sys.path.insert(0, str(tests))
    try:
        from conftest import constant_policy_onnx  # the tests' constant-exposure policy
    finally:
        sys.path.remove(str(tests))
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            cfg = load_config(tests / "stress_sim.yaml")
            model = constant_policy_onnx(cfg, Path(tmp) / "c.onnx", 0.5)
            tables = load_tables(cfg)
            t0 = time.perf_counter()
            run = run_stress(cfg, model, names="flash_crash", tables=tables)
            wall = time.perf_counter() - t0
        finally:
            os.chdir(old)
    decisions = sum(len(rp.record.clock) for rp in run.replays)
    return {"replay_decisions": decisions, "replay_decisions_per_s": round(decisions / wall, 1)}
