"""Performance metrics of a return series or a :class:`~dea.backtest.result.BacktestResult`.

Definitions (returns r_t are per decision step, simple, net of costs; ``ppy`` periods per year):

- ``total_return`` = prod(1 + r) - 1; ``annual_return`` = (1 + total)^(ppy / n) - 1 (CAGR);
- ``annual_vol`` = std(r, ddof=1) * sqrt(ppy);
- ``sharpe`` = mean(r) / std(r, ddof=1) * sqrt(ppy) (zero risk-free rate);
- ``sortino`` = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(ppy) (target 0, all periods);
- ``max_drawdown`` = max over t of 1 - E_t / max_{u<=t} E_u, with E_0 = 1 before the first step
  (a positive fraction); ``max_drawdown_duration`` = the longest run of steps spent below a
  previous peak (to recovery, or to the end); ``calmar`` = annual_return / max_drawdown;
- ``var_95``/``var_99`` = -(5 % / 1 % empirical quantile of r) (a loss, positive);
  ``es_95``/``es_99`` = -(mean of the returns at or below that quantile);
- ``hit_rate`` = share of positive returns among non-zero returns;
- ``skew`` and ``kurtosis`` (not excess) of r, which the deflated Sharpe ratio needs.

Metrics that need more than 2 returns (or a non-zero deviation) are NaN, never a made-up zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from dea.metrics.sharpe import deflated_sharpe_ratio, null_trials_sharpe_variance

NAN = float("nan")


def _drawdown(r: np.ndarray) -> tuple[float, int]:
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peak = np.maximum.accumulate(wealth)
    dd = 1.0 - wealth / peak
    under = dd > 0
    longest = run = 0
    for u in under[1:]:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return float(dd.max()), int(longest)


def return_metrics(returns: np.ndarray, periods_per_year: float) -> dict[str, float]:
    """Metrics that depend on the net return series only."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("returns contain NaN/inf; metrics need a complete return series")
    n = len(r)
    ppy = float(periods_per_year)
    out: dict[str, float] = {"n_periods": float(n), "periods_per_year": ppy}
    if n == 0:
        return out
    total = float(np.prod(1.0 + r) - 1.0)
    out["total_return"] = total
    out["annual_return"] = (1.0 + total) ** (ppy / n) - 1.0 if total > -1.0 else -1.0
    mean = float(r.mean())
    sd = float(r.std(ddof=1)) if n > 1 else NAN
    out["annual_vol"] = sd * math.sqrt(ppy) if n > 1 else NAN
    out["sharpe"] = mean / sd * math.sqrt(ppy) if n > 1 and sd > 0 else NAN
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    out["sortino"] = mean / downside * math.sqrt(ppy) if downside > 0 else NAN
    mdd, dur = _drawdown(r)
    out["max_drawdown"] = mdd
    out["max_drawdown_duration"] = float(dur)
    out["max_drawdown_duration_days"] = dur * 365.25 / ppy
    out["calmar"] = out["annual_return"] / mdd if mdd > 0 else NAN
    for level in (95, 99):
        q = float(np.quantile(r, 1 - level / 100.0))
        out[f"var_{level}"] = -q
        out[f"es_{level}"] = -float(r[r <= q].mean())
    nonzero = r[r != 0]
    out["hit_rate"] = float((nonzero > 0).mean()) if len(nonzero) else NAN
    if n > 2 and sd > 0:
        z = (r - mean) / float(r.std(ddof=0))
        out["skew"] = float(np.mean(z**3))
        out["kurtosis"] = float(np.mean(z**4))
    else:
        out["skew"] = out["kurtosis"] = NAN
    return out


def compute_metrics(
    result_or_returns: Any,
    periods_per_year: float | None = None,
    *,
    n_trials: int | None = None,
    trials_sharpe_variance: float | None = None,
) -> dict[str, float]:
    """All metrics of a backtest result (or of a bare net return array).

    With ``n_trials`` (configurations tried) and ``trials_sharpe_variance`` (variance of their
    *annualised* Sharpe ratios), adds ``deflated_sharpe`` (probability that the true Sharpe is
    above what the best of that many unskilled trials would show) and ``sharpe_threshold``.
    Without ``trials_sharpe_variance`` the variance of an unskilled trial's Sharpe estimate is used
    (:func:`~dea.metrics.sharpe.null_trials_sharpe_variance`).
    """
    res = result_or_returns
    is_result = hasattr(res, "returns") and hasattr(res, "exposures")
    returns = res.returns if is_result else np.asarray(res, dtype=np.float64)
    if periods_per_year is None:
        if not is_result:
            raise ValueError("periods_per_year is required for a bare return series")
        periods_per_year = res.periods_per_year
    out = return_metrics(returns, periods_per_year)
    ppy = float(periods_per_year)
    if n_trials is not None:
        n = int(out["n_periods"])
        sr = out.get("sharpe", NAN) / math.sqrt(ppy)
        var = null_trials_sharpe_variance(n) if trials_sharpe_variance is None else trials_sharpe_variance / ppy
        dsr, sr0 = deflated_sharpe_ratio(
            sr, n_trials=n_trials, trials_sharpe_variance=var, n_obs=n,
            skew=out.get("skew", 0.0), kurtosis=out.get("kurtosis", 3.0), return_threshold=True,
        )
        out["deflated_sharpe"] = dsr
        out["sharpe_threshold"] = sr0 * math.sqrt(ppy)
    if is_result:
        out.update(_result_metrics(res, ppy))
    return out


def _result_metrics(res: Any, ppy: float) -> dict[str, float]:
    out: dict[str, float] = {}
    n = max(len(res.returns), 1)
    out["final_equity"] = float(res.final_equity)
    out["turnover"] = float(np.sum(res.turnover))
    out["turnover_annual"] = float(np.mean(res.turnover) * ppy) if len(res.turnover) else NAN
    costs: Mapping[str, np.ndarray] = res.costs
    total_cost = 0.0
    for kind, series in costs.items():
        c = float(np.sum(series))
        out[f"cost_{kind}"] = c
        out[f"cost_{kind}_annual"] = c / n * ppy
        total_cost += c
    out["cost_total"] = total_cost
    out["gross_return_sum"] = float(np.sum(res.gross_returns))
    expo = np.asarray(res.exposures)
    if expo.size:
        gross = np.abs(expo).sum(axis=1)
        net = expo.sum(axis=1)
        out["exposure_gross_mean"] = float(gross.mean())
        out["exposure_gross_max"] = float(gross.max())
        out["exposure_net_mean"] = float(net.mean())
        out["exposure_net_abs_mean"] = float(np.abs(net).mean())
        out["time_in_market"] = float((gross > 0).mean())
        for j, sym in enumerate(res.instruments):
            out[f"exposure_mean.{sym}"] = float(expo[:, j].mean())
    out["margin_use_max"] = float(np.max(res.margin_use)) if len(res.margin_use) else NAN
    out["liquidations"] = float(sum(1 for e in res.events if e.kind == "liquidation"))
    for rule, count in res.interventions.items():
        out[f"interventions.{rule}"] = float(count)
    out["interventions_total"] = float(sum(res.interventions.values()))
    return out


def normal_cdf(x: float) -> float:
    return NormalDist().cdf(x)
