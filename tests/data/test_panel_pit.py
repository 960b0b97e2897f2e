"""Point-in-time correctness of the panel on real data: no value published after t is visible at t.

Every canonical source row with ``available_at > t`` is perturbed (values scaled and shifted) and
the panel is rebuilt; every field, series and age at decision times <= t must be bit-identical.
Two real panels: 5-minute Binance perps with Fear & Greed, and an hourly mixed-frequency
derivatives panel (Coin Metrics daily BTC price, BitMEX 8h funding, Deribit hourly index,
Fear & Greed, FRED DGS10 with its 1-day publication lag). ``funding_settled`` is accounting by
settlement instant (DESIGN.md: funding is charged on exposure held across the settlement), so
it is checked against the CSV rather than by publication time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dea.config.experiment import ExperimentConfig, validate_config
from dea.data.panel import Panel, assemble_panel
from dea.data.sources import load_source
from dea.features.base import ACCOUNTING_FIELDS
from dea.timeutil import NS_PER_HOUR, parse_timestamp

TIME_COLUMNS = {"ts_event", "available_at", "interval_ns"}


def _perturb_after(tables: Mapping[str, pa.Table], cut: int, seed: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in tables.items():
        hit = t["available_at"].to_numpy() > cut
        cols = {}
        for f in t.schema:
            if pa.types.is_floating(f.type) and f.name not in TIME_COLUMNS:
                v = t[f.name].to_numpy(zero_copy_only=False).astype(np.float64).copy()
                v[hit] = v[hit] * np.exp(rng.normal(0.0, 0.5, hit.sum())) + rng.normal(0.0, 1.0, hit.sum())
                cols[f.name] = pa.array(v, f.type)
            else:
                cols[f.name] = t[f.name]
        out[name] = pa.table(cols, schema=t.schema)
    return out


def _assert_prefix_equal(a: Panel, b: Panel, rows: int) -> None:
    for name, v in a.fields.items():
        if name in ACCOUNTING_FIELDS:
            continue
        np.testing.assert_array_equal(b.fields[name][:rows], v[:rows], err_msg=f"field {name}")
    for name, v in a.series.items():
        np.testing.assert_array_equal(b.series[name][:rows], v[:rows], err_msg=f"series {name}")
    for name, v in a.age.items():
        np.testing.assert_array_equal(b.age[name][:rows], v[:rows], err_msg=f"age {name}")


def _derivs_raw(shared: Path) -> dict[str, Any]:
    return {
        "data": {
            "instruments": [
                {"symbol": "BTC", "kind": "perpetual", "base": "BTC", "funding": "bitmex_funding", "funding_interval": "8h"},
            ],
            "sources": [
                {"name": "btc_price", "kind": "bars", "format": "coinmetrics", "instrument": "BTC", "step": "1d",
                 "publication_lag": "1h", "max_staleness": "2d",
                 "path": str(shared / "daily_onchain/coinmetrics/btc.csv")},
                {"name": "bitmex_funding", "kind": "funding", "format": "bitmex_funding", "instrument": "BTC",
                 "path": str(shared / "funding/funding_data.csv")},
                {"name": "deribit_index", "kind": "mark", "format": "deribit_funding", "instrument": "BTC",
                 "path": str(shared / "funding/deribit_history.csv"), "unsorted_policy": "sort",
                 "duplicate_policy": "keep_last"},
                {"name": "fear_greed", "kind": "exogenous", "format": "fear_greed", "step": "1d",
                 "series": ["fear_greed_index"], "path": str(shared / "sentiment/fear_greed_index_2018_2025.csv")},
                {"name": "dgs10", "kind": "exogenous", "format": "fred", "step": "1d", "publication_lag": "1d",
                 "max_staleness": "6d", "path": str(shared / "macro/DGS10.csv")},
            ],
            "clock": {"step": "1h", "start": "2019-06-01", "end": "2019-08-01"},
        },
        "features": {"set": [{"name": "logret"}]},
    }


def _perps_raw(shared: Path) -> dict[str, Any]:
    syms = ("BTC", "ETH", "LTC")
    return {
        "data": {
            "instruments": [{"symbol": s, "kind": "perpetual", "base": s, "funding": "none"} for s in syms],
            "sources": [
                {"name": f"{s}_5m", "kind": "bars", "format": "freqtrade", "instrument": s, "step": "5m",
                 "path": str(shared / f"perps_5m_15m/{s}_USDT_USDT-5m-futures.feather")}
                for s in syms
            ]
            + [{"name": "fear_greed", "kind": "exogenous", "format": "fear_greed", "step": "1d",
                "series": ["fear_greed_index"], "path": str(shared / "sentiment/fear_greed_index_2018_2025.csv")}],
            "clock": {"step": "5m", "start": "2024-03-01", "end": "2024-03-08"},
        },
        "features": {"set": [{"name": "logret"}]},
    }


def _tables(cfg: ExperimentConfig) -> dict[str, pa.Table]:
    return {s.name: load_source(s, cfg.base_dir).table for s in cfg.data.sources}


@pytest.mark.parametrize("builder", [_perps_raw, _derivs_raw], ids=["perps_5m", "derivatives_1h"])
def test_no_value_published_after_t_is_visible_at_t(builder, shared_data: Path) -> None:
    cfg = validate_config(builder(shared_data))
    tables = _tables(cfg)
    panel = assemble_panel(cfg.data, tables)
    T = len(panel)
    for k, row in enumerate((T // 5, T // 2, (4 * T) // 5)):
        cut = int(panel.clock[row])
        rebuilt = assemble_panel(cfg.data, _perturb_after(tables, cut, seed=k))
        _assert_prefix_equal(panel, rebuilt, row + 1)
        # the perturbation is real: later rows do change
        assert not np.allclose(rebuilt.fields["close"][row + 1 :], panel.fields["close"][row + 1 :], equal_nan=True)


def test_mixed_frequency_values_are_the_published_ones(shared_data: Path) -> None:
    """Hand-checked against the CSVs: funding, Fear & Greed, FRED with lag, daily price as-of."""
    cfg = validate_config(_derivs_raw(shared_data))
    p = assemble_panel(cfg.data, _tables(cfg))
    at = lambda s: int(np.searchsorted(p.clock, parse_timestamp(s)))  # noqa: E731
    # BitMEX settlements 2019-06-02 04:00 (3.72e-4), 12:00 (1e-4), 20:00 (6.01e-4)
    i = at("2019-06-02T04:00:00")
    assert p.fields["funding_settled"][i, 0] == pytest.approx(3.72e-4)
    assert p.fields["funding_settled"][i + 1, 0] == 0.0  # no settlement in (04:00, 05:00]
    assert p.fields["funding_rate"][i, 0] == pytest.approx(3.72e-4)
    assert p.fields["funding_rate"][i - 1, 0] == pytest.approx(1e-4)  # 2019-06-01 20:00 settlement
    assert p.age["funding_rate"][i + 3, 0] == 3 * NS_PER_HOUR
    # the daily hourly-clock sum over a day equals the three settlements of that day
    day = slice(at("2019-06-02T00:00:01"), at("2019-06-03T00:00:00") + 1)
    assert p.fields["funding_settled"][day, 0].sum() == pytest.approx(3.72e-4 + 1e-4 + 6.01e-4)
    # Fear & Greed dated D becomes visible at D+1 00:00
    fg = p.series["fear_greed_index"]
    assert fg[at("2019-06-02T00:00:00")] == 62.0  # dated 2019-06-01 in the CSV
    assert fg[at("2019-06-02T00:00:00") - 1] == 61.0  # dated 2019-05-31
    # DGS10: 2019-07-04 is a holiday (empty cell): its "publication" carries 2019-07-03's value
    d = p.series["DGS10"]
    assert np.isfinite(d[at("2019-07-04T00:00:00") : at("2019-07-08T00:00:00")]).all()
    # Coin Metrics PriceUSD dated D (the close at D+1 00:00) is visible from D+1 01:00
    close = p.fields["close"][:, 0]
    assert close[at("2019-06-02T01:00:00")] != close[at("2019-06-02T00:00:00")]
    assert close[at("2019-06-02T00:00:00")] == close[at("2019-06-01T01:00:00")]


def test_panel_fingerprint_is_stable_and_tracks_inputs(shared_data: Path) -> None:
    cfg = validate_config(_perps_raw(shared_data))
    tables = _tables(cfg)
    a = assemble_panel(cfg.data, tables, {n: "fp-" + n for n in tables})
    b = assemble_panel(cfg.data, tables, {n: "fp-" + n for n in tables})
    assert a.fingerprint == b.fingerprint
    c = assemble_panel(cfg.data, tables, {**{n: "fp-" + n for n in tables}, "fear_greed": "other"})
    assert c.fingerprint != a.fingerprint
    cfg2 = cfg.with_overrides(["data.clock.end='2024-03-07'"])
    d = assemble_panel(cfg2.data, tables, {n: "fp-" + n for n in tables})
    assert d.fingerprint != a.fingerprint
