"""Safe actions: a NaN output, a model error or stale inputs make the loop take the configured
safe action (hold / derisk / flatten), logged and counted; the risk kill switch halts trading."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from serving_helpers import export_config_policy

from dea.cli.output import NORMAL, QUIET, configure_logging
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay
from serving.journal import Journal
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner


def _run(cfg, tables, model, journal_path, runner=None):
    replay = TableReplay(cfg.data, tables)
    ex = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5, 0.5])
    loop = LiveLoop(cfg, runner or PolicyRunner.from_path(model), ex, Journal(journal_path, synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps)
    return loop, loop.run(replay.events(loop.panel))


def _orders_at(journal, t):
    return [o for o in journal.orders() if o.t_decision == t]


@pytest.mark.parametrize("mode", ["hold", "derisk", "flatten"])
def test_nan_output_takes_the_configured_safe_action(bars_cfg, bars_tables, tmp_path, mode):
    cfg = bars_cfg.with_overrides([f"serving.fallback={mode}", "serving.derisk_factor=0.5", "risk.no_trade_band=0"])
    # NaN whenever BTC's last 1h log return (the first feature) is positive: roughly half the time
    model = export_config_policy(cfg, tmp_path / "nan.onnx", seed=3, nan_above=0.0)
    stream = io.StringIO()
    configure_logging(QUIET, stream, format="json")
    try:
        loop, summary = _run(cfg, bars_tables, model, tmp_path / "j.sqlite")
    finally:  # back to the default handler (stderr, text)
        configure_logging(NORMAL)
    j = loop.journal
    decisions = j.decisions()
    fallback = [d for d in decisions if d["action"] == "fallback:nan_output"]
    assert len(fallback) == summary.fallbacks["nan_output"] > 20
    assert any(d["action"] == "model" for d in decisions)
    prev_allowed = {d["t_ns"]: d for d in decisions}
    times = [d["t_ns"] for d in decisions]
    checked = 0
    for d in fallback:
        i = times.index(d["t_ns"])
        held = decisions[i - 1]["allowed"]  # exposure allowed (and, at zero latency, reached) before
        if mode == "hold":
            assert d["target"] == [None, None]
            assert not _orders_at(j, d["t_ns"]) or np.allclose(d["allowed"], held, atol=1e-2)
        elif mode == "flatten":
            assert d["allowed"] == [0.0, 0.0]
        else:
            assert d["target"] is not None and all(t is not None for t in d["target"])
        checked += 1
    assert checked and prev_allowed
    text = loop.metrics.render().decode()
    assert f'dea_fallbacks_total{{reason="nan_output"}} {float(len(fallback))}' in text
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sum(1 for r in logs if r.get("reason") == "nan_output") == len(fallback)
    assert all(r["level"] == "warning" and r["logger"].startswith("dea.serving") for r in logs)


def test_model_error_falls_back_and_the_loop_goes_on(bars_cfg, bars_tables, bars_model, tmp_path):
    runner = PolicyRunner.from_path(bars_model)
    real = runner.decide
    calls = {"n": 0}

    def flaky(x, e):
        calls["n"] += 1
        if calls["n"] % 7 == 0:
            raise RuntimeError("onnxruntime: simulated failure")
        return real(x, e)

    runner.decide = flaky
    loop, summary = _run(bars_cfg, bars_tables, bars_model, tmp_path / "j.sqlite", runner=runner)
    assert summary.fallbacks["model_error"] == calls["n"] // 7 > 0
    assert summary.decisions == len(loop.journal.decisions())


def test_stale_inputs_trigger_the_fallback(bars_cfg, bars_tables, bars_model, tmp_path):
    # DGS10 is daily with a one-day publication lag: older than 2h at most decisions
    cfg = bars_cfg.with_overrides(["serving.max_feature_age=2h", "serving.fallback=flatten"])
    loop, summary = _run(cfg, bars_tables, bars_model, tmp_path / "j.sqlite")
    decisions = loop.journal.decisions()
    assert summary.fallbacks["stale"] == sum(d["action"] == "fallback:stale" for d in decisions) > 0
    assert all(d["allowed"] == [0.0, 0.0] for d in decisions if d["action"] == "fallback:stale")
    assert any(d["action"] == "model" for d in decisions)  # fresh rows still trade on the model
    # the risk engine's own stale guard counts as a stale fallback too
    cfg2 = bars_cfg.with_overrides(["risk.stale.max_age=2h"])
    loop2, summary2 = _run(cfg2, bars_tables, bars_model, tmp_path / "j2.sqlite")
    assert summary2.fallbacks["stale"] == summary2.interventions["stale_data"] > 0


def test_kill_switch_halts_trading(bars_cfg, bars_tables, bars_model, tmp_path):
    cfg = bars_cfg.with_overrides(["risk.drawdown.soft=0.002", "risk.drawdown.hard=0.004", "risk.no_trade_band=0"])
    loop, summary = _run(cfg, bars_tables, bars_model, tmp_path / "j.sqlite")
    assert summary.halted
    events = loop.journal.events("kill_switch")
    assert len(events) == 1
    t_halt = events[0]["t_ns"]
    after = [d for d in loop.journal.decisions() if d["t_ns"] >= t_halt]
    assert after and all(d["allowed"] == [0.0, 0.0] for d in after)
    assert all(q == 0.0 for q in loop.account.qty)  # flat, and stays flat
    assert not [o for o in loop.journal.orders() if o.t_decision > t_halt]
    assert "dea_halted 1.0" in loop.metrics.render().decode()
