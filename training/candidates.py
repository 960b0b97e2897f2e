"""Nested selection among configured candidate policies, on validation blocks only.

``training.candidates`` lists config overrides (dotted keys under ``model.``, ``objective.`` or
``training.``); each is a candidate. In every walk-forward fold each candidate is trained on the
fold's fit block and scored on its validation block (net Sharpe after fees, impact and funding,
through the same rollout the live loop runs); the fold's out-of-sample rollout uses the candidate
chosen there: by default (``training.selection_rule: one_se``) the least complex candidate whose
Sharpe is within one standard error of the best one's, because a validation block of a few months
cannot tell Sharpe ratios apart by less than about one unit and the noise would otherwise buy the
most flexible model (``best`` takes the highest score). The test block is never looked at, so the choice is honest; the number of
candidates enters the deflated Sharpe as the number of trials. The default (``candidates: null``)
is the configured model, the two-stage forecast policy (``model.kind: forecast``, when the policy
is volatility-sized; over the base and, when there is one, also without it) and the base alone
(``model.kind: base``, when there is one): a learned adjustment that does not validate better than
a ridge forecast or than its base is not used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dea.config.experiment import ExperimentConfig
from dea.errors import ConfigError
from training.datamodule import TrainingData
from training.splits import Fold

_ALLOWED = ("model.", "objective.", "training.")
_FORBIDDEN = ("training.candidates", "training.splits", "training.test_start", "model.base.vol_lookback",
              "model.base.momentum_lookback")


#: how much a candidate fits from the data (the one-standard-error rule prefers less)
COMPLEXITY = {"base": 0.0, "forecast": 1.0, "linear": 2.0}
_MOST_COMPLEX = 3.0
#: a learned part over a base has one component more than the same part alone
_OVER_A_BASE = 0.5


def candidate_complexity(cfg: ExperimentConfig) -> float:
    """0 = the base alone, 1 = the closed-form forecast, 2 = linear, 3 = every deeper kind, plus
    0.5 when the learned part sits on a base (base and adjustment: two components where the part
    alone is one). The one-standard-error rule takes the least complex of near-equal candidates."""
    kind = cfg.model.kind
    extra = _OVER_A_BASE if kind != "base" and cfg.model.base.kind != "none" else 0.0
    return COMPLEXITY.get(kind, _MOST_COMPLEX) + extra


@dataclass(frozen=True)
class Candidate:
    """One candidate: a label for tables, its resolved config and its complexity
    (:func:`candidate_complexity`)."""

    label: str
    overrides: dict[str, Any]
    cfg: ExperimentConfig
    complexity: float = _MOST_COMPLEX


@dataclass
class Selection:
    """What nested selection did in one fold: the chosen candidate, every candidate's validation
    Sharpe, and (``one_se``) each one's standard error of its Sharpe difference to the best."""

    chosen: int
    scores: list[float] = field(default_factory=list)  # validation score per candidate
    std_errors: list[float] = field(default_factory=list)


def candidate_label(overrides: dict[str, Any]) -> str:
    """``{"model.kind": "forecast"}`` -> ``kind=forecast``: each key by its last part, or by its
    path below the section where two keys share a last part (``kind=forecast,base.kind=none``)."""
    if not overrides:
        return "configured"
    last = [k.split(".")[-1] for k in overrides]
    names = [k.split(".", 1)[-1] if last.count(n) > 1 and k.count(".") > 1 else n for k, n in zip(overrides, last)]
    return ",".join(f"{n}={v}" for n, v in zip(names, overrides.values()))


def default_candidates(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """The automatic candidate list: the configured model; the two-stage forecast policy where the
    policy sizes in volatility units (it needs the volatility feature), over the base and, where
    there is a base, also alone (volatility-sized, no base); the base alone where there is a base.
    Kinds already configured are not listed twice.

    Why the forecast without its base: a bounded adjustment over a base carries the base's risk
    whatever the signal, so where the base earns nothing (a market without a risk premium, or one
    the base is short of) the signal's Sharpe is diluted by the base's volatility; validation then
    decides between "base plus adjustment", "signal alone" and "base alone"."""
    m = cfg.model
    out: list[dict[str, Any]] = [{}]
    vol_sized = m.base.kind != "none" or m.adjust.vol_scaling
    if vol_sized and m.kind not in ("forecast", "base"):
        out.append({"model.kind": "forecast"})
    if m.base.kind != "none":
        # alone it may hold what base plus adjustment could: (1 + max_scale) base units + max_tilt
        tilt = min(5.0, round(m.adjust.max_tilt + 1.0 + m.adjust.max_scale, 6))
        out.append({"model.kind": "forecast", "model.base.kind": "none", "model.adjust.vol_scaling": True,
                    "model.adjust.max_tilt": tilt})
        if m.kind != "base":
            out.append({"model.kind": "base"})
    return out


def resolve_candidates(cfg: ExperimentConfig) -> list[Candidate]:
    """The candidates of ``cfg`` (the configured model first when listed), validated.

    A candidate may not change the data, features, folds or costs (they must be judged on the same
    inputs); a :class:`ConfigError` names the offending key."""
    raw = cfg.training.candidates if cfg.training.candidates is not None else default_candidates(cfg)
    raw = raw or [{}]
    out: list[Candidate] = []
    for j, ov in enumerate(raw):
        for key in ov:
            if not key.startswith(_ALLOWED) or key.startswith(_FORBIDDEN):
                raise ConfigError(
                    f"training.candidates[{j}]: key {key!r} is not allowed; candidates may set model.*, objective.* "
                    f"and training.* (not data, features, folds, costs or the base lookbacks)"
                )
        cc = cfg.with_overrides({**ov, "training.candidates": [{}]}) if ov else cfg
        if cc.features != cfg.features:
            raise ConfigError(
                f"training.candidates[{j}] {ov} needs other features than the configured model "
                f"(a base kind needing the momentum feature?); add them to features.set so every candidate sees the same inputs"
            )
        out.append(Candidate(label=candidate_label(ov), overrides=dict(ov), cfg=cc, complexity=candidate_complexity(cc)))
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"training.candidates lists the same candidate twice: {labels}")
    return out


