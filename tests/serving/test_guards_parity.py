"""The live loop and the batch panel quarantine the same rows: real 5-minute Binance bars with a
day of NaN closes, a 50 % one-bar spike and a price of -100 injected, replayed through the loop's
own event path; every decision-time row (prices and ages) equals the guarded batch panel's."""

from __future__ import annotations


import numpy as np
import pyarrow as pa

from dea.data.panel import assemble_panel
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay
from serving.journal import Journal
from serving.loop import LiveLoop
from serving.runner import PolicyRunner

H = 3_600_000_000_000


def _corrupt(table):
    ts = table["ts_event"].to_numpy()
    close = table["close"].to_numpy().copy()
    t0 = np.datetime64("2024-02-24", "ns").astype(np.int64)
    close[(ts >= t0) & (ts < t0 + 24 * H)] = np.nan
    k_spike = int(np.searchsorted(ts, t0 + 60 * H))
    close[k_spike] *= 1.5
    close[k_spike + 300] = -100.0
    return table.set_column(table.schema.get_field_index("close"), "close", pa.array(close))


def test_loop_and_batch_panel_quarantine_the_same_rows(bars_cfg, bars_tables, bars_model, tmp_path):
    tables = dict(bars_tables, btc=_corrupt(bars_tables["btc"]))
    panel = assemble_panel(bars_cfg.data, tables, guards=bars_cfg.guards)
    assert panel.report["guards"] == {"missing": 288, "jump": 1, "nonpositive": 1}
    replay = TableReplay(bars_cfg.data, tables)
    loop = LiveLoop(bars_cfg, PolicyRunner.from_path(bars_model), PaperExchange(bars_cfg.data.instruments, bars_cfg.costs),
                    Journal(tmp_path / "j.sqlite", synchronous="OFF"), native_steps=replay.native_steps)
    events = list(replay.events(loop.panel))
    i = 0
    for k, t in enumerate(panel.clock.tolist()):
        while i < len(events) and events[i].available_at <= t:
            loop._apply(events[i])  # the loop's guarded event path
            i += 1
        row = loop.panel.row(t)
        for name in ("close", "open", "high", "low", "volume", "price"):
            np.testing.assert_array_equal(row.fields[name], panel.fields[name][k], err_msg=f"{name} at row {k}")
        np.testing.assert_array_equal(np.asarray(row.age["price"], dtype=float), panel.age["price"][k])
    assert loop.summary.guarded == {"missing": 288, "jump": 1, "nonpositive": 1}
    assert len(loop.journal.guard_events()) == 290
    # during the NaN day the price is missing and its age grows from the last good bar
    ages = panel.age["price"][:, 0]
    assert np.nanmax(ages) > 20 * H
