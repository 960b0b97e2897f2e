"""Forecast baselines on the same folds: predict the next step's volatility-standardised return
with scikit-learn, then size the position from the forecast.

Why these: a learned policy has to beat "forecast the return, then size it" with a strong
linear model (ridge, alpha by generalised cross-validation) and a strong non-linear one
(histogram gradient boosting); otherwise the end-to-end, cost-aware objective is not earning its
complexity.

Sizing (volatility-scaled exposure), per instrument i at row t::

    z[t,i] = forecast of r[t,i] / sigma[t,i]        (a per-step Sharpe forecast)
    w[t,i] = cap[i] * tanh(z[t,i] / s[i]) * min(1, target_vol / (sigma[t,i] * sqrt(periods/yr)))

with ``s[i]`` the in-sample standard deviation of the forecast (so a typical forecast maps to
about tanh(1) of the cap), then the same gross-leverage retraction the policies use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dea.errors import ConfigError
from training.datamodule import TrainingData
from training.splits import Fold

FORECAST_BASELINES = ("ridge", "hgb")


def _model(kind: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import RobustScaler

    if kind == "ridge":
        return make_pipeline(RobustScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    if kind == "hgb":
        return HistGradientBoostingRegressor(
            max_iter=100,
            learning_rate=0.05,
            max_bins=63,
            max_leaf_nodes=15,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    raise ConfigError(f"unknown forecast baseline {kind!r}; known: {list(FORECAST_BASELINES)}")


def forecast_exposures(
    kind: str,
    data: TrainingData,
    fold: Fold,
    *,
    caps: Sequence[float],
    max_gross: float,
    target_vol: float,
    seed: int = 0,
    max_train_rows: int = 20_000,
) -> np.ndarray:
    """Exposures [len(test), N] on the fold's test block from a model fitted on its training part
    (its most recent ``max_train_rows`` usable rows: bounded cost on 5-minute data)."""
    usable = data.usable
    m = data.market
    train = np.arange(*fold.train)
    train = train[usable[train] & np.isfinite(m.sigma[train]).all(1) & (m.sigma[train] > 0).all(1)]
    if train.size > max_train_rows:
        train = train[-max_train_rows:]
    if train.size < 10:
        raise ConfigError(f"fold {fold.index}: only {train.size} usable training rows for the {kind} baseline")
    test = np.arange(*fold.test)
    X_train = data.features[train]
    X_test = np.nan_to_num(data.features[test])
    sigma_test = m.sigma[test]
    n = m.returns.shape[1]
    w = np.zeros((test.size, n))
    for i in range(n):
        y = m.returns[train, i] / m.sigma[train, i]
        y = np.clip(y, -10, 10)  # a crash bar must not dominate a squared-error fit
        model = _model(kind, seed + i)
        model.fit(X_train, y)
        s = float(np.std(model.predict(X_train)))
        z = model.predict(X_test) / (s if s > 1e-12 else 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            vol_scale = np.minimum(1.0, target_vol / (sigma_test[:, i] * np.sqrt(m.periods_per_year)))
        vol_scale = np.where(np.isfinite(vol_scale), vol_scale, 0.0)
        w[:, i] = caps[i] * np.tanh(z) * vol_scale
    gross = np.abs(w).sum(1, keepdims=True)
    w *= np.minimum(1.0, max_gross / np.maximum(gross, 1e-12))
    return hold_where_unusable(w, usable[test])


def hold_where_unusable(w: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Carry the previous exposure (flat at the start) over rows whose inputs are not usable,
    the same ``hold`` the live loop and the policy rollout apply."""
    out = w.copy()
    prev = np.zeros(w.shape[1])
    for t in range(out.shape[0]):
        if ok[t]:
            prev = out[t]
        else:
            out[t] = prev
    return out
