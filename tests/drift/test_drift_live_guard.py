"""The live-loop drift guard: metrics, de-risking and the retrain flag, on real BTC features."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.feather as feather
import pytest
from prometheus_client import CollectorRegistry

from dea.calibration import ewma_variance
from dea.config.drift import DriftConfig
from dea.drift import build_reference
from dea.errors import ModelError
from serving.drift_monitor import DriftGuard


@pytest.fixture(scope="module")
def features(shared_data) -> np.ndarray:
    """Two real ETH 5-minute features, each normalised by its own trailing EWMA (as a model's
    inputs usually are, so that they are comparable across volatility regimes): the log return
    over its EWMA volatility and the high/low range over its EWMA level."""
    t = feather.read_table(shared_data / "perps_5m_15m" / "ETH_USDT_USDT-5m-futures.feather", columns=["close", "high", "low"])
    c, h, lo = (t[k].to_numpy() for k in ("close", "high", "low"))
    r, rng = np.diff(np.log(c)), np.log(h / lo)[1:]
    return np.c_[r / np.sqrt(ewma_variance(r, 100)), rng / np.sqrt(ewma_variance(rng, 100))][1000:]


def test_guard_derisks_and_flags_retraining_only_under_drift(features, tmp_path) -> None:
    ref = build_reference(features[:19_000], ["ret", "range"])
    cfg = DriftConfig(window=2000, every=250, min_samples=500, actions=["alert", "derisk", "retrain"], derisk_factor=0.25)
    reg = CollectorRegistry()
    flag = tmp_path / "retrain.flag"
    guard = DriftGuard(ref, cfg, feature_names=["ret", "range"], registry=reg, model_version="7", flag_path=flag)
    calm = features[27_000:30_000]
    for i, row in enumerate(calm):
        d = guard.observe(i, row)
    assert not d.drifting and d.exposure_scale == 1.0 and not flag.exists()
    # the range feature triples (a volatility regime the model never saw)
    for i, row in enumerate(calm):
        d = guard.observe(10_000 + i, row * np.array([1.0, 3.0]))
    assert d.drifting and d.flagged == ("range",) and d.exposure_scale == 0.25
    assert reg.get_sample_value("dea_drift_flagged", {"feature": "range"}) == 1.0
    assert reg.get_sample_value("dea_drift_flagged", {"feature": "ret"}) == 0.0
    assert reg.get_sample_value("dea_drift_psi", {"feature": "range"}) > cfg.psi_threshold
    assert reg.get_sample_value("dea_drift_episodes_total") == 1.0
    doc = json.loads(flag.read_text())
    assert doc["model_version"] == "7" and set(doc["features"]) == {"range"}
    # back to normal: de-risking lifts
    for i, row in enumerate(calm):
        d = guard.observe(20_000 + i, row)
    assert not d.drifting and d.exposure_scale == 1.0
    assert reg.get_sample_value("dea_drift_exposure_scale") == 1.0


def test_guard_refuses_a_reference_in_another_feature_order(features) -> None:
    ref = build_reference(features[:1000], ["ret", "range"])
    with pytest.raises(ModelError, match="feature order"):
        DriftGuard(ref, DriftConfig(), feature_names=["range", "ret"])
