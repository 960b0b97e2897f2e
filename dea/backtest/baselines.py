"""Baseline allocators: the bar a learned policy must clear, run on the same engine and costs.

Each baseline is ``fn(panel, cfg: BaselineConfig) -> targets [T, N]``. A row t uses only panel
rows <= t (values available at t; tested by truncating the panel), and NaN means "hold the
current exposure" (so a periodic rebalancer lets positions drift between rebalances instead of
trading every step; run them with ``backtest(..., hold_nan=True)``). Rebalance and refit times
are anchored at the first clock row. Instruments without a price at t get no new weight.

- ``buy_and_hold``: exposure 1 in the benchmark instrument from its first price on, then held;
- ``equal_weight``: 1/n over priced instruments at every rebalance;
- ``inverse_vol``: weights proportional to 1/volatility (``vol_lookback``), gross 1;
- ``tsmom``: sign of the ``momentum_lookback`` return, sized to ``target_vol`` / instrument vol / n;
- ``hrp``: skfolio ``HierarchicalRiskParity`` refitted every ``refit`` on the last ``fit_lookback``;
- ``mean_risk``: skfolio ``MeanRisk`` (minimum variance, or maximum Sharpe ratio), same refits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dea.backtest.config import BaselineConfig
from dea.data.panel import Panel
from dea.errors import ConfigError, DataError
from dea.timeutil import NS_PER_YEAR, parse_duration

BaselineFn = Callable[[Panel, BaselineConfig], np.ndarray]


def _steps(duration: str, panel: Panel, name: str, minimum: int = 1) -> int:
    n = int(round(parse_duration(duration) / panel.step_ns))
    if n < minimum:
        raise ConfigError(f"backtest.baseline.{name} ({duration}) is shorter than {minimum} clock step(s) of the panel")
    return n


def _price(panel: Panel) -> np.ndarray:
    if "price" not in panel.fields:
        raise DataError("panel has no 'price' field; baselines need execution prices")
    return np.asarray(panel.fields["price"], dtype=np.float64)


def _log_returns(price: np.ndarray) -> np.ndarray:
    r = np.full(price.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = np.log(price[1:] / price[:-1])
    return r


def _rolling_std(x: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """Causal rolling std (ddof=1) of the finite values in rows (t - window, t]."""
    finite = np.isfinite(x)
    v = np.where(finite, x, 0.0)
    c = np.cumsum(finite, axis=0, dtype=np.float64)
    s1 = np.cumsum(v, axis=0)
    s2 = np.cumsum(v * v, axis=0)
    for a in (c, s1, s2):
        a[window:] = a[window:] - a[:-window].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / c) / (c - 1)
    var[c < max(min_count, 2)] = np.nan
    return np.sqrt(np.maximum(var, 0.0))


def _rebalance_rows(T: int, every: int) -> np.ndarray:
    rows = np.zeros(T, dtype=bool)
    rows[::every] = True
    return rows


def _cap(w: np.ndarray, cap: float) -> np.ndarray:
    return np.clip(w, -cap, cap)


def benchmark_index(panel: Panel, cfg: BaselineConfig, bases: dict[str, str] | None = None) -> int:
    """Index of the buy-and-hold instrument: configured, else the first BTC one, else the first."""
    symbols = list(panel.instruments)
    if cfg.benchmark is not None:
        if cfg.benchmark not in symbols:
            raise ConfigError(f"backtest.baseline.benchmark {cfg.benchmark!r} is not an instrument of the panel {symbols}")
        return symbols.index(cfg.benchmark)
    for j, s in enumerate(symbols):
        base = (bases or {}).get(s, "")
        if base.upper() in ("BTC", "XBT") or s.upper().startswith(("BTC", "XBT")):
            return j
    return 0


def buy_and_hold(panel: Panel, cfg: BaselineConfig) -> np.ndarray:
    price = _price(panel)
    T, N = price.shape
    j = benchmark_index(panel, cfg)
    out = np.full((T, N), np.nan)
    priced = np.flatnonzero(np.isfinite(price[:, j]))
    first = int(priced[0]) if len(priced) else T
    out[:first] = 0.0
    if first < T:
        out[first] = 0.0
        out[first, j] = min(1.0, cfg.max_weight)
    return out


def equal_weight(panel: Panel, cfg: BaselineConfig) -> np.ndarray:
    price = _price(panel)
    T, N = price.shape
    reb = _rebalance_rows(T, _steps(cfg.rebalance, panel, "rebalance"))
    avail = np.isfinite(price)
    n = avail.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(avail, 1.0 / np.maximum(n, 1), 0.0)
    w = _cap(w, cfg.max_weight)
    return np.where(reb[:, None], w, np.nan)


def inverse_vol(panel: Panel, cfg: BaselineConfig) -> np.ndarray:
    price = _price(panel)
    T, N = price.shape
    look = _steps(cfg.vol_lookback, panel, "vol_lookback", 2)
    sigma = _rolling_std(_log_returns(price), look, look // 2)
    ok = np.isfinite(price) & (sigma > 0)
    inv = np.where(ok, 1.0 / np.where(ok, sigma, 1.0), 0.0)
    tot = inv.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(tot > 0, inv / np.where(tot > 0, tot, 1.0), 0.0)
    w = _cap(w, cfg.max_weight)
    reb = _rebalance_rows(T, _steps(cfg.rebalance, panel, "rebalance"))
    return np.where(reb[:, None], w, np.nan)


def tsmom(panel: Panel, cfg: BaselineConfig) -> np.ndarray:
    price = _price(panel)
    T, N = price.shape
    look = _steps(cfg.momentum_lookback, panel, "momentum_lookback")
    vlook = _steps(cfg.vol_lookback, panel, "vol_lookback", 2)
    sigma = _rolling_std(_log_returns(price), vlook, vlook // 2) * np.sqrt(NS_PER_YEAR / panel.step_ns)
    mom = np.full((T, N), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mom[look:] = np.log(price[look:] / price[:-look])
    ok = np.isfinite(mom) & (sigma > 0) & np.isfinite(price)
    n = np.maximum(ok.sum(axis=1, keepdims=True), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(ok, np.sign(mom) * cfg.target_vol / np.where(ok, sigma, 1.0) / n, 0.0)
    w = _cap(w, cfg.max_weight)
    reb = _rebalance_rows(T, _steps(cfg.rebalance, panel, "rebalance"))
    return np.where(reb[:, None], w, np.nan)


def _skfolio_baseline(panel: Panel, cfg: BaselineConfig, make_model: Callable[[], object]) -> np.ndarray:
    price = _price(panel)
    T, N = price.shape
    refit = _steps(cfg.refit, panel, "refit")
    look = _steps(cfg.fit_lookback, panel, "fit_lookback", 2)
    min_rows = max(20, look // 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        simple = np.full((T, N), np.nan)
        simple[1:] = price[1:] / price[:-1] - 1.0
    out = np.full((T, N), np.nan)
    out[0] = 0.0
    for t in range(0, T, refit):
        window = simple[max(1, t - look + 1): t + 1]
        cols = [j for j in range(N) if np.isfinite(price[t, j]) and len(window) and np.isfinite(window[:, j]).all()]
        w = np.zeros(N)
        if len(window) >= min_rows and cols:
            if len(cols) == 1:
                w[cols[0]] = 1.0
            else:
                model = make_model()
                model.fit(window[:, cols])  # type: ignore[attr-defined]
                w[cols] = np.asarray(model.weights_, dtype=np.float64)  # type: ignore[attr-defined]
        out[t] = _cap(w, cfg.max_weight)
    return out


def hrp(panel: Panel, cfg: BaselineConfig) -> np.ndarray:
    from skfolio.optimization import HierarchicalRiskParity

    return _skfolio_baseline(panel, cfg, HierarchicalRiskParity)


def mean_risk(panel: Panel, cfg: BaselineConfig) -> np.ndarray:
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    objective = (ObjectiveFunction.MINIMIZE_RISK if cfg.mean_risk_objective == "min_risk"
                 else ObjectiveFunction.MAXIMIZE_RATIO)
    return _skfolio_baseline(panel, cfg, lambda: MeanRisk(objective_function=objective))


BASELINES: dict[str, BaselineFn] = {
    "buy_and_hold": buy_and_hold,
    "equal_weight": equal_weight,
    "inverse_vol": inverse_vol,
    "tsmom": tsmom,
    "hrp": hrp,
    "mean_risk": mean_risk,
}


def baseline_targets(name: str, panel: Panel, cfg: BaselineConfig | None = None) -> np.ndarray:
    """Targets of baseline ``name`` (NaN = hold); unknown names are a ConfigError."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; available: {sorted(BASELINES)}")
    return BASELINES[name](panel, cfg or BaselineConfig())


def targets_from(targets: np.ndarray, start: int) -> np.ndarray:
    """Rows ``start:`` of hold-NaN targets for a backtest that starts flat at ``start``: the first
    row takes, per instrument, the last decision made at or before ``start`` (0 if none), so a
    position decided earlier (buy-and-hold's entry, the last refit) is entered, not held at zero."""
    out = np.array(targets[start:], dtype=np.float64, copy=True)
    if len(out) == 0:
        return out
    head = np.asarray(targets[: start + 1], dtype=np.float64)
    for j in range(out.shape[1]):
        decided = np.flatnonzero(np.isfinite(head[:, j]))
        out[0, j] = head[decided[-1], j] if len(decided) else 0.0
    return out
