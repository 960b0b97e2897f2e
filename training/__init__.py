"""DEA training: Lightning policies on a cost- and risk-aware objective, walk-forward evaluation,
MLflow tracking. Entry point: :func:`training.pipeline.train`.
"""

# dea.config must initialise before dea.backtest.config / dea.risk.config are imported on their
# own (they import dea.config.base, whose package imports them back).
import dea.config  # noqa: F401
