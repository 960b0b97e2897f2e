"""Fixtures for the training tests: tiny synthetic markets and tiny, fast configs."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

from dea.config import validate_config
from training.datamodule import TrainingData
from training.market import MarketArrays

torch.set_num_threads(1)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def synthetic_data(T: int = 1500, N: int = 2, F: int = 3, strength: float = 0.3, seed: int = 0) -> TrainingData:
    """Returns r[t] = sigma * (strength * x[t, i] + noise): feature i predicts instrument i."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, F))
    sig = 0.01
    r = sig * (strength * x[:, :N] + rng.standard_normal((T, N)))
    r[-1] = np.nan
    market = MarketArrays(
        clock=np.arange(T, dtype=np.int64) * 86_400 * 10**9,
        instruments=tuple(f"I{i}" for i in range(N)),
        returns=r,
        funding=np.zeros((T, N)),
        impact=np.full((T, N), 1e-4),
        fee=np.full(N, 5e-4),
        sigma=np.full((T, N), sig),
        periods_per_year=365.0,
    )
    return TrainingData(
        features=(x * 3 + 1).astype(np.float32),
        feature_names=tuple(f"f{i}" for i in range(F)),
        valid=np.ones(T, bool),
        market=market,
    )


def tiny_config(**sections):
    raw = {
        "data": {
            # long/short instruments (a spot instrument is long-only): the synthetic signal is symmetric
            "instruments": [{"symbol": "I0", "kind": "perpetual", "funding": "none"},
                            {"symbol": "I1", "kind": "perpetual", "funding": "none"}],
            "sources": [{"name": "s", "kind": "bars", "format": "ohlcv", "path": "unused"}],
        },
        "features": {"set": [{"name": "logret"}]},
        # the legacy, plain output (no base, no volatility scaling): these synthetic features carry no
        # rvol_cc column; the base-allocation policies have their own tests
        "model": {"kind": "mlp", "hidden": [8], "ensemble": 1, "base": {"kind": "none"}, "adjust": {"vol_scaling": False}},
        "training": {
            "epochs": 3,
            "seq_len": 16,
            "seq_stride": 8,
            "batch_size": 16,
            "lr": 0.01,
            "progress_bar": False,
            "num_threads": 1,
            "splits": {"n_folds": 2, "train_min": 0.5, "val_share": 0.2},
        },
        "tracking": {"enabled": False},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return validate_config(raw)


@pytest.fixture
def synth() -> TrainingData:
    return synthetic_data()


@pytest.fixture
def make_data():
    """Factory fixture: ``make_data(T=..., strength=..., seed=...)`` -> synthetic TrainingData."""
    return synthetic_data


@pytest.fixture
def make_config():
    """Factory fixture: ``make_config(model={...}, training={...})`` -> a tiny ExperimentConfig."""
    return tiny_config


def sim_experiment(
    *,
    signal_strength: float = 0.15,
    n_steps: int = 3000,
    seed: int = 3,
    symbols: tuple[str, ...] = ("SIM0", "SIM1"),
    **sections,
):
    """A small experiment on the market simulator (``format: sim``): hourly perpetuals whose
    ``sentiment`` series observes a planted alpha (``signal_strength`` = its information
    coefficient; 0 = the no-signal control)."""
    options = {
        "seed": seed,
        "symbols": list(symbols),
        "n_steps": n_steps,
        "step": "1h",
        "start": "2022-01-01T00:00:00Z",
        "vol": 0.6,
        "correlation": 0.3,
        "signal_strength": signal_strength,
        "signal_halflife": "1d",
        "publication_lag": "1h",
    }
    perp = {"venue": "sim", "kind": "perpetual", "quote": "USD", "funding": "fund", "funding_interval": "8h",
            "maker_fee": 0.0002, "taker_fee": 0.0005}
    raw = {
        "name": "sim-test",
        "data": {
            "clock": {"step": "1h"},
            "instruments": [{**perp, "symbol": s, "base": s} for s in symbols],
            "sources": [
                *({"name": f"bars_{s}", "kind": "bars", "format": "sim", "path": "sim", "instrument": s,
                   "step": "1h", "options": options} for s in symbols),
                {"name": "fund", "kind": "funding", "format": "sim", "path": "sim", "options": options},
                {"name": "exo", "kind": "exogenous", "format": "sim", "path": "sim",
                 "series": ["sentiment"], "max_staleness": "2d", "options": options},
            ],
        },
        "features": {
            "set": [
                {"name": "logret", "params": {"horizon": 1}},
                {"name": "level", "field": "sentiment"},
            ],
            "missing": {"policy": "fill", "indicator": False},
        },
        "model": {"kind": "linear", "hidden": [], "ensemble": 1, "base": {"kind": "none"},
                  "adjust": {"vol_scaling": False}},
        "objective": {"loss": "sharpe", "target_vol": 0.3},
        "training": {
            "seed": 0,
            "epochs": 6,
            "batch_size": 32,
            "seq_len": 32,
            "seq_stride": 4,
            "lr": 0.01,
            "patience": 3,
            "progress_bar": False,
            "num_threads": 1,
            "final_refit": False,
            "splits": {"n_folds": 2, "train_min": 0.6, "val_share": 0.2, "purge": 2, "embargo": 2},
            "baselines": ["ridge"],
        },
        "costs": {"half_spread_bps": 1.0, "impact": {"model": "sqrt", "k": 0.5}},
        "risk": {"max_exposure": 1.0, "max_gross": 2.0, "max_net": 2.0},
        "tracking": {"enabled": False},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return validate_config(raw)


@pytest.fixture
def make_sim():
    """Factory fixture: ``make_sim(signal_strength=..., training={...})`` -> ExperimentConfig."""
    return sim_experiment
