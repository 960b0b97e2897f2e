"""The policy's output layer takes its bounds from the risk engine's one definition."""

from __future__ import annotations

from pathlib import Path

from dea.config import load_config
from dea.risk.engine import exposure_bounds

REPO = Path(__file__).resolve().parents[2]


def test_policy_spec_bounds_are_the_risk_engines():
    from training.policies.factory import spec_from_config

    cfg = load_config(REPO / "configs" / "demo.yaml", ["risk.max_exposure=2.0", "risk.max_gross=3.0",
                                                       "risk.max_leverage=3.0"])
    lower, upper = exposure_bounds(cfg.data.instruments, cfg.accounts, cfg.risk)
    spec = spec_from_config(cfg, ["f"])
    assert spec.lower == tuple(lower) == (0.0, 0.0, 0.0)  # spot in a cash account: long-only
    assert spec.caps == tuple(upper) == (1.0, 1.0, 1.0)  # ... and unlevered, whatever max_exposure says
    assert spec.max_gross == 1.0  # the cash account holds at most its equity
    margin = cfg.with_overrides({"accounts.list": [{"name": "m", "venue": "coinmetrics", "collateral": "USD",
                                                    "margin": True}]})
    spec_m = spec_from_config(margin, ["f"])
    assert spec_m.lower == (-2.0, -2.0, -2.0) and spec_m.caps == (2.0, 2.0, 2.0) and spec_m.max_gross == 3.0
