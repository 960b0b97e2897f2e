"""From an experiment config to the arrays training needs: panel -> features -> market arrays.

One function so that training, the tuner and retraining build inputs identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dea.backtest.market import Market, prepare_market
from dea.config.experiment import ExperimentConfig
from dea.data.panel import Panel
from training.datamodule import TrainingData
from training.market import arrays_from_market


@dataclass(frozen=True)
class PreparedData:
    """Everything derived from the data for one experiment."""

    panel: Panel
    feature_set: Any  # dea.features.FeatureSet
    feature_matrix: Any  # dea.features.FeatureMatrix
    market: Market  # the backtester's market arrays (same costs as training)
    data: TrainingData

    @property
    def feature_spec_hash(self) -> str:
        return str(self.feature_set.spec_hash)

    @property
    def data_fingerprint(self) -> str:
        return str(self.panel.fingerprint)


def prepare_data(cfg: ExperimentConfig, panel: Panel | None = None) -> PreparedData:
    """Build (or take) the panel, compute the feature matrix, apply the missing-data policy and
    derive the cost-aware market arrays."""
    from dea.data.panel import build_panel
    from dea.features import FeatureSet, prepare_inputs

    panel = panel if panel is not None else build_panel(cfg)
    fs = FeatureSet.from_config(cfg.features, panel.instruments)
    matrix = fs.batch(panel)
    X, row_ok, names = prepare_inputs(matrix, cfg.features.missing)
    market = prepare_market(panel, cfg.data.instruments, cfg.costs)
    arrays = arrays_from_market(market, cfg.costs)
    data = TrainingData(
        features=np.asarray(X, dtype=np.float32),
        feature_names=tuple(names),
        valid=np.asarray(row_ok, dtype=bool),
        market=arrays,
    )
    return PreparedData(panel=panel, feature_set=fs, feature_matrix=matrix, market=market, data=data)
