"""Streaming == batch on real data, at every decision time (relative difference <= 1e-9).

(a) Binance USDT-M BTC/ETH/LTC 5-minute perpetual bars, three weeks, Fear & Greed joined, with a
    >= 40-column set spanning bars, derivatives (time to funding), sentiment, cross-asset and
    calendar features; (b) the daily Coin Metrics panel (price + on-chain) with Fear & Greed,
    Reddit sentiment/volume, Google Trends and FRED joined. The streaming side is fed exactly what
    the panel holds at each row, one row at a time, as serving does.
"""

from __future__ import annotations

import numpy as np
from features_realdata import assert_parity, replay

from dea.config.experiment import ExperimentConfig
from dea.data.panel import Panel
from dea.features import FeatureSet


def _check(cfg: ExperimentConfig, panel: Panel, min_columns: int) -> None:
    fs = FeatureSet.from_config(cfg.features, panel.instruments)
    assert len(fs.names) >= min_columns
    matrix = fs.batch(panel)
    assert matrix.values.shape == (len(panel), len(fs.names))
    stream = replay(fs.streaming(step_ns=panel.step_ns), panel)
    assert_parity(matrix.values, stream, matrix.names)
    # not vacuous: every column is mostly valid after its warm-up on this real data
    for j, name in enumerate(matrix.names):
        w = matrix.warmups[j]
        assert matrix.valid[w:, j].mean() > 0.9, f"{name}: only {matrix.valid[w:, j].mean():.0%} valid after warm-up"


def test_parity_perps_5m_with_fear_greed(perps_cfg: ExperimentConfig, perps_panel: Panel) -> None:
    _check(perps_cfg, perps_panel, min_columns=40)
    families = {f.family for f in FeatureSet.from_config(perps_cfg.features, perps_panel.instruments).features}
    assert {"bars", "derivatives", "exogenous", "cross_asset", "calendar"} <= families


def test_parity_daily_coinmetrics_with_sentiment(daily_cfg: ExperimentConfig, daily_panel: Panel) -> None:
    _check(daily_cfg, daily_panel, min_columns=40)


def test_streaming_rejects_out_of_order_and_skipped_rows(perps_cfg: ExperimentConfig, perps_panel: Panel) -> None:
    from dea.errors import FeatureError
    import pytest

    fs = FeatureSet.from_config(perps_cfg.features, perps_panel.instruments)
    st = fs.streaming(step_ns=perps_panel.step_ns)
    f0, s0 = perps_panel.row(0)
    st.update(int(perps_panel.clock[0]), f0, s0)
    with pytest.raises(FeatureError, match="not after"):
        st.update(int(perps_panel.clock[0]), f0, s0)
    with pytest.raises(FeatureError, match="jumped"):
        st.update(int(perps_panel.clock[2]), *perps_panel.row(2))
    assert not st.is_warm and st.rows_seen == 1


def test_streaming_values_are_nan_during_warmup(perps_cfg: ExperimentConfig, perps_panel: Panel) -> None:
    fs = FeatureSet.from_config(perps_cfg.features, perps_panel.instruments)
    st = fs.streaming()
    first = st.update(int(perps_panel.clock[0]), *perps_panel.row(0))
    warm = np.asarray(fs.warmups) > 0
    assert np.isnan(first[warm]).all()
    assert np.isfinite(first[~warm]).all()  # calendar / level features are valid at once
