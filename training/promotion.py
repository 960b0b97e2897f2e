"""The champion/challenger promotion rule, on its own so it can be read and tested in isolation.

A challenger replaces the champion only if, on the same most recent out-of-sample window with
the same costs and risk engine, it (1) has a finite value of the configured metric, (2) breached
no hard risk limit, (3) stayed within the hard drawdown limit, (4) passed every stress scenario
(zero breaches, drawdown within the stress limit) when the stress gate is on, and (5) beats the
champion by more than ``retrain.margin`` on the metric. Every refusal names the rule that failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dea.config.retrain import RetrainConfig
from dea.stress.metrics import StressResult


@dataclass(frozen=True)
class ModelScore:
    """One model's evaluation on the shared out-of-sample window (and stress scenarios)."""

    label: str
    metrics: Mapping[str, float]
    breaches: int = 0
    max_drawdown: float = 0.0
    stress: Sequence[StressResult] = field(default_factory=tuple)

    def value(self, metric: str) -> float:
        v = self.metrics.get(metric)
        return float("nan") if v is None else float(v)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str
    champion_value: float
    challenger_value: float
    improvement: float  # in the metric's "better" direction (positive = challenger better)


def gate_failures(score: ModelScore, *, dd_limit: float, stress_gate: bool, stress_dd_limit: float) -> list[str]:
    """Risk reasons why ``score`` may not trade (empty: it may)."""
    out = []
    if score.breaches:
        out.append(f"{score.label} breached hard risk limits {score.breaches} time(s) out of sample")
    if score.max_drawdown > dd_limit:
        out.append(f"{score.label} drew down {score.max_drawdown:.2%} out of sample, beyond the hard limit {dd_limit:.2%}")
    if stress_gate:
        for s in score.stress:
            if s.breaches:
                out.append(f"{score.label} breached hard limits {s.breaches} time(s) in stress scenario {s.scenario!r}")
            if s.max_drawdown > stress_dd_limit:
                out.append(
                    f"{score.label} drew down {s.max_drawdown:.2%} in stress scenario {s.scenario!r}, beyond {stress_dd_limit:.2%}"
                )
    return out


def decide(
    champion: ModelScore | None,
    challenger: ModelScore,
    cfg: RetrainConfig,
    *,
    dd_limit: float,
    stress_dd_limit: float | None = None,
) -> Decision:
    """Apply the promotion rule (see the module docstring)."""
    metric = cfg.metric
    sign = 1.0 if cfg.direction == "maximize" else -1.0
    chal = challenger.value(metric)
    champ = champion.value(metric) if champion is not None else float("nan")
    improvement = sign * (chal - champ) if champion is not None else float("nan")

    def keep(reason: str) -> Decision:
        return Decision(False, reason, metric, champ, chal, improvement)

    if not math.isfinite(chal):
        return keep(f"challenger has no finite {metric!r} (got {chal}); kept the champion")
    failures = gate_failures(
        challenger, dd_limit=dd_limit, stress_gate=cfg.stress_gate, stress_dd_limit=stress_dd_limit if stress_dd_limit is not None else dd_limit
    )
    if failures:
        return keep("; ".join(failures) + "; kept the champion")
    if champion is None:
        return Decision(True, f"no champion yet: challenger ({metric} {chal:.4g}) passes every risk gate", metric, champ, chal, improvement)
    if not math.isfinite(champ):
        return Decision(True, f"champion has no finite {metric!r} on the window; challenger {chal:.4g} passes every gate", metric, champ, chal, improvement)
    if improvement > cfg.margin:
        return Decision(
            True,
            f"challenger {metric} {chal:.4g} beats champion {champ:.4g} by {improvement:.4g} > margin {cfg.margin:g}",
            metric, champ, chal, improvement,
        )
    return keep(
        f"challenger {metric} {chal:.4g} vs champion {champ:.4g}: improvement {improvement:.4g} is not above "
        f"margin {cfg.margin:g}; kept the champion"
    )