def block_net_returns(policy: Any, data: TrainingData, start: int, stop: int) -> np.ndarray:
    """Per-step net returns of ``policy`` rolled over rows [start, stop) from flat, with the
    objective's cost model (fees and half spread, square-root impact, funding); NaN where the
    row is not usable (the policy held)."""
    from training.rollout_eval import run_block

    rows = np.arange(start, stop)
    roll = run_block(policy, data, start, stop, record_state=False)
    net = data.market.net_returns(roll.exposures, roll.inputs_exposure, rows)
    return np.where(data.usable[rows], net, np.nan)


def _sharpe(net: np.ndarray, periods_per_year: float) -> float:
    net = net[np.isfinite(net)]
    sd = float(net.std()) if net.size else 0.0
    if net.size < 2 or sd <= 0:
        return 0.0 if not np.any(net) else -math.inf
    return float(net.mean() / sd * math.sqrt(periods_per_year))


def validation_sharpe(policy: Any, data: TrainingData, fold: Fold) -> float:
    """Annualised net Sharpe of ``policy`` rolled over the fold's validation block from flat."""
    return _sharpe(block_net_returns(policy, data, *fold.val), data.market.periods_per_year)


def sharpe_difference_se(a: np.ndarray, b: np.ndarray, periods_per_year: float) -> float:
    """Standard error of the annualised Sharpe difference of two strategies' per-step returns on
    the same rows (NaN = held, dropped pairwise): each series standardised by its own volatility,
    the difference's mean is the Sharpe difference per step and its standard error the usual
    sqrt(var / n) of a paired mean (Jobson & Korkie's test without the higher-order terms). A flat
    series counts as zero standardised returns. ``inf`` with fewer than two common rows.

    >>> import numpy as np
    >>> a = np.array([1.0, -1.0, 1.0, -1.0]); round(sharpe_difference_se(a, -a, 1.0), 6)
    1.154701
    """
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < 2:
        return math.inf
    za, zb = (x[ok] / x[ok].std() if x[ok].std() > 0 else np.zeros(n) for x in (a, b))
    return float((za - zb).std(ddof=1) / math.sqrt(n) * math.sqrt(periods_per_year))


def choose(scores: list[float], std_errors: list[float], complexity: list[float]) -> int:
    """The one-standard-error rule (Hastie, Tibshirani & Friedman, ESL 7.10): among the candidates
    whose score is within one standard error of the best score, the least complex one; ties go to
    the higher score, then to the earlier candidate.

    >>> choose([0.2, 1.0, 0.9], [0.9, 0.0, 0.3], [0, 3, 1])  # base within 1 SE of the best
    0
    >>> choose([-0.5, 1.0, 0.9], [0.5, 0.0, 0.3], [0, 3, 1])  # base not; forecast is
    2
    """
    best = int(np.argmax(scores))
    near = [j for j in range(len(scores)) if scores[j] >= scores[best] - std_errors[j] or j == best]
    return min(near, key=lambda j: (complexity[j], -scores[j], j))


def selection_pbo(test_returns: list[np.ndarray], n_blocks: int = 16) -> Any:
    """Probability of backtest overfitting (CSCV, Bailey et al. 2017) of choosing among the
    candidates, from their out-of-sample returns [T, K] (every candidate rolled over every test
    block); ``None`` with fewer than two candidates or too few rows."""
    from training.selection import probability_of_backtest_overfitting

    r = np.nan_to_num(np.concatenate(test_returns, axis=0))
    if r.ndim != 2 or r.shape[1] < 2 or r.shape[0] < 4 * n_blocks:
        return None
    return probability_of_backtest_overfitting(r, n_blocks=n_blocks)


def select(
    candidates: list[Candidate],
    fit: Callable[[Candidate], tuple[Any, list[Any]]],
    data: TrainingData,
    fold: Fold,
    rule: str = "best",
) -> tuple[Selection, list[tuple[Any, list[Any]]]]:
    """Train every candidate on ``fold`` (``fit(candidate) -> (policy, fits)``) and choose on its
    validation block: ``best`` takes the highest net Sharpe (ties within 1e-9 go to the earlier
    candidate); ``one_se`` applies :func:`choose` with each candidate's standard error of its
    Sharpe difference to the best one and the candidates' complexity."""
    if rule not in ("best", "one_se"):
        raise ConfigError(f"training.selection_rule: unknown rule {rule!r}; known: ['one_se', 'best']")
    trained = [fit(c) for c in candidates]
    nets = [block_net_returns(p, data, *fold.val) for p, _ in trained]
    ppy = data.market.periods_per_year
    scores = [_sharpe(n, ppy) for n in nets]
    best = 0
    for j, s in enumerate(scores):
        if s > scores[best] + 1e-9:
            best = j
    if rule == "best" or len(candidates) == 1:
        return Selection(chosen=best, scores=scores), trained
    ses = [0.0 if j == best else sharpe_difference_se(nets[j], nets[best], ppy) for j in range(len(nets))]
    chosen = choose(scores, ses, [c.complexity for c in candidates])
    return Selection(chosen=chosen, scores=scores, std_errors=ses), trained


__all__ = ["COMPLEXITY", "Candidate", "candidate_complexity", "Selection", "block_net_returns", "candidate_label", "choose", "resolve_candidates",
           "select", "selection_pbo", "sharpe_difference_se", "validation_sharpe"]
