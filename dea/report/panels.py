"""Everything the tearsheet draws, assembled once from the backtest results (see
:mod:`dea.report.analytics` for the arithmetic): the static PNG (:mod:`dea.report.tearsheet`) and
the interactive page (:mod:`dea.report.interactive`) both read a :class:`Panels`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dea.backtest.result import COST_KINDS, BacktestResult
from dea.report import analytics as A


@dataclass(frozen=True)
class Panels:
    """The series of every tearsheet panel. ``shown``: the strategies drawn as lines (policy
    first); ``hidden``: the rest (in the metrics table only)."""

    title: str
    primary: str
    shown: tuple[str, ...]
    hidden: tuple[str, ...]
    benchmark: str | None
    dates: Mapping[str, np.ndarray]  # name -> datetime64[s]
    wealth: Mapping[str, np.ndarray]  # name -> growth of 1 after costs
    gross_wealth: np.ndarray  # primary, before costs
    drawdown: Mapping[str, np.ndarray]  # name -> negative fraction
    worst: tuple[A.DrawdownPeriod, ...]  # primary's five deepest
    years: tuple[int, ...]
    monthly: np.ndarray  # [years, 12]
    yearly: Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (years, returns)
    returns: Mapping[str, np.ndarray]  # name -> per-step net returns
    vol_window_days: float
    rolling_vol: Mapping[str, np.ndarray]
    rolling_beta: np.ndarray | None  # primary on the benchmark
    turnover_window_days: float
    rolling_turnover: Mapping[str, np.ndarray]
    costs_total: Mapping[str, Mapping[str, float]]  # name -> kind -> sum of per-step fractions
    costs_cum: Mapping[str, np.ndarray]  # primary: kind -> cumulative fraction of equity
    cost_bps: Mapping[str, float]  # primary: trading cost per unit turnover, bp
    exposures: np.ndarray  # primary [T, N]
    instruments: tuple[str, ...]
    fold_starts: tuple[np.datetime64, ...] = field(default=())
    periods_label: str = "step"

    def clock(self, name: str | None = None) -> np.ndarray:
        return self.dates[name or self.primary]


def _periods_label(ppy: float) -> str:
    for label, per_year in (("day", 365.25), ("hour", 365.25 * 24), ("5 minutes", 365.25 * 288),
                            ("minute", 365.25 * 1440), ("week", 365.25 / 7)):
        if abs(ppy / per_year - 1.0) < 0.02:
            return label
    return "step"


def build_panels(results: Mapping[str, BacktestResult], title: str,
                 metrics: Mapping[str, Mapping[str, float]] | None = None,
                 fold_starts: Sequence[int] = ()) -> Panels:
    """Assemble :class:`Panels` for ``results`` (the policy under review first).

    ``metrics``: per strategy, used to pick the best remaining baseline to draw (by Sharpe);
    ``fold_starts``: int-ns start times of the walk-forward test blocks, marked on time axes."""
    if not results:
        raise ValueError("a tearsheet needs at least one result")
    names = list(results)
    primary = names[0]
    pres = results[primary]
    if len(pres.clock) < 2:
        raise ValueError(f"{primary!r} has {len(pres.clock)} rows; a tearsheet needs at least 2")
    metrics = metrics or {}
    shown = A.informative_names(names, metrics)
    bench = A.benchmark_name(names)
    ppy = pres.periods_per_year
    n = len(pres.returns)
    vol_w = A.window_steps(ppy, 90.0, n)
    to_w = A.window_steps(ppy, 30.0, n)
    drawn = list(dict.fromkeys([*shown, *([bench] if bench else [])]))
    dates = {k: A.to_datetime64(results[k].clock) for k in drawn}
    rets = {k: np.asarray(results[k].returns, dtype=np.float64) for k in drawn}
    years, grid = A.monthly_table(pres.clock, pres.returns)
    beta = None
    if bench is not None and bench != primary:
        b = results[bench]
        if len(b.clock) == len(pres.clock) and np.array_equal(b.clock, pres.clock):
            beta = A.rolling_beta(pres.returns, b.returns, vol_w)
    lo, hi = int(pres.clock[0]), int(pres.clock[-1])
    folds = tuple(A.to_datetime64(np.asarray([t]))[0] for t in sorted(set(int(t) for t in fold_starts)) if lo <= t <= hi)
    return Panels(
        title=title,
        primary=primary,
        shown=tuple(shown),
        hidden=tuple(k for k in names if k not in shown),
        benchmark=bench,
        dates=dates,
        wealth={k: A.wealth(rets[k]) for k in drawn},
        gross_wealth=A.wealth(pres.gross_returns),
        drawdown={k: A.drawdown(rets[k]) for k in drawn},
        worst=tuple(A.worst_drawdowns(pres.returns, 5)),
        years=tuple(years),
        monthly=grid,
        yearly={k: A.period_returns(results[k].clock, rets[k], "Y") for k in drawn},
        returns=rets,
        vol_window_days=vol_w * 365.25 / ppy,
        rolling_vol={k: A.rolling_vol(rets[k], vol_w, results[k].periods_per_year) for k in drawn},
        rolling_beta=beta,
        turnover_window_days=to_w * 365.25 / ppy,
        rolling_turnover={k: A.rolling_turnover(results[k].turnover, to_w, results[k].periods_per_year)
                          for k in shown},
        costs_total={k: {c: float(np.sum(results[k].costs[c])) for c in COST_KINDS} for k in shown},
        costs_cum={c: np.cumsum(np.asarray(pres.costs[c], dtype=np.float64)) for c in COST_KINDS},
        cost_bps=A.cost_per_turnover_bps(pres),
        exposures=np.asarray(pres.exposures),
        instruments=tuple(pres.instruments),
        fold_starts=folds,
        periods_label=_periods_label(ppy),
    )


def pct(x: float, digits: int = 1) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:+.{digits}f}%"


def drawdown_rows(p: Panels, clock: np.ndarray) -> list[list[str]]:
    """The worst-drawdown table: rank, peak, trough, recovery, depth, days."""
    rows = []
    for k, d in enumerate(p.worst, 1):
        peak, trough, rec = d.dates(clock)
        rows.append([str(k), str(peak)[:10], str(trough)[:10], "not recovered" if rec is None else str(rec)[:10],
                     f"{-d.depth * 100:.1f}%", f"{d.days(clock):.0f}"])
    return rows


DRAWDOWN_HEADER = ["#", "peak", "trough", "recovered", "depth", "days"]
