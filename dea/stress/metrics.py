"""What a stress replay reports: PnL, drawdown, VaR/ES, hard-limit breaches, kill switches and
time to de-risk, computed from the per-step record of a replay (numpy only).

Hard limits are checked on what the loop *ordered* after the risk engine (per-instrument cap,
gross, net, leverage), never on exposure that drifted with prices between decisions — a price
move is not a decision. A drawdown beyond ``drawdown.hard`` while the kill switch is not engaged
counts as a breach too: it means the loop kept trading through its last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dea.errors import DataError

LIMIT_TOL = 1e-9


@dataclass(frozen=True)
class ReplayRecord:
    """Per-decision record of one replay. Shapes [T] or [T, N].

    ``equity``: account equity after the step; ``ordered``: exposure the loop sent after risk;
    ``held``: exposure actually held after fills; ``halted``: kill switch engaged after the step.
    """

    clock: np.ndarray
    equity: np.ndarray
    ordered: np.ndarray
    held: np.ndarray
    halted: np.ndarray
    rejected_orders: int = 0
    fallbacks: int = 0


@dataclass(frozen=True)
class Limits:
    caps: np.ndarray  # [N]
    max_gross: float
    max_net: float
    max_leverage: float
    dd_hard: float | None


@dataclass(frozen=True)
class StressResult:
    scenario: str
    pnl: float  # equity change over the scored window, fraction of starting equity
    max_drawdown: float  # positive fraction
    var: float  # historical VaR of step returns (positive loss) at ``level``
    es: float
    level: float
    breaches: int
    breach_detail: tuple[str, ...]
    kill_switches: int
    time_to_derisk_s: float  # NaN: never de-risked (or nothing to de-risk)
    rejected_orders: int
    fallbacks: int
    steps: int

    def row(self) -> dict[str, float | int | str]:
        return {
            "scenario": self.scenario,
            "pnl": self.pnl,
            "max_dd": self.max_drawdown,
            f"var{self.level:g}": self.var,
            f"es{self.level:g}": self.es,
            "breaches": self.breaches,
            "kill_switches": self.kill_switches,
            "time_to_derisk_s": self.time_to_derisk_s,
            "rejected": self.rejected_orders,
            "fallbacks": self.fallbacks,
        }


def max_drawdown(equity: np.ndarray) -> float:
    e = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(e)
    return float(np.max(1 - e / peak)) if e.size else 0.0


def historical_var_es(returns: np.ndarray, level: float) -> tuple[float, float]:
    """Historical VaR and ES (positive loss fractions) of step returns at ``level``."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    q = np.quantile(r, 1 - level)
    tail = r[r <= q]
    return float(-q), float(-tail.mean())


def limit_breaches(
    ordered: np.ndarray, limits: Limits, equity: np.ndarray, halted: np.ndarray, tol: float = LIMIT_TOL
) -> list[str]:
    """Every hard-limit violation, one line each (step index and what was exceeded)."""
    w = np.asarray(ordered, dtype=np.float64)
    out: list[str] = []
    over_cap = np.abs(w) > limits.caps + tol
    for t, i in zip(*np.nonzero(over_cap)):
        out.append(f"step {t}: |w[{i}]| {abs(w[t, i]):.6g} > cap {limits.caps[i]:.6g}")
    gross = np.abs(w).sum(axis=1)
    net = np.abs(w.sum(axis=1))
    for name, value, lim in (("gross", gross, limits.max_gross), ("net", net, limits.max_net), ("leverage", gross, limits.max_leverage)):
        for t in np.flatnonzero(value > lim + tol):
            out.append(f"step {t}: {name} {value[t]:.6g} > {lim:.6g}")
    if limits.dd_hard is not None:
        e = np.asarray(equity, dtype=np.float64)
        dd = 1 - e / np.maximum.accumulate(e)
        for t in np.flatnonzero((dd > limits.dd_hard + 1e-6) & ~np.asarray(halted, dtype=bool)):
            out.append(f"step {t}: drawdown {dd[t]:.4f} beyond hard limit {limits.dd_hard} without the kill switch")
    return out


def time_to_derisk(clock: np.ndarray, held: np.ndarray, start: int, level: float) -> float:
    """Seconds from ``start`` until gross held exposure is at most ``level`` × its value at
    ``start``; NaN when there was nothing to de-risk or it never happened."""
    gross = np.abs(np.asarray(held, dtype=np.float64)).sum(axis=1)
    g0 = gross[start]
    if not g0 > 1e-9:
        return float("nan")
    after = np.flatnonzero(gross[start:] <= level * g0)
    return float((clock[start + after[0]] - clock[start]) / 1e9) if after.size else float("nan")


def summarise(
    name: str,
    rec: ReplayRecord,
    limits: Limits,
    *,
    score_from: int,
    shock_start: int | None,
    level: float = 0.99,
    derisk_level: float = 0.5,
) -> StressResult:
    """Score a replay from step ``score_from`` (after warm-up) on; time to de-risk counts from
    ``shock_start`` (None: no shock, e.g. the baseline)."""
    if not 0 <= score_from < rec.equity.size:
        raise DataError(f"stress {name}: score_from {score_from} outside the {rec.equity.size}-step replay")
    eq = rec.equity[score_from:]
    step_ret = eq[1:] / eq[:-1] - 1
    var, es = historical_var_es(step_ret, level)
    breaches = limit_breaches(rec.ordered, limits, rec.equity, rec.halted)
    halted = np.asarray(rec.halted, dtype=bool)
    kills = int(np.sum(halted[1:] & ~halted[:-1]) + (1 if halted[0] else 0))
    return StressResult(
        scenario=name,
        pnl=float(eq[-1] / eq[0] - 1),
        max_drawdown=max_drawdown(eq),
        var=var,
        es=es,
        level=level,
        breaches=len(breaches),
        breach_detail=tuple(breaches[:20]),
        kill_switches=kills,
        time_to_derisk_s=(
            float("nan") if shock_start is None else time_to_derisk(rec.clock, rec.held, max(shock_start, score_from), derisk_level)
        ),
        rejected_orders=rec.rejected_orders,
        fallbacks=rec.fallbacks,
        steps=int(eq.size),
    )


def format_table(results: list[StressResult]) -> str:
    """Plain-text table of stress results (one row per scenario)."""
    head = f"{'scenario':<22} {'pnl':>8} {'max_dd':>7} {'VaR':>7} {'ES':>7} {'breach':>6} {'kills':>5} {'derisk_s':>9} {'rejects':>7} {'fallbk':>6}"
    lines = [head]
    for r in results:
        lines.append(
            f"{r.scenario:<22} {r.pnl:>8.2%} {r.max_drawdown:>7.2%} {r.var:>7.3%} {r.es:>7.3%} {r.breaches:>6d} "
            f"{r.kill_switches:>5d} {r.time_to_derisk_s:>9.0f} {r.rejected_orders:>7d} {r.fallbacks:>6d}"
        )
    lines.append(f"VaR/ES at {results[0].level:g} of step returns; breaches must be 0" if results else "no scenarios")
    return "\n".join(lines)
