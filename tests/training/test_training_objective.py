"""The cost-aware objective on hand-checkable cases: fees, impact, funding signs, losses, rollout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dea.errors import ConfigError
from training.objective import cvar, risk_adjusted_loss, rollout, rollout_masked, step_returns


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _one_instrument_case():
    # exposures decided at t = 0, 1, 2 (held over (t, t+1]); start flat
    w = _t([[[0.5], [0.5], [-0.5]]])
    r = _t([[[0.01], [-0.02], [0.03]]])
    imp = _t([[[0.01], [0.01], [0.01]]])
    fund = _t([[[0.0001], [0.0], [0.0002]]])
    return w, r, imp, fund


def test_each_cost_term_matches_hand_arithmetic():
    w, r, imp, fund = _one_instrument_case()
    sr = step_returns(w, torch.zeros(1, 1, dtype=torch.float64), r, _t([0.001]), imp, fund)
    # held before each trade: flat; 0.5 grown by +1% on an equity grown by 0.5%; 0.5 shrunk by
    # -2% on an equity shrunk by 1%
    held = [0.0, 0.5 * 1.01 / 1.005, 0.5 * 0.98 / 0.99]
    dw = [abs(0.5 - held[0]), abs(0.5 - held[1]), abs(-0.5 - held[2])]
    np.testing.assert_allclose(sr.turnover[0], dw)
    np.testing.assert_allclose(sr.gross[0], [0.005, -0.01, -0.015])
    np.testing.assert_allclose(sr.fees[0], [0.001 * d for d in dw])
    np.testing.assert_allclose(sr.impact[0], [0.01 * d**1.5 for d in dw])
    # long 0.5 pays +1bp; short 0.5 receives 2bp
    np.testing.assert_allclose(sr.funding[0], [0.00005, 0.0, -0.0001])
    expected_net = [
        0.005 - 0.001 * dw[0] - 0.01 * dw[0] ** 1.5 - 0.00005,
        -0.01 - 0.001 * dw[1] - 0.01 * dw[1] ** 1.5,
        -0.015 - 0.001 * dw[2] - 0.01 * dw[2] ** 1.5 + 0.0001,
    ]
    np.testing.assert_allclose(sr.net[0], expected_net, rtol=1e-12)


def test_funding_sign_long_pays_short_receives_and_flat_pays_nothing():
    r = torch.zeros(1, 1, 3, dtype=torch.float64)
    rate = torch.full((1, 1, 3), 0.0003, dtype=torch.float64)
    w = _t([[[1.0, -2.0, 0.0]]])
    sr = step_returns(w, w[:, 0, :], r, _t([0.0, 0.0, 0.0]), torch.zeros_like(r), rate)
    # long 1.0 pays 3bp, short 2.0 receives 6bp, flat nothing: net funding = 3bp - 6bp
    assert sr.funding.item() == pytest.approx(0.0003 - 0.0006)
    assert sr.net.item() == pytest.approx(0.0003)


def test_trading_from_initial_exposure_is_charged_on_the_difference():
    w = _t([[[0.3]]])
    sr = step_returns(w, _t([[0.5]]), torch.zeros_like(w), _t([0.002]), torch.zeros_like(w), torch.zeros_like(w))
    assert sr.fees.item() == pytest.approx(0.002 * 0.2)


def test_losses_on_known_returns():
    from training.objective import StepReturns

    net = _t([[0.02, -0.01, 0.03, -0.02]])
    zero = torch.zeros_like(net)
    sr = StepReturns(net, net, zero, zero, zero, _t([[1.0, 0.0, 1.0, 0.0]]))
    mean, std = 0.005, math.sqrt(np.var([0.02, -0.01, 0.03, -0.02]))
    A = 4.0  # periods per year: annualises mean/var by 4, ratios by 2
    assert risk_adjusted_loss(sr, "sharpe", periods_per_year=A).item() == pytest.approx(-2 * mean / std)
    assert risk_adjusted_loss(sr, "mean_variance", periods_per_year=A, risk_aversion=2.0).item() == pytest.approx(
        -(A * mean - A * std**2)
    )
    downside = math.sqrt((0.01**2 + 0.02**2) / 4)
    assert risk_adjusted_loss(sr, "sortino", periods_per_year=A).item() == pytest.approx(-2 * mean / downside)
    # worst 50% = {-0.02, -0.01} -> CVaR 0.015
    assert cvar(net, 0.5).item() == pytest.approx(0.015)
    assert risk_adjusted_loss(sr, "cvar", cvar_alpha=0.5, cvar_weight=2.0).item() == pytest.approx(-(mean - 0.03))
    base = risk_adjusted_loss(sr, "sharpe").item()
    assert risk_adjusted_loss(sr, "sharpe", turnover_penalty=0.1).item() == pytest.approx(base + 0.1 * 0.5)
    with pytest.raises(ConfigError, match="unknown"):
        risk_adjusted_loss(sr, "calmar")


def test_vol_anchor_penalises_the_size_a_ratio_cannot_see():
    from training.objective import StepReturns

    net = _t([[0.02, -0.01, 0.03, -0.02]])
    zero = torch.zeros_like(net)
    small = StepReturns(net / 10, net / 10, zero, zero, zero, zero)
    big = StepReturns(net, net, zero, zero, zero, zero)
    plain = [risk_adjusted_loss(s, "sharpe", periods_per_year=4.0).item() for s in (small, big)]
    assert plain[0] == pytest.approx(plain[1]), "a Sharpe ratio is blind to size"
    ann_vol = 2 * math.sqrt(np.var([0.02, -0.01, 0.03, -0.02]))
    anchored = [
        risk_adjusted_loss(s, "sharpe", periods_per_year=4.0, target_vol=ann_vol, vol_penalty=3.0).item()
        for s in (small, big)
    ]
    assert anchored[1] == pytest.approx(plain[1]), "on target: no penalty"
    assert anchored[0] == pytest.approx(plain[0] + 3.0 * (0.1 - 1) ** 2)


class _AddPolicy(torch.nn.Module):
    """Stub: target = held exposure + features (so the rollout's feedback is visible)."""

    is_recurrent = False

    def step(self, features, exposure, state):
        return exposure + features, None


def test_rollout_feeds_back_its_own_exposure():
    x = torch.ones(2, 4, 1)
    targets, state = rollout(_AddPolicy(), x, torch.zeros(2, 1))
    assert state is None
    np.testing.assert_allclose(targets[0, :, 0], [1, 2, 3, 4])


def test_rollout_feeds_back_the_drifted_exposure_when_given_returns():
    x = torch.zeros(1, 3, 2, dtype=torch.float64)
    r = _t([[[0.1, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    targets, _ = rollout(_AddPolicy(), x, _t([[0.5, 0.5]]), returns=r)
    # a 10% rise of the first leg lifts its weight to 0.55 / 1.05 and shrinks the other's
    np.testing.assert_allclose(targets[0, 1].numpy(), [0.55 / 1.05, 0.5 / 1.05])


def test_masked_rollout_holds_exposure_on_unusable_rows():
    x = torch.ones(1, 4, 1)
    mask = torch.tensor([[True, False, True, True]])
    targets, _ = rollout_masked(_AddPolicy(), x, mask, torch.zeros(1, 1))
    np.testing.assert_allclose(targets[0, :, 0], [1, 1, 2, 3])
