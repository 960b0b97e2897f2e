"""Out-of-sample evaluation: stitched fold exposures through the backtester and the risk engine.

Every strategy (the policy and each baseline) is judged the same way: its target exposures on the
out-of-sample rows (NaN = hold elsewhere, so it is flat before the first test block) go through
:func:`dea.backtest.vectorized.backtest_config` — the same fees, spread, impact, funding, latency
and risk rules as live — and metrics are computed on the out-of-sample span only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dea.backtest.market import Market
from dea.backtest.result import BacktestResult
from dea.config.experiment import ExperimentConfig


@dataclass(frozen=True)
class StrategyResult:
    """One strategy's out-of-sample backtest and metrics."""

    name: str
    targets: np.ndarray  # [T, N] NaN outside the out-of-sample rows
    backtest: BacktestResult
    metrics: Mapping[str, float]


def stitch(shape: tuple[int, int], blocks: Sequence[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """Targets [T, N]: NaN everywhere except each (start, stop, exposures [stop-start, N]) block."""
    out = np.full(shape, np.nan)
    for start, stop, w in blocks:
        out[start:stop] = w
    return out


def oos_rows(blocks: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.concatenate([np.arange(a, b) for a, b in blocks]) if blocks else np.empty(0, dtype=np.int64)


def run_backtest(cfg: ExperimentConfig, market: Market, targets: np.ndarray, name: str) -> BacktestResult:
    from dea.backtest.vectorized import backtest_config

    return backtest_config(cfg, market, targets, hold_nan=True, name=name)


def oos_metrics(result: BacktestResult, rows: np.ndarray) -> dict[str, float]:
    """Metrics of ``result`` restricted to the out-of-sample ``rows`` (contiguous span)."""
    from training.metrics_adapter import metrics_of

    return metrics_of(result, rows)


def evaluate_strategy(
    cfg: ExperimentConfig, market: Market, targets: np.ndarray, rows: np.ndarray, name: str
) -> StrategyResult:
    bt = run_backtest(cfg, market, targets, name)
    return StrategyResult(name=name, targets=targets, backtest=bt, metrics=oos_metrics(bt, rows))
