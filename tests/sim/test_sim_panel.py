"""Downstream is agnostic: a `format: sim` config assembles into a decision-clock panel whose
returns, funding and published signal line up exactly with the simulator's own arrays, so the
oracle can be scored on the panel's clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dea.config import validate_config
from dea.data.panel import build_panel
from dea.sim.config import SimConfig
from dea.sim.market import simulate_cached
from dea.sim.oracle import exposure_on_clock


def _small_sim_config(repo_root: Path, options: dict):
    raw = yaml.safe_load((repo_root / "configs" / "sim.yaml").read_text())
    for src in raw["data"]["sources"]:
        if src["format"] == "sim":
            src["options"] = options
    return validate_config(raw, repo_root / "configs")


def test_panel_from_sim_sources_matches_the_simulated_market(repo_root: Path) -> None:
    raw = yaml.safe_load((repo_root / "configs" / "sim.yaml").read_text())
    options = {**raw["data"]["sources"][0]["options"], "n_steps": 400, "seed": 5}
    cfg = _small_sim_config(repo_root, options)
    market = simulate_cached(SimConfig.from_options(options))
    panel = build_panel(cfg)

    # one decision per bar boundary, from the first open to the last close
    np.testing.assert_array_equal(panel.clock, market.price_times)
    assert panel.instruments == market.symbols
    # decision at row t holds over (t, t+1]: the panel's forward return is the bar's return
    # (row 0 has no closed bar yet, so its price is unknown, not zero)
    price = panel.fields["price"]
    assert np.isnan(price[0]).all()
    np.testing.assert_allclose(price[2:] / price[1:-1] - 1, market.returns[1:], rtol=1e-12)
    # funding settled in (t, t+1] is what the bar opened at t pays
    np.testing.assert_allclose(panel.fields["funding_settled"][1:], market.funding_per_step, atol=1e-15)
    # the sentiment visible at the bar's open is the one published (period close + 1h) by then
    sent = market.exogenous["sentiment"]
    idx = np.searchsorted(sent.available_at, panel.clock, side="right") - 1
    known = idx >= 0
    np.testing.assert_array_equal(panel.fields["sentiment"][known], sent.values[idx[known]])
    assert np.isnan(panel.fields["sentiment"][~known]).all()
    # the oracle maps onto the panel's clock row for row (NaN after the last bar)
    w = exposure_on_clock(market, panel.clock)
    np.testing.assert_array_equal(w[:-1], market.oracle_exposure)
    assert np.isnan(w[-1]).all()
