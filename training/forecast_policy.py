"""Fit the two-stage :class:`~training.policies.feedforward.ForecastPolicy` in closed form.

Stage 1, the forecast: a ridge regression (scikit-learn ``RidgeCV``, alpha by generalised
cross-validation) of each instrument's next volatility-standardised return
``z[t, i] = r[t, i] / sigma[t, i]`` on the policy's own scaled features, fitted on the fold's fit
block only. By default (``model.forecast_pooling: pooled``) the regression is pooled across
instruments: one coefficient per feature stem (``ret_1`` of each instrument on that instrument's
return) and per global column, as in cross-sectional panel forecasts and Deep Momentum Networks.
Why: with a weak signal (information coefficients of a few percent) a separate regression per
instrument on every column has N x as many coefficients, each estimated on 1/N of the data, and
the estimation noise of the irrelevant ones swamps the signal; pooling uses every instrument's
rows for every coefficient. ``per_instrument`` keeps the separate multi-output regression (for
instruments whose drivers really differ). Its coefficients become the policy's linear forecast layer, divided by the in-sample
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
from dea.errors import ConfigError, ModelError
from training.datamodule import TrainingData
from training.policies import Policy
from training.policies.layout import InstrumentLayout, instrument_layout
from training.splits import Fold

TRADE_RATES = (0.02, 0.05, 0.1, 0.2, 0.5, 0.9)
RIDGE_ALPHAS = np.logspace(-1, 7, 17)  # wide: a weak signal wants strong shrinkage on many rows
_MAX_ROWS = 50_000


def _pooled_design(X: np.ndarray, layout: InstrumentLayout) -> np.ndarray:
    """Stack instruments: rows ``[i * R + r]`` hold instrument i's own stems (0 where a stem is not
    computed for it) followed by the global columns -> [N * R, S + G]."""
    parts = []
    for i in range(layout.own.shape[0]):
        own = np.where(layout.available[i], X[:, layout.own[i].clip(min=0)], 0.0)
        parts.append(np.concatenate([own, X[:, layout.global_cols]], axis=1))
    return np.concatenate(parts, axis=0)


def _unpool(coef: np.ndarray, layout: InstrumentLayout, n_features: int) -> np.ndarray:
    """Pooled coefficients [S + G] -> the per-instrument forecast layer [N, F]."""
    n, s = layout.own.shape
    out = np.zeros((n, n_features))
    for i in range(n):
        avail = layout.available[i]
        out[i, layout.own[i][avail]] = coef[:s][avail]
        out[i, layout.global_cols] = coef[s:]
    return out


def ridge_forecast(X: np.ndarray, y: np.ndarray, feature_names: tuple[str, ...], instruments: tuple[str, ...],
                   pooling: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit the stage-1 forecast of ``y`` [R, N] on ``X`` [R, F]; returns the coefficients [N, F],
    intercepts [N] and the chosen ridge alpha. ``pooled`` falls back to ``per_instrument`` when no
    column is per-instrument (a single instrument, or only global features)."""
    from sklearn.linear_model import RidgeCV

    n = y.shape[1]
    if pooling == "pooled" and n > 1:
        try:
            layout = instrument_layout(feature_names, instruments)
        except ModelError:
            layout = None
        if layout is not None:
            model = RidgeCV(alphas=RIDGE_ALPHAS).fit(_pooled_design(X, layout), y.T.reshape(-1))
            coef = _unpool(np.asarray(model.coef_, dtype=np.float64), layout, X.shape[1])
            return coef, np.full(n, float(model.intercept_)), float(model.alpha_)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(X, y)
    return np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), float(model.alpha_)


def ridge_layer(policy: Policy, cfg: ExperimentConfig, data: TrainingData, fold: Fold) -> tuple[np.ndarray, np.ndarray, float]:
    """Stage 1 on ``fold``'s fit block: the sized linear forecast layer over ``policy``'s scaled
    features, as (weight [N, F], bias [N], ridge alpha); its output is about one tanh unit."""
    m = data.market
    rows = np.arange(*fold.fit)
    sigma = data.features[:, policy.sigma_idx.numpy()].astype(np.float64)
    ok = data.usable[rows] & (sigma[rows] > 1e-8).all(1) & np.isfinite(m.returns[rows]).all(1)
    rows = rows[ok][-_MAX_ROWS:]
    if rows.size < 30:
        raise ConfigError(f"fold {fold.index}: only {rows.size} usable fit rows for the ridge forecast")
    with torch.no_grad():
        X = policy.scale_features(torch.as_tensor(data.features[rows], dtype=torch.float32)).numpy().astype(np.float64)
    y = np.clip(m.returns[rows] / sigma[rows], -10.0, 10.0)  # a crash bar must not dominate the fit
    coef, inter, alpha = ridge_forecast(X, y, policy.feature_names, policy.instruments, cfg.model.forecast_pooling)
    spread = np.std(X @ coef.T + inter, axis=0)
    spread = np.where(spread > 1e-12, spread, 1.0) * float(cfg.model.forecast_risk_aversion)
    return coef / spread[:, None], inter / spread, alpha


def fit_ridge_base(policy: Policy, cfg: ExperimentConfig, data: TrainingData, fold: Fold) -> float:
    """Fit the ``ridge`` base of ``policy`` on ``fold``'s fit block (in place; frozen afterwards:
    buffers, not parameters, so the adjustment trains over a fixed base). Returns the ridge alpha.
    The policy's scaler must already be set (the forecast reads the scaled features)."""
    if policy.base_kind != "ridge":
        raise ModelError(f"fit_ridge_base: the policy's base is {policy.base_kind!r}, not 'ridge'")
    weight, bias, alpha = ridge_layer(policy, cfg, data, fold)
    with torch.no_grad():
        policy.ridge_weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        policy.ridge_bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return alpha


def fit_forecast_policy(policy: Policy, cfg: ExperimentConfig, data: TrainingData, fold: Fold) -> list[dict[str, float]]:
    """Fit ``policy``'s forecast layer and trade rate on ``fold`` (in place); returns one history
    row per trade rate tried (``trade_rate``, ``val_sharpe``)."""
    from training.candidates import validation_sharpe

    weight, bias, alpha = ridge_layer(policy, cfg, data, fold)
    with torch.no_grad():
        policy.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        policy.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    history: list[dict[str, float]] = []
    if not policy.partial_adjustment:
        return history
    best = (-np.inf, float(torch.sigmoid(policy.trade_logit[0].detach())))
    for rate in TRADE_RATES:
        with torch.no_grad():
            policy.trade_logit.fill_(math.log(rate / (1.0 - rate)))
        score = validation_sharpe(policy, data, fold)
        history.append({"trade_rate": rate, "val_sharpe": score, "ridge_alpha": alpha})
        if score > best[0]:
            best = (score, rate)
    with torch.no_grad():
        policy.trade_logit.fill_(math.log(best[1] / (1.0 - best[1])))
    return history


__all__ = ["RIDGE_ALPHAS", "TRADE_RATES", "fit_forecast_policy", "fit_ridge_base", "ridge_forecast", "ridge_layer"]
