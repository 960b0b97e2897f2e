"""Performance metrics and the deflated Sharpe ratio (numpy + stdlib)."""

from dea.metrics.performance import compute_metrics, return_metrics
from dea.metrics.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    null_trials_sharpe_variance,
    probabilistic_sharpe_ratio,
)

__all__ = [
    "compute_metrics",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "null_trials_sharpe_variance",
    "probabilistic_sharpe_ratio",
    "return_metrics",
]
