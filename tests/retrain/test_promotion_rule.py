"""The promotion rule on hand-made scores: every gate refuses, and says why."""

from __future__ import annotations

import pytest

from dea.config.retrain import RetrainConfig
from dea.stress.metrics import StressResult
from training.promotion import ModelScore, decide


def _stress(name: str, breaches: int = 0, dd: float = 0.05) -> StressResult:
    return StressResult(name, -0.01, dd, 0.01, 0.02, 0.99, breaches, (), 0, 60.0, 0, 0, 100)


CHAMP = ModelScore("champion", {"sharpe": 1.0})


def test_better_by_more_than_the_margin_is_promoted() -> None:
    d = decide(CHAMP, ModelScore("challenger", {"sharpe": 1.5}), RetrainConfig(margin=0.2), dd_limit=0.3)
    assert d.promote and d.improvement == pytest.approx(0.5) and "beats" in d.reason


def test_within_the_margin_is_kept() -> None:
    d = decide(CHAMP, ModelScore("challenger", {"sharpe": 1.1}), RetrainConfig(margin=0.2), dd_limit=0.3)
    assert not d.promote and "not above margin" in d.reason


def test_minimize_flips_the_sign() -> None:
    cfg = RetrainConfig(metric="max_dd", direction="minimize", margin=0.01)
    d = decide(ModelScore("champion", {"max_dd": 0.2}), ModelScore("challenger", {"max_dd": 0.1}), cfg, dd_limit=0.3)
    assert d.promote and d.improvement == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("score", "needle"),
    [
        (ModelScore("challenger", {"sharpe": 9.0}, breaches=2), "breached hard risk limits 2"),
        (ModelScore("challenger", {"sharpe": 9.0}, max_drawdown=0.4), "beyond the hard limit"),
        (ModelScore("challenger", {"sharpe": 9.0}, stress=(_stress("flash_crash", breaches=1),)), "stress scenario 'flash_crash'"),
        (ModelScore("challenger", {"sharpe": 9.0}, stress=(_stress("vol_spike", dd=0.5),)), "in stress scenario 'vol_spike'"),
        (ModelScore("challenger", {"sharpe": float("nan")}), "no finite"),
        (ModelScore("challenger", {}), "no finite"),
    ],
)
def test_risk_gates_refuse_even_a_much_better_metric(score, needle) -> None:
    d = decide(CHAMP, score, RetrainConfig(), dd_limit=0.3)
    assert not d.promote and needle in d.reason


def test_stress_gate_can_be_turned_off_and_first_model_is_promoted() -> None:
    s = ModelScore("challenger", {"sharpe": 0.1}, stress=(_stress("x", breaches=1),))
    assert decide(None, s, RetrainConfig(stress_gate=False), dd_limit=0.3).promote
    assert not decide(None, s, RetrainConfig(), dd_limit=0.3).promote
