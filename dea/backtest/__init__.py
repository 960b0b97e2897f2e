"""Backtesting: vectorised kernel, event-driven replay, baselines (heavy deps imported lazily).

Public entry points: :func:`dea.backtest.vectorized.backtest`,
:func:`dea.backtest.vectorized.backtest_config`, :class:`dea.backtest.event.EventBacktester`,
:data:`dea.backtest.baselines.BASELINES`, :class:`dea.backtest.result.BacktestResult`.
"""
