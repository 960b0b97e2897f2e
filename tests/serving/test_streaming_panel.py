"""The streaming panel equals the batch panel, row by row and bit for bit, on real data: 5-minute
perpetual bars aggregated onto an hourly clock (open/high/low/close/volume buckets), daily Fear &
Greed and FRED series with publication lags and staleness limits, and their ages; and on the
simulated perpetuals with funding settlements and mark prices."""

from __future__ import annotations

import numpy as np
from serving_helpers import sim_config

from dea.data.panel import assemble_panel
from serving.feeds.replay import TableReplay, load_tables
from serving.market_state import StreamingPanel

HANDLERS = {"BarEvent": "on_bar", "MarkEvent": "on_mark", "ExogEvent": "on_exog", "FundingEvent": "on_funding"}


def _compare(cfg, tables):
    panel = assemble_panel(cfg.data, tables)
    replay = TableReplay(cfg.data, tables)
    assert (replay.clock_start, replay.clock_end) == (panel.clock[0], panel.clock[-1])
    sp = StreamingPanel(cfg.data, native_steps=replay.native_steps)
    events = list(replay.events(sp))
    assert all(a.available_at <= b.available_at for a, b in zip(events, events[1:]))
    i = 0
    for k, t in enumerate(panel.clock.tolist()):
        while i < len(events) and events[i].available_at <= t:
            getattr(sp, HANDLERS[type(events[i]).__name__])(events[i])
            i += 1
        row = sp.row(t)
        assert set(row.fields) == set(panel.fields)
        for name, arr in panel.fields.items():
            np.testing.assert_array_equal(row.fields[name], arr[k], err_msg=f"field {name} at row {k}")
        for name, arr in panel.series.items():
            np.testing.assert_array_equal(row.series[name], arr[k], err_msg=f"series {name} at row {k}")
        for name, arr in panel.age.items():
            np.testing.assert_array_equal(np.asarray(row.age[name], dtype=float), arr[k], err_msg=f"age {name} at row {k}")
    return panel


def test_streaming_rows_equal_batch_rows_on_real_bars_and_daily_series(bars_cfg, bars_tables):
    panel = _compare(bars_cfg, bars_tables)
    assert len(panel.clock) > 200 and "DGS10" in panel.series
    assert np.isnan(panel.fields["close"]).sum() < panel.fields["close"].size  # real values compared


def test_streaming_rows_equal_batch_rows_with_funding_and_mark(tmp_path, repo_root):
    cfg = sim_config(tmp_path, repo_root, n_steps=200)
    panel = _compare(cfg, load_tables(cfg))
    assert (panel.fields["funding_settled"] != 0).any() and np.isfinite(panel.fields["mark_price"]).any()
