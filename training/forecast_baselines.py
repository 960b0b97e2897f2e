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
about tanh(1) of the cap), then the same gross-leverage retraction the policies use. To give
the baseline the same chance to be cost-aware as the policy, the sized exposure is smoothed by an
exponential moving average whose half-life (none, 2, 8, 32 or 128 steps) is chosen by net
Sharpe after fees, impact and funding on the fold's validation block, which the model did not
see: the model is fitted on the fit block, exactly the data the policy is trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dea.errors import ConfigError
from training.datamodule import TrainingData
from training.splits import Fold

FORECAST_BASELINES = ("ridge", "hgb")
SMOOTHING_HALFLIVES = (0, 2, 8, 32, 128)


def _ewma(w: np.ndarray, halflife: int) -> np.ndarray:
    if halflife <= 0:
        return w
    from scipy.signal import lfilter

    a = 1.0 - 0.5 ** (1.0 / halflife)
    return lfilter([a], [1.0, -(1.0 - a)], w, axis=0)  # y[t] = (1 - a) y[t-1] + a w[t], y[-1] = 0


def _net_sharpe(w: np.ndarray, data: TrainingData, rows: np.ndarray) -> float:
    """Net Sharpe of exposures ``w`` decided on consecutive ``rows`` (the objective's cost model)."""
    net = data.market.net_returns(w, None, rows)
    sd = net.std()
    return float(net.mean() / sd) if sd > 0 else -np.inf


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
    """Exposures [len(test), N] on the fold's test block from a model fitted on its fit block (its
    most recent ``max_train_rows`` usable rows: bounded cost on 5-minute data)."""
    usable = data.usable
    m = data.market
    train = np.arange(*fold.fit)
    train = train[usable[train] & np.isfinite(m.sigma[train]).all(1) & (m.sigma[train] > 0).all(1)]
    if train.size > max_train_rows:
        train = train[-max_train_rows:]
    if train.size < 10:
        raise ConfigError(f"fold {fold.index}: only {train.size} usable training rows for the {kind} baseline")
    test = np.arange(*fold.test)
    span = np.arange(*fold.val)  # unseen by the model: chooses the smoothing
    n = m.returns.shape[1]

    def size(rows: np.ndarray, z: np.ndarray, i: int) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            vol_scale = np.minimum(1.0, target_vol / (m.sigma[rows, i] * np.sqrt(m.periods_per_year)))
        return caps[i] * np.tanh(z) * np.where(np.isfinite(vol_scale), vol_scale, 0.0)

    w_test, w_span = np.zeros((test.size, n)), np.zeros((span.size, n))
    X_test, X_span = np.nan_to_num(data.features[test]), np.nan_to_num(data.features[span])
    for i in range(n):
        y = m.returns[train, i] / m.sigma[train, i]
        y = np.clip(y, -10, 10)  # a crash bar must not dominate a squared-error fit
        model = _model(kind, seed + i)
        model.fit(data.features[train], y)
        s_ = float(np.std(model.predict(data.features[train])))
        scale = s_ if s_ > 1e-12 else 1.0
        w_test[:, i] = size(test, model.predict(X_test) / scale, i)
        w_span[:, i] = size(span, model.predict(X_span) / scale, i)
    w_test, w_span = (_gross_limit(w, max_gross) for w in (w_test, w_span))
    w_span = hold_where_unusable(w_span, usable[span])
    best = max(SMOOTHING_HALFLIVES, key=lambda h: _net_sharpe(_ewma(w_span, h), data, span))
    return hold_where_unusable(_ewma(w_test, best), usable[test])


def _gross_limit(w: np.ndarray, max_gross: float) -> np.ndarray:
    gross = np.abs(w).sum(1, keepdims=True)
    return w * np.minimum(1.0, max_gross / np.maximum(gross, 1e-12))


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
