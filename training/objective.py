"""The training objective: roll a policy through time and score its returns after costs.

Why roll forward instead of fitting forecasts: the exposure held at t is the exposure decided at
t-1 plus a trade, and the trade is what costs money. Rolling the policy step by step (the
exposure it outputs at t is the input exposure at t+1) lets the gradient see that a jumpy policy
pays fees and impact, so it learns when NOT to trade.

Per step t (decision at t, held over (t, t+1]) and instrument i, as fractions of equity
(DESIGN.md "Exposure, returns, costs")::

    dw[t,i]      = w[t,i] - h[t,i]                        h: w[t-1] drifted by r[t-1] (held)
    gross[t]     = sum_i w[t,i] * r[t,i]                 r: return over (t, t+1]
    fees[t]      = sum_i fee[i] * |dw[t,i]|              fee: taker/maker rate + half spread
    impact[t]    = sum_i c[t,i] * |dw[t,i]| ** 1.5        c = k * sigma * sqrt(equity / ADV)
    funding[t]   = sum_i w[t,i] * f[t,i]                 f: rates settled in (t, t+1]
    net[t]       = gross - fees - impact - funding

(the impact term is the square-root law: price moves k*sigma*sqrt(|dw|*equity/ADV) against a
trade of |dw|*equity, so it costs that fraction on the traded notional.) Longs pay positive
funding; shorts receive it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dea.errors import ConfigError

LOSSES = ("mean_variance", "sharpe", "sortino", "cvar")
_EPS = 1e-12


@dataclass(frozen=True)
class StepReturns:
    """Per-step components [B, L] of the portfolio return (fractions of equity)."""

    net: Tensor
    gross: Tensor
    fees: Tensor
    impact: Tensor
    funding: Tensor
    turnover: Tensor  # sum_i |dw|


def drift(w: Tensor, r: Tensor) -> Tensor:
    """Exposure held after one step of price moves: ``w * (1 + r) / (1 + sum_i w_i r_i)``.

    A position's notional moves with its price and equity moves with the portfolio, so the
    exposure actually held before the next trade is not the last target. The backtester and the
    live loop trade from this drifted exposure; the objective does too.
    """
    return w * (1.0 + r) / (1.0 + (w * r).sum(-1, keepdim=True))


def rollout(
    policy: torch.nn.Module,
    features: Tensor,
    exposure0: Tensor,
    state0: Tensor | None = None,
    returns: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Run ``policy`` through ``features`` [B, L, F] feeding back its own exposure.

    ``exposure0`` [B, N] is the exposure held before the first decision. With ``returns``
    [B, L, N] (return over (t, t+1]) the exposure fed to the decision at t+1 is the target of t
    drifted by that return (:func:`drift`), as the live loop would see it. Returns the targets
    [B, L, N] and the final recurrent state (``None`` for feed-forward policies).
    """
    return rollout_masked(policy, features, None, exposure0, state0, returns)


def rollout_masked(
    policy: torch.nn.Module,
    features: Tensor,
    mask: Tensor | None,
    exposure0: Tensor,
    state0: Tensor | None = None,
    returns: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Like :func:`rollout`, but where ``mask`` [B, L] is False the policy is not called: the
    exposure is held and the recurrent state kept (the live loop's ``hold`` fallback on invalid
    features)."""
    held = exposure0
    state = state0
    out = []
    for t in range(features.shape[1]):
        new_w, new_state = policy.step(features[:, t, :], held, state)
        if mask is not None:
            keep = mask[:, t].unsqueeze(-1)
            new_w = torch.where(keep, new_w, held)
            if new_state is not None:
                new_state = torch.where(keep, new_state, state if state is not None else torch.zeros_like(new_state))
        state = new_state
        out.append(new_w)
        held = new_w if returns is None else drift(new_w, returns[:, t, :])
    return torch.stack(out, dim=1), state


def step_returns(
    targets: Tensor,
    exposure0: Tensor,
    returns: Tensor,
    fee: Tensor,
    impact_coef: Tensor,
    funding: Tensor,
) -> StepReturns:
    """Portfolio return components for targets [B, L, N] (see the module docstring).

    ``returns``, ``impact_coef`` and ``funding`` are [B, L, N]; ``fee`` broadcasts ([N] or
    [B, L, N]); ``exposure0`` [B, N] is the exposure held before the first step. The trade at t
    is the target minus the previous target drifted by the previous step's returns.
    """
    held = torch.cat([exposure0.unsqueeze(1), drift(targets[:, :-1, :], returns[:, :-1, :])], dim=1)
    dw = (targets - held).abs()
    gross = (targets * returns).sum(-1)
    fees = (fee * dw).sum(-1)
    impact = (impact_coef * dw.pow(1.5)).sum(-1)
    fund = (targets * funding).sum(-1)
    return StepReturns(
        net=gross - fees - impact - fund,
        gross=gross,
        fees=fees,
        impact=impact,
        funding=fund,
        turnover=dw.sum(-1),
    )


def cvar(net: Tensor, alpha: float) -> Tensor:
    """Conditional value at risk: minus the mean of the worst ``alpha`` share of returns."""
    flat = net.reshape(-1)
    k = max(1, int(round(alpha * flat.numel())))
    worst = torch.topk(-flat, k).values
    return worst.mean()


def risk_adjusted_loss(
    sr: StepReturns,
    loss: str = "sharpe",
    *,
    periods_per_year: float = 1.0,
    risk_aversion: float = 1.0,
    cvar_alpha: float = 0.05,
    cvar_weight: float = 1.0,
    turnover_penalty: float = 0.0,
    target_vol: float | None = None,
    vol_penalty: float = 1.0,
) -> Tensor:
    """Scalar loss to minimise, pooled over all steps of the batch (``A = periods_per_year``).

    ``mean_variance``: -(A*mean - risk_aversion/2 * A*var) (annualised utility; its optimum
    w ~ Sigma^-1 mu / risk_aversion does not depend on the bar length). ``sharpe``:
    -sqrt(A)*mean/std; ``sortino``: -sqrt(A)*mean/downside deviation; both plus
    ``vol_penalty * (sqrt(A)*std / target_vol - 1)**2`` when ``target_vol`` is set (ratios are
    blind to position size; the penalty anchors it). ``cvar``: -(mean - cvar_weight *
    CVaR_alpha) per step. The turnover regulariser adds ``turnover_penalty * mean(sum_i |dw|)``
    on top of the costs already in ``net`` (a way to ask for calmer policies than the cost model
    alone would).
    """
    net = sr.net
    mean = net.mean()
    ann = math.sqrt(periods_per_year)
    std = net.std(unbiased=False)
    if loss == "mean_variance":
        value = -(periods_per_year * mean - 0.5 * risk_aversion * periods_per_year * std.pow(2))
    elif loss in ("sharpe", "sortino"):
        if loss == "sharpe":
            value = -ann * mean / (std + _EPS)
        else:
            downside = torch.clamp(net, max=0.0)
            value = -ann * mean / (downside.pow(2).mean().sqrt() + _EPS)
        if target_vol is not None and vol_penalty:
            value = value + vol_penalty * (ann * std / target_vol - 1.0).pow(2)
    elif loss == "cvar":
        value = -(mean - cvar_weight * cvar(net, cvar_alpha))
    else:
        raise ConfigError(f"objective.loss {loss!r} unknown; choose one of {list(LOSSES)}")
    if turnover_penalty:
        value = value + turnover_penalty * sr.turnover.mean()
    return value
