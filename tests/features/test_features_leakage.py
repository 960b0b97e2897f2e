"""End-to-end no-leakage on real data, publication lags included.

Every source row published after t (``available_at > t``) is perturbed in the loaded canonical
tables; the panel and the feature matrix are rebuilt; every feature value at decision times
<= t must be bit-identical. Coin Metrics on-chain values (1-day lag), FRED (1-day lag),
sentiment and prices (bars available at close + 1h) all take part. A control perturbs rows
published exactly at t and must change values at t, so the check can fail.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pytest

from dea.config.experiment import ExperimentConfig
from dea.data.panel import assemble_panel
from dea.data.sources import load_source
from dea.features import FeatureSet

TIME_COLUMNS = {"ts_event", "available_at", "interval_ns"}


def perturb_after(tables: Mapping[str, pa.Table], cut: int, seed: int, inclusive: bool = False) -> dict[str, pa.Table]:
    """Scale every float value of rows with available_at > cut (>= with ``inclusive``)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in tables.items():
        av = t["available_at"].to_numpy()
        hit = av >= cut if inclusive else av > cut
        cols = {}
        for field in t.schema:
            col = t[field.name]
            if pa.types.is_floating(field.type) and field.name not in TIME_COLUMNS:
                v = col.to_numpy(zero_copy_only=False).astype(np.float64).copy()
                v[hit] = v[hit] * np.exp(rng.normal(0.0, 0.5, hit.sum())) + rng.normal(0.0, 1.0, hit.sum())
                cols[field.name] = pa.array(v, field.type)
            else:
                cols[field.name] = col
        out[name] = pa.table(cols, schema=t.schema)
    return out


@pytest.fixture(scope="module")
def daily_tables(daily_cfg: ExperimentConfig) -> dict[str, pa.Table]:
    return {s.name: load_source(s, daily_cfg.base_dir).table for s in daily_cfg.data.sources}


def test_future_publications_never_reach_past_features(daily_cfg: ExperimentConfig, daily_tables) -> None:
    panel = assemble_panel(daily_cfg.data, daily_tables)
    fs = FeatureSet.from_config(daily_cfg.features, panel.instruments)
    base = fs.batch(panel)
    T = len(panel)
    for k, row in enumerate((T // 4, T // 2, (3 * T) // 4)):
        cut = int(panel.clock[row])
        pert = assemble_panel(daily_cfg.data, perturb_after(daily_tables, cut, seed=k))
        m = fs.batch(pert)
        np.testing.assert_array_equal(m.values[: row + 1], base.values[: row + 1])
        assert not np.allclose(m.values[row + 1 :], base.values[row + 1 :], equal_nan=True)


def test_control_rows_published_at_t_do_change_t(daily_cfg: ExperimentConfig, daily_tables) -> None:
    panel = assemble_panel(daily_cfg.data, daily_tables)
    fs = FeatureSet.from_config(daily_cfg.features, panel.instruments)
    base = fs.batch(panel)
    row = len(panel) // 2
    # bars are published at close + 1h, so nothing is published exactly at a midnight clock time:
    # perturb from one hour before t, which includes the bar that closed at t
    cut = int(panel.clock[row]) - 3_600_000_000_000
    m = fs.batch(assemble_panel(daily_cfg.data, perturb_after(daily_tables, cut, seed=1, inclusive=True)))
    changed = ~np.isclose(m.values[row], base.values[row], equal_nan=True)
    assert changed.any()
