"""Out-of-sample views of backtest results, measured with :mod:`dea.metrics` and drawn with
:mod:`dea.report` (the same metrics and tearsheet ``dea backtest`` uses).

A strategy's out-of-sample decisions are the rows [a, b) of the clock; the backtester books the
return of the exposure decided at t in step t + 1 and the cost of the first trade at a, so the
out-of-sample *result* is rows [a, b + 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from dea.backtest.result import BacktestResult


def oos_slice(result: BacktestResult, start: int, stop: int) -> BacktestResult:
    """``result`` restricted to decision rows [start, stop) (result rows [start, stop + 1))."""
    end = min(stop + 1, len(result.clock))
    sl = slice(start, end)
    first_equity = float(result.equity[start - 1]) if start > 0 else result.initial_equity
    return replace(
        result,
        clock=result.clock[sl],
        initial_equity=first_equity,
        equity=result.equity[sl],
        returns=result.returns[sl],
        gross_returns=result.gross_returns[sl],
        costs={k: v[sl] for k, v in result.costs.items()},
        turnover=result.turnover[sl],
        exposures=result.exposures[sl],
        margin_use=result.margin_use[sl],
        intervention_mask=result.intervention_mask[sl],
        events=tuple(e for e in result.events if start <= e.index < end),
    )


def metrics_of(result: BacktestResult, start: int, stop: int) -> dict[str, float]:
    """:func:`dea.metrics.compute_metrics` of the decision rows [start, stop)."""
    from dea.metrics import compute_metrics

    return compute_metrics(oos_slice(result, start, stop))


def add_deflated_sharpe(metrics: Mapping[str, dict[str, float]], results: Mapping[str, BacktestResult],
                        start: int, stop: int, extra_trials: int = 0) -> None:
    """Deflated Sharpe of every strategy, counting the strategies compared as the trials (picking
    the best row of the table is itself a multiple test) with the variance of their Sharpes."""
    from dea.metrics import compute_metrics

    sharpes = [m.get("sharpe", math.nan) for m in metrics.values()]
    finite = [s for s in sharpes if math.isfinite(s)]
    var = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    for name, m in metrics.items():
        dm = compute_metrics(oos_slice(results[name], start, stop), n_trials=len(metrics) + extra_trials,
                             trials_sharpe_variance=var)
        m["deflated_sharpe"] = dm.get("deflated_sharpe", math.nan)
        m["sharpe_threshold"] = dm.get("sharpe_threshold", math.nan)


def deflated_sharpe_of(result: BacktestResult, start: int, stop: int, *, n_trials: int,
                       trials_sharpe_variance: float | None = None) -> dict[str, float]:
    """Deflated Sharpe of decision rows [start, stop) of ``result`` when ``n_trials`` candidates
    were tried to choose it (:attr:`training.selection.NestedChoice.n_trials`), with the variance of
    their *annualised* Sharpe ratios when known (``NestedChoice.score_variance`` for Sharpe scores),
    else an unskilled trial's (:func:`dea.metrics.null_trials_sharpe_variance`)."""
    from dea.metrics import compute_metrics, null_trials_sharpe_variance

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    sliced = oos_slice(result, start, stop)
    m = compute_metrics(sliced, n_trials=n_trials, trials_sharpe_variance=trials_sharpe_variance)
    var = (trials_sharpe_variance if trials_sharpe_variance is not None
           else null_trials_sharpe_variance(len(sliced.returns)) * sliced.periods_per_year)
    return {"deflated_sharpe": m["deflated_sharpe"], "sharpe_threshold": m["sharpe_threshold"],
            "n_trials": float(n_trials), "trials_sharpe_variance": float(var)}


def tearsheet(out_dir: Path, results: Mapping[str, BacktestResult], metrics: Mapping[str, Mapping[str, float]],
              start: int, stop: int, title: str, fold_starts: Sequence[int] = (),
              notes: Sequence[str] = ()) -> dict[str, Path]:
    """Tearsheet PNG + HTML (+ the interactive page with the report extra) of the out-of-sample
    span (policy first); ``fold_starts``: int-ns starts of the test blocks, marked on the charts."""
    from dea.report import write_tearsheet

    sliced = {n: oos_slice(r, start, stop) for n, r in results.items()}
    paths = write_tearsheet(sliced, out_dir, title, metrics={n: dict(metrics[n]) for n in results},
                            fold_starts=fold_starts, run_notes=notes)
    out = {"tearsheet_png": Path(paths["png"]), "tearsheet_html": Path(paths["html"])}
    if "interactive" in paths:
        out["tearsheet_interactive"] = Path(paths["interactive"])
    return out
