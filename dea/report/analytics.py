"""The numbers behind the tearsheet panels, computed once and drawn twice (matplotlib PNG and the
interactive Plotly page), so the two views can never disagree.

Why a module of its own: the panels a quant expects (underwater plot with the worst drawdowns,
monthly and yearly returns, rolling volatility and beta to buy-and-hold, turnover over time, cost
build-up) are plain array arithmetic on a :class:`~dea.backtest.result.BacktestResult`; keeping it
numpy-only makes it testable without a plotting library and cheap on 5-minute histories.

Conventions (those of :mod:`dea.metrics.performance`): step t's return r[t] is a fraction of the
equity at t-1 and is stamped with the clock time t; wealth starts at 1 *before* the first step,
so a drawdown's depth here equals ``max_drawdown`` there exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dea.backtest.result import BacktestResult
from dea.timeutil import NS_PER_S

#: names tried, in order, as the benchmark of the rolling beta and the reference equity line
BENCHMARK_NAMES: tuple[str, ...] = ("buy_and_hold_raw", "buy_and_hold")
#: at most this many strategies are drawn as lines; every strategy stays in the metrics table
MAX_LINES = 4


def to_datetime64(clock: np.ndarray) -> np.ndarray:
    """Integer-ns UTC clock -> ``datetime64[s]`` (what both plotting libraries take)."""
    return (np.asarray(clock, dtype=np.int64) // NS_PER_S).astype("datetime64[s]")


def wealth(returns: np.ndarray) -> np.ndarray:
    """Growth of 1 after each step: ``cumprod(1 + r)`` (starts at 1 before the first step)."""
    r = np.asarray(returns, dtype=np.float64)
    if not np.isfinite(r).all():
        raise ValueError("returns contain NaN/inf: a tearsheet needs a complete return series")
    return np.cumprod(1.0 + r)


def drawdown(returns: np.ndarray) -> np.ndarray:
    """Drawdown after each step as a negative fraction (0 at a new high), against the running peak
    of wealth including the starting 1."""
    w = wealth(returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], w]))[1:]
    return w / peak - 1.0


@dataclass(frozen=True, slots=True)
class DrawdownPeriod:
    """One spell under water: from the last peak to the first step back at that peak.

    Indices are result rows; ``peak`` is -1 when the peak is the starting equity (before row 0);
    ``recovery`` is None when the spell had not ended by the last row."""

    peak: int
    trough: int
    recovery: int | None
    depth: float  # positive fraction lost from the peak to the trough

    def dates(self, clock: np.ndarray) -> tuple[np.datetime64, np.datetime64, np.datetime64 | None]:
        d = to_datetime64(clock)
        return d[max(self.peak, 0)], d[self.trough], (None if self.recovery is None else d[self.recovery])

    def days(self, clock: np.ndarray) -> float:
        """Calendar days from the peak to the recovery (to the last row while not recovered)."""
        end = self.recovery if self.recovery is not None else len(clock) - 1
        return float(int(clock[end]) - int(clock[max(self.peak, 0)])) / (86400.0 * NS_PER_S)


def worst_drawdowns(returns: np.ndarray, k: int = 5) -> list[DrawdownPeriod]:
    """The ``k`` deepest distinct drawdown spells, deepest first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    dd = drawdown(returns)
    under = dd < 0.0
    periods: list[DrawdownPeriod] = []
    i, n = 0, len(dd)
    while i < n:
        if not under[i]:
            i += 1
            continue
        j = i
        while j < n and under[j]:
            j += 1
        trough = i + int(np.argmin(dd[i:j]))
        periods.append(DrawdownPeriod(peak=i - 1, trough=trough, recovery=j if j < n else None,
                                      depth=float(-dd[trough])))
        i = j
    periods.sort(key=lambda p: p.depth, reverse=True)
    return periods[:k]


