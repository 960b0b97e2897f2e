"""Fit the two-stage :class:`~training.policies.feedforward.ForecastPolicy` in closed form.

Stage 1, the forecast: a multi-output ridge regression (scikit-learn ``RidgeCV``, alpha by
generalised cross-validation) of each instrument's next volatility-standardised return
``z[t, i] = r[t, i] / sigma[t, i]`` on the policy's own scaled features, fitted on the fold's fit
block only. Its coefficients become the policy's linear forecast layer, divided by the in-sample
spread of the forecast times ``model.forecast_risk_aversion`` so that a typical forecast is about
one unit of ``tanh`` — i.e. about ``max_tilt`` vol-target units of exposure (mean-variance sizing:
exposure proportional to expected return over variance, bounded).

Stage 2, the trading rule: partial adjustment towards that aim (Garleanu & Pedersen 2013), with
the per-step trade rate chosen from a grid by net Sharpe after fees, impact and funding on the
validation block — which the forecast did not see — through the same rollout the live loop runs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dea.config import ExperimentConfig
from dea.errors import ConfigError
from training.datamodule import TrainingData
from training.policies import Policy
from training.splits import Fold

TRADE_RATES = (0.02, 0.05, 0.1, 0.2, 0.5, 0.9)
_MAX_ROWS = 50_000


def fit_forecast_policy(policy: Policy, cfg: ExperimentConfig, data: TrainingData, fold: Fold) -> list[dict[str, float]]:
    """Fit ``policy``'s forecast layer and trade rate on ``fold`` (in place); returns one history
    row per trade rate tried (``trade_rate``, ``val_sharpe``)."""
    from sklearn.linear_model import RidgeCV

    from training.candidates import validation_sharpe

    m = data.market
    rows = np.arange(*fold.fit)
    sigma = data.features[:, policy.sigma_idx.numpy()].astype(np.float64)
    ok = data.usable[rows] & (sigma[rows] > 1e-8).all(1) & np.isfinite(m.returns[rows]).all(1)
    rows = rows[ok][-_MAX_ROWS:]
    if rows.size < 30:
        raise ConfigError(f"fold {fold.index}: only {rows.size} usable fit rows for the forecast policy")
    with torch.no_grad():
        X = policy.scale_features(torch.as_tensor(data.features[rows], dtype=torch.float32)).numpy().astype(np.float64)
    y = np.clip(m.returns[rows] / sigma[rows], -10.0, 10.0)  # a crash bar must not dominate the fit
    model = RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(X, y)
    coef = np.atleast_2d(model.coef_)  # [N, F]
    inter = np.atleast_1d(model.intercept_)
    spread = np.std(X @ coef.T + inter, axis=0)
    spread = np.where(spread > 1e-12, spread, 1.0) * float(cfg.model.forecast_risk_aversion)
    with torch.no_grad():
        policy.head.weight.copy_(torch.as_tensor(coef / spread[:, None], dtype=torch.float32))
        policy.head.bias.copy_(torch.as_tensor(inter / spread, dtype=torch.float32))
    history: list[dict[str, float]] = []
    if not policy.partial_adjustment:
        return history
    best = (-np.inf, float(torch.sigmoid(policy.trade_logit[0].detach())))
    for rate in TRADE_RATES:
        with torch.no_grad():
            policy.trade_logit.fill_(math.log(rate / (1.0 - rate)))
        score = validation_sharpe(policy, data, fold)
        history.append({"trade_rate": rate, "val_sharpe": score, "ridge_alpha": float(model.alpha_)})
        if score > best[0]:
            best = (score, rate)
    with torch.no_grad():
        policy.trade_logit.fill_(math.log(best[1] / (1.0 - best[1])))
    return history


__all__ = ["TRADE_RATES", "fit_forecast_policy"]
