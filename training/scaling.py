"""Per-fold feature scaling, fitted on the fold's fit rows only (no look-ahead into validation
or test), via the feature engine's :func:`dea.features.fit_scaler`. The fitted (center, scale)
are baked into the policy module, so an ONNX export carries them inside the graph."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dea.features.config import ScalingConfig


def fit_fold_scaler(
    features: np.ndarray,
    rows: np.ndarray,
    cfg: ScalingConfig,
    names: Sequence[str] | None = None,
):
    """Return the fitted :class:`dea.features.Scaler` on ``features[rows]``."""
    from dea.features import fit_scaler

    return fit_scaler(features, rows, names=names, method=cfg.method, clip=cfg.clip)