def period_returns(clock: np.ndarray, returns: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Compounded return per calendar period (``unit``: ``"M"`` months, ``"Y"`` years), UTC.

    Returns (period start as ``datetime64[unit]``, return); only periods with rows appear."""
    if unit not in ("M", "Y"):
        raise ValueError(f"unit must be 'M' or 'Y', got {unit!r}")
    keys = to_datetime64(clock).astype(f"datetime64[{unit}]")
    r = np.asarray(returns, dtype=np.float64)
    if len(r) != len(keys):
        raise ValueError(f"clock has {len(keys)} rows but returns {len(r)}")
    if not len(r):
        return keys, r
    uniq, inverse = np.unique(keys, return_inverse=True)
    log_growth = np.zeros(len(uniq))
    np.add.at(log_growth, inverse, np.log1p(r))
    return uniq, np.expm1(log_growth)


def monthly_table(clock: np.ndarray, returns: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(years, [years, 12] compounded monthly returns, NaN where a month has no rows)."""
    months, rets = period_returns(clock, returns, "M")
    if not len(months):
        return [], np.zeros((0, 12))
    m = months.astype(np.int64)  # months since 1970-01
    years = list(range(int(m.min() // 12) + 1970, int(m.max() // 12) + 1971))
    grid = np.full((len(years), 12), np.nan)
    grid[m // 12 + 1970 - years[0], m % 12] = rets
    return years, grid


def window_steps(periods_per_year: float, days: float, n: int) -> int:
    """Steps in ``days`` calendar days, at least 2 and at most a third of the series."""
    w = int(round(periods_per_year * days / 365.25))
    return int(max(2, min(w, max(2, n // 3))))


def _rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    c = np.cumsum(np.concatenate([[0.0], x]))
    out = np.full(len(x), np.nan)
    if len(x) >= window:
        out[window - 1:] = c[window:] - c[:-window]
    return out


def rolling_vol(returns: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Annualised rolling standard deviation (ddof 1) over ``window`` steps; NaN during warm-up."""
    r = np.asarray(returns, dtype=np.float64)
    s1, s2 = _rolling_sum(r, window), _rolling_sum(r * r, window)
    var = np.maximum((s2 - s1 * s1 / window) / (window - 1), 0.0)
    return np.sqrt(var * periods_per_year)


def rolling_beta(returns: np.ndarray, benchmark: np.ndarray, window: int) -> np.ndarray:
    """Rolling OLS beta of ``returns`` on ``benchmark`` over ``window`` steps; NaN during warm-up
    and where the benchmark did not move."""
    a = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"returns {a.shape} and benchmark {b.shape} must align")
    sa, sb = _rolling_sum(a, window), _rolling_sum(b, window)
    sab, sbb = _rolling_sum(a * b, window), _rolling_sum(b * b, window)
    cov = sab - sa * sb / window
    var = sbb - sb * sb / window
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 1e-18, cov / var, np.nan)


def rolling_turnover(turnover: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Turnover over the trailing ``window`` steps, annualised (traded notional / equity per year)."""
    return _rolling_sum(np.asarray(turnover, dtype=np.float64), window) * periods_per_year / window


def benchmark_name(names: Sequence[str]) -> str | None:
    """The buy-and-hold strategy among ``names`` (raw first: no risk engine), if any."""
    return next((b for b in BENCHMARK_NAMES if b in names), None)


def informative_names(names: Sequence[str], metrics: Mapping[str, Mapping[str, float]],
                      limit: int = MAX_LINES) -> list[str]:
    """The strategies worth a line on a chart: the policy (first), its base (``base_*``), the
    buy-and-hold reference and the best of the rest by Sharpe. Sixteen overlapping lines tell a
    reader nothing; the metrics table keeps every strategy."""
    if not names:
        raise ValueError("no strategies to choose from")
    chosen = [names[0]]
    chosen += [n for n in names[1:] if n.startswith("base_")][:1]
    bench = benchmark_name(names)
    if bench is not None and bench not in chosen:
        chosen.append(bench)
    rest = [n for n in names if n not in chosen and not n.endswith("_raw")]

    def sharpe(n: str) -> float:
        s = metrics.get(n, {}).get("sharpe", math.nan)
        return s if math.isfinite(s) else -math.inf

    rest.sort(key=sharpe, reverse=True)
    chosen += rest[:1]
    return chosen[:limit]


def cost_per_turnover_bps(result: BacktestResult) -> dict[str, float]:
    """Each trading cost per unit of turnover, in basis points (NaN without turnover): says why
    two cost kinds can total the same (e.g. a 5 bp fee and a 5 bp half-spread)."""
    traded = float(np.sum(result.turnover))
    return {k: (float(np.sum(result.costs[k])) / traded * 1e4 if traded > 0 else math.nan)
            for k in ("fees", "spread", "impact")}
