"""Backtest/live parity: a recorded feed replayed through the live loop with the paper exchange
gives exactly the decisions and fills of the event-driven backtest on the same data.

The backtest side is built the batch way: :func:`dea.data.panel.assemble_panel` over the whole
tables, :func:`dea.backtest.market.prepare_market`, ``market_events`` and
:class:`dea.backtest.event.EventBacktester`, with a policy that runs the same ONNX model on the
batch panel's rows. The live side sees only events, one at a time. Equality is exact (==):
decisions, orders, fill prices and costs, funding, final equity.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from serving_helpers import export_config_policy, sim_config

from dea.backtest.event import BarEvent, EventBacktester, PolicyOutput, market_events
from dea.backtest.market import prepare_market
from dea.data.panel import assemble_panel
from dea.features.featureset import FeatureSet
from dea.features.missing import prepare_row
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal
from serving.loop import LiveLoop, feature_age_ns, resolve_latency_ns
from serving.runner import PolicyRunner


class _RecordingBacktester(EventBacktester):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fill_log = []

    def _execute(self, i, qty, price, ts, client_id="", liquidation=False):
        fill = super()._execute(i, qty, price, ts, client_id, liquidation)
        self.fill_log.append(fill)
        return fill


def _streamed_impact(events):
    """The backtest's events without the batch-precomputed impact coefficients: the event engine
    then estimates them as the bars stream (its documented mode for streamed bars), which is
    what a live venue can do. The batch numpy estimate agrees to ~1e-16 relative, not bit for bit."""
    for ev in events:
        yield replace(ev, impact_coef=None) if isinstance(ev, BarEvent) else ev


def _backtest(cfg, tables, model_path):
    panel = assemble_panel(cfg.data, tables)
    market = prepare_market(panel, cfg.data.instruments, cfg.costs)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    stream = fs.streaming(step_ns=panel.step_ns)
    runner = PolicyRunner.from_path(model_path)
    age_names = [i.name for i in fs.inputs()] + ["price"]
    n = len(cfg.data.symbols)
    decisions = []

    def policy(ctx):
        fields, series = panel.row(ctx.index)
        raw = stream.update(ctx.ts, fields, series)
        x, usable = prepare_row(raw, cfg.features.missing, stream.is_warm, list(fs.names))
        age = feature_age_ns({k: v[ctx.index] for k, v in panel.age.items()}, age_names)
        target = runner.decide(x, ctx.exposure)[0].astype(np.float64) if usable else np.full(n, np.nan)
        decisions.append([ctx.ts, ctx.equity, target.tolist()])
        return PolicyOutput(target, feature_age_ns=age)

    bt = _RecordingBacktester(cfg.data.instruments, cfg.costs, cfg.risk, policy,
                              latency_ns=resolve_latency_ns(cfg), impact_k=market.impact_k)
    allowed = []
    apply = bt.risk.apply

    def recording_apply(*args, **kwargs):
        out = apply(*args, **kwargs)
        allowed.append(out.exposure.tolist())
        return out

    bt.risk.apply = recording_apply
    result = bt.run(_streamed_impact(market_events(market)), panel.clock)
    for d, a in zip(decisions, allowed, strict=True):
        d.append(a)
    return decisions, bt, result, market


def _live(cfg, tables, model_path, journal_path, impact_k):
    replay = TableReplay(cfg.data, tables)
    exchange = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=impact_k)
    journal = Journal(journal_path, synchronous="NORMAL")
    loop = LiveLoop(cfg, PolicyRunner.from_path(model_path), exchange, journal,
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps)
    summary = loop.run(replay.events(loop.panel))
    return journal, summary, loop


def _nan_to_none(xs):
    return [None if (x is None or (isinstance(x, float) and math.isnan(x))) else x for x in xs]


def _assert_parity(cfg, tables, model_path, tmp_path):
    decisions, bt, result, market = _backtest(cfg, tables, model_path)
    fills = bt.fill_log
    journal, summary, loop = _live(cfg, tables, model_path, tmp_path / "journal.sqlite", market.impact_k)
    live = journal.decisions()
    assert len(live) == len(decisions) == len(result.clock)
    for got, (t, equity, target, allowed) in zip(live, decisions, strict=True):
        assert got["t_ns"] == t
        assert got["equity"] == equity
        assert got["target"] == _nan_to_none(target)
        assert got["allowed"] == allowed
    live_fills = journal.fills()
    assert len(live_fills) == len(fills) > 0
    for lf, bf in zip(live_fills, fills, strict=True):
        assert (lf.ts, lf.index, lf.qty, lf.price, lf.fee, lf.spread, lf.impact, lf.client_id) == (
            bf.ts, bf.index, bf.qty, bf.price, bf.fee, bf.spread, bf.impact, bf.client_id)
    assert summary.equity == result.equity[-1]
    assert summary.equity == loop.account.equity()
    # every order is journaled once, with the backtest's deterministic client id, and filled at
    # most once; the rest are exactly the backtest's unfilled ones (due after the last event)
    orders = journal.orders()
    assert len({o.client_id for o in orders}) == len(orders)
    filled = [o.client_id for o in orders if o.status == "filled"]
    assert sorted(filled) == sorted(f.client_id for f in fills)
    unfilled = sorted(o.client_id for o in orders if o.status != "filled")
    assert unfilled == sorted(o.client_id for o in bt.pending)
    return summary, result


def test_parity_on_real_perp_bars_with_exogenous_series(bars_cfg, bars_tables, bars_model, tmp_path):
    summary, result = _assert_parity(bars_cfg, bars_tables, bars_model, tmp_path)
    assert summary.decisions == len(result.clock) and summary.fills > 20


@pytest.mark.parametrize("latency", ["0s", "20m"])
def test_parity_on_simulated_perps_with_funding_and_latency(tmp_path, repo_root, latency):
    cfg = sim_config(tmp_path, repo_root, n_steps=240)
    cfg = cfg.with_overrides([f"costs.latency={latency}"])
    tables = load_tables(cfg)
    model = export_config_policy(cfg, tmp_path / "sim.onnx", seed=1)
    summary, result = _assert_parity(cfg, tables, model, tmp_path)
    assert result.costs["funding"].any()  # funding really was charged on held positions


def test_parity_with_the_hrp_weight_feature_streamed_live(tmp_path, repo_root):
    """The explicit ``hrp_weight`` feature (the ``hrp`` base's input) streams through the live loop
    exactly as in the backtest, refitting on its epoch grid."""
    cfg = sim_config(tmp_path, repo_root, n_steps=240)
    items = [f.model_dump(exclude_defaults=True) for f in cfg.features.set]
    cfg = cfg.with_overrides({"features.set": [*items, {"name": "hrp_weight", "params": {"window": 48, "refit": "4h"}}]})
    assert any(n.startswith("hrp_weight_48_4h@") for n in FeatureSet.from_config(cfg.features, cfg.data.symbols).names)
    tables = load_tables(cfg)
    model = export_config_policy(cfg, tmp_path / "sim.onnx", seed=1)
    summary, result = _assert_parity(cfg, tables, model, tmp_path)
    assert summary.decisions == len(result.clock) and summary.fills > 0
