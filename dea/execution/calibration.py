"""Cost calibration from fills: fit the cost model's half spread and square-root impact
coefficient from journaled parent orders and from the trades of a capture, with confidence
intervals, and write them as a config fragment that the backtest and training load.

Why: the backtest charges ``half_spread_bps`` and ``k * sigma * sqrt(notional / ADV)``
(DESIGN.md); until those numbers come from real executions, a policy is trained against costs
nobody measured. This closes the loop from trading experience back into the model.

Estimators (one observation per fill or per parent; all in fractions of price):

- half spread: the mean of ``s * (touch - mid) / mid`` over taker fills (or, for capture
  trades, the half quoted spread ``(ask - bid) / 2 / mid`` just before each aggressor trade),
  weighted equally; CI from the t distribution of the mean;
- impact: ``y = k * x`` through the origin, with ``x = sigma * sqrt(notional / ADV)`` (sigma the
  per-step volatility of the mid, ADV the mean traded notional per step — the same ratio at any
  step) and ``y`` what the square-root term must explain: for a parent, its shortfall less fees
  and spread, over its arrival notional; for a capture trade (grouped by time and side), the
  signed mid move from just before it to ``horizon`` after. ``k = sum xy / sum x^2``, standard
  error from the residuals, CI from the t distribution with n - 1 degrees of freedom.

The fragment is YAML ``{costs: {half_spread_bps, impact: {model: sqrt, k}}}`` with the
estimates, their intervals and sample sizes in a comment header; ``execution.cost_fragment``
names it and :func:`merge_cost_fragment` applies it when a config is loaded.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dea.errors import ConfigError, DataError
from dea.execution.quality import ParentRecord, shortfall


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float
    n: int

    def describe(self, unit: str = "") -> str:
        return f"{self.value:.6g}{unit} (95% CI {self.lo:.6g} .. {self.hi:.6g}, n={self.n})"


@dataclass(frozen=True)
class CostCalibration:
    half_spread_bps: Estimate
    impact_k: Estimate
    sigma: float  # per-step mid volatility used for x
    adv: float  # mean traded notional per step used for x
    step_s: float
    source: str

    def fragment(self) -> dict[str, Any]:
        return {"costs": {"half_spread_bps": round(self.half_spread_bps.value, 6),
                          "impact": {"model": "sqrt", "k": round(max(self.impact_k.value, 0.0), 6)}}}

    def write(self, path: str | Path) -> Path:
        """Write the fragment (YAML) with the intervals in its header."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        head = [
            "# DEA cost calibration (dea.execution.calibration) -- generated, do not edit by hand",
            f"# source: {self.source}",
            f"# half_spread_bps: {self.half_spread_bps.describe(' bps')}",
            f"# impact k: {self.impact_k.describe()}",
            f"# sigma per {self.step_s:g}s step: {self.sigma:.6g}; ADV per step: {self.adv:.6g} (quote currency)",
        ]
        p.write_text("\n".join(head) + "\n" + yaml.safe_dump(self.fragment(), sort_keys=True), encoding="utf-8")
        return p


