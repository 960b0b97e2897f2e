"""Simulated markets shared by the simulator tests (each simulated once per session)."""

from __future__ import annotations

import pytest

from dea.sim.config import SimConfig
from dea.sim.market import SimMarket, simulate_cached

SIGNAL_OPTIONS = {
    "seed": 11,
    "n_assets": 4,
    "n_steps": 40_000,
    "step": "1h",
    "signal_strength": 0.1,
    "signal_halflife": "2d",
    "publication_lag": "1h",
    "book": {"enabled": True, "every": 5, "levels": 5},
}


@pytest.fixture(scope="session")
def signal_market() -> SimMarket:
    return simulate_cached(SimConfig(**SIGNAL_OPTIONS))


@pytest.fixture(scope="session")
def control_market() -> SimMarket:
    return simulate_cached(SimConfig(**{**SIGNAL_OPTIONS, "signal_strength": 0.0}))


@pytest.fixture(scope="session")
def jump_free_market() -> SimMarket:
    """No jumps, equicorrelation 0.3 in calm markets and 0.8 in volatile ones."""
    return simulate_cached(
        SimConfig(
            seed=3,
            n_assets=3,
            n_steps=30_000,
            correlation=0.3,
            regimes=[
                {"name": "calm", "vol_scale": 0.75, "mean_duration": "10d"},
                {"name": "volatile", "vol_scale": 2.0, "mean_duration": "3d", "correlation": 0.8},
            ],
            jumps={"market_intensity": 0.0, "idio_intensity": 0.0},
        )
    )
