"""Rolling re-estimation of the risk engine's volatility parameter and its reliability report.

The risk engine sizes by an EWMA volatility with half-life ``risk.vol_target.halflife``.
:func:`choose_halflife` re-estimates that half-life on a fitting window (lowest QLIKE);
:func:`calibration_report` then scores, on a *later* out-of-sample window, the configured
EWMA, the re-estimated EWMA and a rolling GARCH(1,1): forecast-vs-realised volatility and the
coverage of the Gaussian and filtered-historical VaR they imply (Kupiec, Christoffersen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dea.calibration.reliability import VarCoverage, VolReliability, normal_var_es, var_coverage, vol_reliability
from dea.calibration.vol import ewma_variance, rolling_garch_variance
from dea.errors import DataError


def qlike(forecast_var: np.ndarray, returns: np.ndarray) -> float:
    """Mean QLIKE loss of one-step variance forecasts (lower is better; robust to noisy r**2)."""
    f = np.asarray(forecast_var)
    r2 = np.asarray(returns) ** 2
    ok = np.isfinite(f) & (f > 0)
    return float(np.mean(r2[ok] / f[ok] + np.log(f[ok])))


@dataclass(frozen=True)
class HalflifeChoice:
    best: float
    losses: dict[float, float]


def choose_halflife(returns: np.ndarray, candidates: Sequence[float] = (5, 10, 20, 40, 80, 160)) -> HalflifeChoice:
    """The EWMA half-life (in steps) with the lowest QLIKE on ``returns`` (skip the warm-up)."""
    r = np.asarray(returns, dtype=np.float64)
    warm = int(max(candidates))
    if r.size < 2 * warm:
        raise DataError(f"choosing a half-life among {list(candidates)} needs >= {2 * warm} returns, got {r.size}")
    losses = {float(h): qlike(ewma_variance(r, h)[warm:], r[warm:]) for h in candidates}
    return HalflifeChoice(min(losses, key=losses.__getitem__), losses)


def filtered_hs_var(returns: np.ndarray, var: np.ndarray, level: float, window: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Filtered historical simulation: VaR/ES = sigma_t x the empirical tail of the trailing
    ``window`` standardised returns (re-estimated every ``every`` steps; NaN before ``window``)."""
    r = np.asarray(returns, dtype=np.float64)
    sigma = np.sqrt(var)
    z = r / sigma
    v = np.full_like(r, np.nan)
    e = np.full_like(r, np.nan)
    for start in range(window, r.size, every):
        past = z[start - window : start]
        past = past[np.isfinite(past)]
        if past.size < max(50, window // 2):  # the variance forecast has not started yet
            continue
        q = np.quantile(past, 1 - level)
        tail = past[past <= q]
        end = min(r.size, start + every)
        v[start:end] = -q * sigma[start:end]
        e[start:end] = -tail.mean() * sigma[start:end]
    return v, e


@dataclass(frozen=True)
class MethodReport:
    name: str
    vol: VolReliability
    var: dict[str, VarCoverage] = field(default_factory=dict)  # "normal@0.99" -> coverage


@dataclass(frozen=True)
class CalibrationReport:
    series: str
    n_fit: int
    n_oos: int
    configured_halflife: float
    halflife: HalflifeChoice
    methods: tuple[MethodReport, ...]


def calibration_report(
    returns: np.ndarray,
    *,
    series: str = "returns",
    configured_halflife: float = 20,
    fit_share: float = 0.5,
    levels: Sequence[float] = (0.95, 0.99),
    garch_window: int = 1000,
    refit_every: int = 250,
    candidates: Sequence[float] = (5, 10, 20, 40, 80, 160),
) -> CalibrationReport:
    """Fit on the first ``fit_share`` of ``returns``, score everything on the rest.

    Forecasts are computed over the whole series (each uses only the past) and scored only on
    the out-of-sample part, so the re-estimated half-life never saw the returns it is judged on.
    """
    r = np.asarray(returns, dtype=np.float64)
    if not np.isfinite(r).all():
        raise DataError(f"{series}: returns contain NaN/inf; clean them before calibrating")
    split = int(fit_share * r.size)
    if split < 2 * max(candidates) or r.size - split < 200:
        raise DataError(f"{series}: {r.size} returns are too few to fit on {split} and score the rest")
    choice = choose_halflife(r[:split], candidates)
    forecasts = {
        f"ewma(hl={configured_halflife:g})": ewma_variance(r, configured_halflife),
        f"ewma(hl={choice.best:g}, re-estimated)": ewma_variance(r, choice.best),
        f"garch11(rolling {garch_window}/{refit_every})": rolling_garch_variance(r, min(garch_window, split), refit_every),
    }
    oos = slice(split, None)
    methods = []
    for name, v in forecasts.items():
        cover: dict[str, VarCoverage] = {}
        for level in levels:
            nv, ne = normal_var_es(np.sqrt(v), level)
            cover[f"normal@{level:g}"] = var_coverage(r[oos], nv[oos], ne[oos], level)
            hv, he = filtered_hs_var(r, v, level, min(garch_window, split), refit_every)
            cover[f"fhs@{level:g}"] = var_coverage(r[oos], hv[oos], he[oos], level)
        methods.append(MethodReport(name, vol_reliability(v[oos], r[oos]), cover))
    return CalibrationReport(series, split, r.size - split, configured_halflife, choice, tuple(methods))


def format_calibration(rep: CalibrationReport) -> str:
    """Plain-text reliability report."""
    lines = [
        f"calibration of {rep.series}: fit on {rep.n_fit} returns, scored out of sample on {rep.n_oos}",
        f"EWMA half-life: configured {rep.configured_halflife:g}, re-estimated {rep.halflife.best:g} "
        f"(QLIKE on the fit window: " + ", ".join(f"{h:g}: {q:.4f}" for h, q in rep.halflife.losses.items()) + ")",
        "",
        f"{'method':<34} {'slope':>6} {'icpt':>9} {'R2':>6} {'real/fc':>7} {'qlike':>7}",
    ]
    for m in rep.methods:
        v = m.vol
        lines.append(f"{m.name:<34} {v.slope:>6.2f} {v.intercept:>9.2e} {v.r2:>6.3f} {v.ratio:>7.3f} {v.qlike:>7.3f}")
    lines += ["", f"{'method':<34} {'VaR':<12} {'hits':>6} {'expect':>8} {'kupiec_p':>9} {'indep_p':>8} {'ES ratio':>8}"]
    for m in rep.methods:
        for key, c in m.var.items():
            flag = "  REJECTED" if c.rejected else ""
            lines.append(
                f"{m.name:<34} {key:<12} {c.exceedances:>6d} {c.expected:>8.1f} {c.kupiec_p:>9.3g} "
                f"{c.independence_p:>8.3g} {c.es_ratio:>8.2f}{flag}"
            )
    return "\n".join(lines)
