"""Classical allocators on the out-of-sample span, from :mod:`dea.backtest.baselines`."""

from __future__ import annotations

import numpy as np

from dea.config.experiment import ExperimentConfig
from dea.data.panel import Panel


def classical_oos_targets(cfg: ExperimentConfig, panel: Panel, name: str, start: int, stop: int) -> np.ndarray:
    """Targets [T, N] of baseline ``name``: NaN (hold, i.e. flat) before ``start``, its own
    decisions on [start, stop) — entering at ``start`` whatever it decided last (a buy-and-hold
    enters then; a periodic rebalancer starts from its latest rebalance), NaN after ``stop``."""
    from dea.backtest.baselines import baseline_targets, targets_from

    full = baseline_targets(name, panel, cfg.backtest.baseline)
    out = np.full(full.shape, np.nan)
    out[start:stop] = targets_from(full, start)[: stop - start]
    return out
