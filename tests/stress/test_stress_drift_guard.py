"""Drift in the live loop: a volatility regime the model never saw is flagged from the model's
own inputs and the loop de-risks until it passes (replayed through the real loop)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from dea.config.drift import DriftConfig
from dea.drift import build_reference
from dea.features.featureset import FeatureSet
from dea.stress import vol_spike
from serving.drift_monitor import DriftGuard, attach_to_loop
from serving.feeds.replay import TableReplay
from serving.stress import base_path, base_window, replay_scenario


def test_drift_guard_derisks_the_live_loop(stress_setup, tmp_path, monkeypatch) -> None:
    from training.prepare import prepare_data

    cfg, model, tables = stress_setup
    monkeypatch.chdir(tmp_path)
    data = prepare_data(cfg).data
    win = base_window(cfg, TableReplay(cfg.data, tables), FeatureSet.from_config(cfg.features, cfg.data.symbols).warmup + 2)
    train_rows = np.flatnonzero(data.usable & (data.market.clock < win.window[0]))
    ref = build_reference(data.features[train_rows], data.feature_names)
    base = base_path(cfg, tables, win)
    shocked = vol_spike(base, i0=150, i1=299, factor=5.0)
    reg = CollectorRegistry()
    # short windows of a 12-hour rolling volatility wander a lot even in a steady market: the
    # test thresholds the KS distance high enough for the calm hours and far below a 5x regime
    dc = DriftConfig(window=96, every=6, min_samples=48, psi_threshold=50.0, ks_threshold=0.6,
                     actions=["alert", "derisk"], derisk_factor=0.5)
    guard = DriftGuard(ref, dc, feature_names=data.feature_names, registry=reg)
    rp = replay_scenario(cfg, model, tables, base, shocked, win, tmp_path, on_loop=lambda loop: attach_to_loop(loop, guard))
    assert reg.get_sample_value("dea_drift_episodes_total") >= 1
    flagged = {s.name for s in guard.last_scores if s.flagged}
    assert any(n.startswith("rvol") for n in flagged)
    rec = rp.record
    gross = np.abs(rec.held).sum(axis=1)
    start = int(np.searchsorted(rec.clock, shocked.clock[0]))
    calm = gross[start : start + 140]
    spiked = gross[start + 220 : start + 299]
    assert np.all(np.abs(calm - 1.0) < 0.05)  # 0.5 + 0.5, never de-risked before the spike
    assert abs(np.median(spiked) - 0.5) < 0.05  # de-risked by half while the regime is new
    assert rp.result.breaches == 0
