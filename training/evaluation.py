"""Out-of-sample evaluation: stitched fold exposures through the backtester and the risk engine.

Every strategy (the policy and each baseline) is judged the same way: its target exposures on the
out-of-sample rows (NaN = hold elsewhere, so it is flat before the first test block) go through
:func:`dea.backtest.vectorized.backtest_config` — the same fees, spread, impact, funding, latency
and risk rules as live — and :mod:`dea.metrics` measures the out-of-sample span only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dea.backtest.market import Market
from dea.backtest.result import BacktestResult
from dea.config.experiment import ExperimentConfig


@dataclass(frozen=True)
class StrategyResult:
    """One strategy's backtest (whole clock) and its out-of-sample metrics."""

    name: str
    targets: np.ndarray  # [T, N] NaN outside the out-of-sample rows (= hold)
    backtest: BacktestResult
    metrics: dict[str, float] = field(default_factory=dict)


def stitch(shape: tuple[int, int], blocks: Sequence[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """Targets [T, N]: NaN everywhere except each (start, stop, exposures [stop-start, N]) block."""
    out = np.full(shape, np.nan)
    for start, stop, w in blocks:
        out[start:stop] = w
    return out


def run_backtest(
    cfg: ExperimentConfig, market: Market, targets: np.ndarray, name: str, dispersion: np.ndarray | None = None,
    risk: Any = None,
) -> BacktestResult:
    """Backtest with the config's costs and risk engine (``risk`` overrides the risk config)."""
    from dea.backtest.vectorized import backtest_config

    kw = {} if risk is None else {"risk": risk}
    return backtest_config(cfg, market, targets, hold_nan=True, name=name, dispersion=dispersion, **kw)


def evaluate_strategy(
    cfg: ExperimentConfig,
    market: Market,
    targets: np.ndarray,
    start: int,
    stop: int,
    name: str,
    dispersion: np.ndarray | None = None,
    risk: Any = None,
) -> StrategyResult:
    """Backtest ``targets`` (with an ensemble's ``dispersion`` [T, N] for the risk engine's
    dispersion scaling, when given) and measure decision rows [start, stop)."""
    from training.metrics_adapter import metrics_of

    bt = run_backtest(cfg, market, targets, name, dispersion, risk)
    return StrategyResult(name=name, targets=targets, backtest=bt, metrics=metrics_of(bt, start, stop))


def compare(strategies: Mapping[str, StrategyResult], start: int, stop: int, n_candidates: int = 1) -> None:
    """Add the deflated Sharpe to every strategy's metrics. Trials = the strategies compared plus
    the extra candidates nested selection tried for the policy (each was a look at the data)."""
    from training.metrics_adapter import add_deflated_sharpe

    add_deflated_sharpe({n: s.metrics for n, s in strategies.items()},
                        {n: s.backtest for n, s in strategies.items()}, start, stop,
                        extra_trials=max(0, n_candidates - 1))
