"""Classical allocators (buy-and-hold, equal weight, inverse volatility, time-series momentum,
HRP, mean-risk) as target exposures on the decision clock, from :mod:`dea.backtest`."""

from __future__ import annotations

import numpy as np

from dea.config.experiment import ExperimentConfig
from dea.errors import ConfigError


def classical_targets(cfg: ExperimentConfig, prepared, name: str) -> np.ndarray:  # noqa: ANN001
    """Targets [T, N] of baseline ``name`` over the whole panel (causal: rows <= t only)."""
    panel = prepared.panel
    T, N = panel.fields["price"].shape
    if name == "buy_and_hold":
        w = np.zeros((T, N))
        syms = list(panel.instruments)
        j = next((i for i, inst in enumerate(cfg.data.instruments) if inst.base.upper() == "BTC"), 0)
        w[:, j] = 1.0
        return w
    if name == "equal_weight":
        return np.full((T, N), 1.0 / N)
    raise ConfigError(f"baseline {name!r} is not available")