def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean with a t-distribution confidence interval."""
    from scipy import stats

    x = np.asarray([v for v in values if v == v], dtype=np.float64)
    n = len(x)
    if n < 2:
        raise DataError(f"need at least 2 observations for a confidence interval, got {n}")
    m = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(n))
    t = float(stats.t.ppf(0.5 + level / 2, n - 1))
    return Estimate(m, m - t * se, m + t * se, n)


def origin_fit(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> Estimate:
    """Least squares of y = k x through the origin, with a t confidence interval for k."""
    from scipy import stats

    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = len(xa)
    sxx = float(np.dot(xa, xa))
    if n < 2 or sxx <= 0.0:
        raise DataError(f"impact fit needs at least 2 observations with a positive regressor (got {n})")
    k = float(np.dot(xa, ya) / sxx)
    resid = ya - k * xa
    se = math.sqrt(float(np.dot(resid, resid)) / (n - 1) / sxx)
    t = float(stats.t.ppf(0.5 + level / 2, n - 1))
    return Estimate(k, k - t * se, k + t * se, n)


def step_stats(times: Sequence[int], mids: Sequence[float], trade_times: Sequence[int], trade_notional: Sequence[float],
               step_ns: int) -> tuple[float, float]:
    """(sigma, ADV) per ``step_ns``: std of log mid returns sampled every step, mean traded
    notional per step."""
    t = np.asarray(times, dtype=np.int64)
    m = np.asarray(mids, dtype=np.float64)
    if len(t) < 3:
        raise DataError("need a mid path to estimate volatility")
    grid = np.arange(t[0], t[-1], step_ns)
    idx = np.searchsorted(t, grid, side="right") - 1
    r = np.diff(np.log(m[idx]))
    if len(r) < 2:
        raise DataError(f"the mid path spans fewer than 3 steps of {step_ns} ns")
    sigma = float(np.sqrt(np.mean(r**2)))
    span = (t[-1] - t[0]) / step_ns
    adv = float(np.sum(trade_notional) / span) if span > 0 else math.nan
    return sigma, adv


def from_parents(records: Sequence[ParentRecord], sigma: float, adv: float, step_s: float, source: str) -> CostCalibration:
    """Fit from journaled parents (taker fills give the spread; parents the impact)."""
    hs = [(1.0 if f.qty > 0 else -1.0) * (f.touch - f.mid) / f.mid * 1e4 for r in records for f in r.fills if not f.maker]
    xs, ys = [], []
    for r in records:
        sf = shortfall(r)
        if sf.filled <= 0:
            continue
        xs.append(sigma * math.sqrt(sf.notional / adv))
        ys.append((sf.total - sf.fees - sf.spread) / sf.notional)
    return CostCalibration(mean_ci(hs), origin_fit(xs, ys), sigma, adv, step_s, source)


def from_capture_trades(
    times: Sequence[int], mids: Sequence[float], bids: Sequence[float], asks: Sequence[float],
    trade_times: Sequence[int], trade_px: Sequence[float], trade_sz: Sequence[float], trade_side: Sequence[int],
    *, step_ns: int = 1_000_000_000, horizon_ns: int = 1_000_000_000, source: str = "capture",
) -> CostCalibration:
    """Fit from the aggressor trades of a capture (others' market orders, grouped by time and side)."""
    tn = [p * q for p, q in zip(trade_px, trade_sz, strict=True)]
    sigma, adv = step_stats(times, mids, trade_times, tn, step_ns)
    groups: dict[tuple[int, int], float] = {}
    for ts, n, s in zip(trade_times, tn, trade_side, strict=True):
        groups[(int(ts), int(s))] = groups.get((int(ts), int(s)), 0.0) + n
    hs, xs, ys = [], [], []
    for (ts, s), notional in sorted(groups.items()):
        j = bisect_left(times, ts) - 1  # the book just before the trade was received
        k = bisect_right(times, ts + horizon_ns) - 1
        if j < 0 or k >= len(times) or k <= j:
            continue
        m0 = mids[j]
        hs.append((asks[j] - bids[j]) / 2 / m0 * 1e4)
        xs.append(sigma * math.sqrt(notional / adv))
        ys.append(s * (mids[k] - m0) / m0)
    return CostCalibration(mean_ci(hs), origin_fit(xs, ys), sigma, adv, step_ns / 1e9, source)


def merge_cost_fragment(raw: dict[str, Any], base_dir: Path) -> None:
    """Apply ``execution.cost_fragment`` (if set) to a raw config mapping: its ``costs`` keys
    replace the config's (the fragment is the measured truth; ``--set`` overrides still win)."""
    ex = raw.get("execution")
    name = ex.get("cost_fragment") if isinstance(ex, dict) else None
    if not name:
        return
    path = Path(name).expanduser()
    path = path if path.is_absolute() else (base_dir / path)
    if not path.is_file():
        raise ConfigError(f"execution.cost_fragment: {path} not found")
    try:
        frag = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(frag, dict) or set(frag) != {"costs"} or not isinstance(frag["costs"], dict):
        raise ConfigError(f"{path}: a cost fragment holds exactly one mapping, 'costs'")
    costs = raw.setdefault("costs", {})
    if not isinstance(costs, dict):
        raise ConfigError("costs must be a mapping")
    for key, value in frag["costs"].items():
        if isinstance(value, dict) and isinstance(costs.get(key), dict):
            costs[key] = {**costs[key], **value}
        else:
            costs[key] = value
