"""Base allocations: the causal, risk-managed exposure a learned policy adjusts.

A DEA policy's target is ``base(t) ⊕ adjustment(t)`` (DESIGN.md). The base is a classical
allocator written ONCE here, as array arithmetic that runs unchanged on numpy arrays (``dea``
backtests, reports, tests) and on torch tensors (inside the policy module, hence inside the
exported ONNX graph the live loop runs). It reads only two feature columns per instrument, both
ordinary registered features with batch/streaming parity and leakage tests:

* ``rvol_cc_<W>@<SYM>``: close-to-close realised volatility per decision step (ex-ante risk);
* ``logret_<H>@<SYM>``: the log return over the momentum horizon (``tsmom`` only);
* ``hrp_weight_<W>_<REFIT>@<SYM>``: the Hierarchical Risk Parity weight (``hrp`` only), fitted in
  numpy (:mod:`dea.allocation.hrp`) by the feature engine on the trailing window of returns and
  refitted on a fixed cadence, so the clustering (which has no ONNX form) is computed once, causally,
  and the graph only reads its result, exactly as it reads sigma;
* ``hold_weight_<REBALANCE>@<SYM>``: the buy-and-hold weight (``buy_and_hold`` only): an
  equal-value portfolio bought at an anchor and drifted with prices, re-anchored on the UTC grid
  every ``hold_rebalance`` (a buy-and-hold's weights depend on its entry prices, a state a
  per-decision base cannot carry; the feature holds it, so every start sees the same anchors).

Kinds (``unit[i] = target_vol / (N * sigma_annual[i])`` is the exposure that gives instrument i
its 1/N share of the target volatility, ignoring correlation):

* ``none``: 0 (a plain policy);
* ``equal_weight``: ``budget / N`` in every instrument whose volatility is known;
* ``inverse_vol``: ``budget * (1/sigma_i) / sum_j (1/sigma_j)``;
* ``vol_target``: ``unit[i]``;
* ``tsmom``: ``sign(momentum[i]) * unit[i]`` (Moskowitz, Ooi & Pedersen 2012);
* ``buy_and_hold``: ``budget * hold_weight[i]`` (weights sum to 1 over the held instruments);
* ``hrp``: ``budget * hrp_weight[i]`` (López de Prado 2016; weights sum to 1 over the instruments
  the fit covered);
* ``ridge``: ``budget * tanh(forecast[i]) * unit[i]``: the two-stage ridge forecast (a linear
  forecast of the next volatility-standardised return, sized in volatility units, as the
  ``forecast`` policy) fitted in closed form on each fold's fit block, then frozen. Its
  coefficients are fixed constants of the policy graph (a linear layer over the scaled features:
  ``training.forecast_policy.fit_ridge_base``); ``forecast`` here is that layer's output, already
  divided by its in-sample spread times the risk aversion, so a typical forecast is one tanh unit.

An instrument whose volatility is not known (feature missing: filled with 0 by the missing-data
policy, or not yet warmed up) gets no base weight: DEA never sizes a position on a risk estimate it
does not have. Likewise an HRP or buy-and-hold weight outside (0, 1] (missing: NaN in the feature, 0-filled by
the missing-data policy) gives no base weight. Every base is clipped to the per-instrument bounds ``[lower, upper]`` (``lower``
is 0 for a long-only spot instrument).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dea.errors import ConfigError

BASE_KINDS = ("none", "equal_weight", "inverse_vol", "vol_target", "tsmom", "buy_and_hold", "hrp", "ridge")
VOL_STEM = "rvol_cc"
MOMENTUM_STEM = "logret"
HRP_STEM = "hrp_weight"
HOLD_STEM = "hold_weight"
_SIGMA_FLOOR = 1e-8  # per-step volatility below this counts as unknown (a 0-filled missing value)


@dataclass(frozen=True)
class BaseColumns:
    """Feature-column indices the base (and the volatility-scaled adjustment) read, per instrument."""

    sigma: tuple[int, ...]  # rvol_cc_<W>@<SYM>
    momentum: tuple[int, ...] | None  # logret_<H>@<SYM> (tsmom only)
    hrp: tuple[int, ...] | None = None  # hrp_weight_<W>_<REFIT>@<SYM> (hrp only)
    hold: tuple[int, ...] | None = None  # hold_weight_<REBALANCE>@<SYM> (buy_and_hold only)


def vol_feature_name(window: int, symbol: str) -> str:
    return f"{VOL_STEM}_{int(window)}@{symbol}"


def momentum_feature_name(horizon: int, symbol: str) -> str:
    return f"{MOMENTUM_STEM}_{int(horizon)}@{symbol}"


def hrp_feature_name(window: int, refit: str, symbol: str) -> str:
    """Column of the ``hrp_weight`` feature (:class:`dea.features.cross_asset.HRPWeight`)."""
    return f"{HRP_STEM}_{int(window)}_{refit}@{symbol}"


def hold_feature_name(rebalance: str, symbol: str) -> str:
    """Column of the ``hold_weight`` feature (:class:`dea.features.cross_asset.HoldWeight`)."""
    return f"{HOLD_STEM}_{rebalance}@{symbol}"


def required_features(
    kind: str, vol_window: int, momentum_horizon: int, hrp_window: int = 60, hrp_refit: str = "1d",
    hold_rebalance: str = "365d",
) -> list[dict[str, Any]]:
    """Feature-set entries (``features.set`` items) the base ``kind`` needs.

    The volatility feature is needed by every kind except ``none`` without volatility scaling;
    callers add it whenever a volatility estimate is used."""
    if kind not in BASE_KINDS:
        raise ConfigError(f"model.base.kind {kind!r} unknown; choose one of {list(BASE_KINDS)}")
    items: list[dict[str, Any]] = [{"name": VOL_STEM, "params": {"window": int(vol_window)}}]
    if kind == "tsmom":
        items.append({"name": MOMENTUM_STEM, "params": {"horizon": int(momentum_horizon)}})
    if kind == "hrp":
        items.append({"name": HRP_STEM, "params": {"window": int(hrp_window), "refit": str(hrp_refit)}})
    if kind == "buy_and_hold":
        items.append({"name": HOLD_STEM, "params": {"rebalance": str(hold_rebalance)}})
    return items


def base_columns(
    feature_names: Sequence[str],
    instruments: Sequence[str],
    kind: str,
    vol_window: int,
    momentum_horizon: int,
    hrp_window: int = 60,
    hrp_refit: str = "1d",
    hold_rebalance: str = "365d",
) -> BaseColumns:
    """Locate the base's input columns in ``feature_names``; a :class:`ConfigError` names any
    column that is missing (the config validator normally adds them to the feature set)."""
    index = {n: j for j, n in enumerate(feature_names)}

    def find(names: list[str]) -> tuple[int, ...]:
        missing = [n for n in names if n not in index]
        if missing:
            raise ConfigError(
                f"the base allocation needs feature columns {missing} (add the rvol_cc / logret / hrp_weight / hold_weight features with "
                f"these windows to features.set, or set model.base.kind: none and model.adjust.vol_scaling: false)"
            )
        return tuple(index[n] for n in names)

    sigma = find([vol_feature_name(vol_window, s) for s in instruments])
    mom = find([momentum_feature_name(momentum_horizon, s) for s in instruments]) if kind == "tsmom" else None
    hrp = find([hrp_feature_name(hrp_window, hrp_refit, s) for s in instruments]) if kind == "hrp" else None
    hold = find([hold_feature_name(hold_rebalance, s) for s in instruments]) if kind == "buy_and_hold" else None
    return BaseColumns(sigma=sigma, momentum=mom, hrp=hrp, hold=hold)


def vol_unit(xp: Any, sigma: Any, n_instruments: int, target_vol: float, periods_per_year: float) -> Any:
    """Exposure giving each instrument its ``1/N`` share of ``target_vol`` (0 where sigma unknown).

    ``sigma`` is the per-step volatility [..., N]; ``xp`` is ``numpy`` or ``torch``."""
    known = sigma > _SIGMA_FLOOR
    safe = xp.where(known, sigma, sigma * 0.0 + 1.0)
    unit = target_vol / (n_instruments * safe * float(np.sqrt(periods_per_year)))
    return xp.where(known, unit, sigma * 0.0)


def base_weights(
    xp: Any,
    kind: str,
    sigma: Any,
    momentum: Any | None,
    lower: Any,
    upper: Any,
    *,
    target_vol: float,
    periods_per_year: float,
    budget: float = 1.0,
    hrp: Any | None = None,
    forecast: Any | None = None,
    hold: Any | None = None,
) -> Any:
    """The base exposure [..., N] of ``kind`` (see the module docstring), clipped to [lower, upper].

    ``hrp`` is the HRP weight [..., N] (the ``hrp_weight`` feature; kind ``hrp`` only); ``hold``
    the buy-and-hold weight [..., N] (the ``hold_weight`` feature; kind ``buy_and_hold`` only);
    ``forecast`` the sized ridge forecast [..., N] (kind ``ridge`` only).

    Works on numpy arrays and torch tensors alike (``xp`` = the module), so the backtest and the
    exported policy graph evaluate the same expression."""
    n = sigma.shape[-1]
    zero = sigma * 0.0
    known = sigma > _SIGMA_FLOOR
    if kind == "none":
        w = zero
    elif kind == "equal_weight":
        w = xp.where(known, zero + budget / n, zero)
    elif kind == "inverse_vol":
        inv = xp.where(known, 1.0 / xp.where(known, sigma, zero + 1.0), zero)
        tot = inv.sum(-1, keepdims=True)
        w = budget * inv / xp.where(tot > 0, tot, tot * 0.0 + 1.0)
    elif kind == "vol_target":
        w = vol_unit(xp, sigma, n, target_vol, periods_per_year)
    elif kind == "tsmom":
        if momentum is None:
            raise ConfigError("base kind 'tsmom' needs the momentum feature")
        w = xp.sign(momentum) * vol_unit(xp, sigma, n, target_vol, periods_per_year)
    elif kind == "buy_and_hold":
        if hold is None:
            raise ConfigError("base kind 'buy_and_hold' needs the hold_weight feature")
        w = xp.where((hold > 0) & (hold <= 1.0), budget * hold, zero)
    elif kind == "hrp":
        if hrp is None:
            raise ConfigError("base kind 'hrp' needs the hrp_weight feature")
        known_w = (hrp > 0) & (hrp <= 1.0)
        w = xp.where(known_w, budget * hrp, zero)
    elif kind == "ridge":
        if forecast is None:
            raise ConfigError("base kind 'ridge' needs the fitted forecast (fit_ridge_base)")
        w = budget * xp.tanh(forecast) * vol_unit(xp, sigma, n, target_vol, periods_per_year)
    else:
        raise ConfigError(f"model.base.kind {kind!r} unknown; choose one of {list(BASE_KINDS)}")
    return clip_between(xp, w, lower, upper)


def linear_forecast(
    features: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    clip: float | None,
    weight: np.ndarray,
    bias: np.ndarray,
) -> np.ndarray:
    """The ``ridge`` base's forecast in numpy: ``clip((x - center) / scale) @ weight.T + bias``
    ([T, F] -> [T, N]), the same arithmetic as the policy graph's scaling and frozen linear layer."""
    z = (np.asarray(features, dtype=np.float64) - center) / scale
    if clip is not None:
        z = np.clip(z, -clip, clip)
    return z @ np.asarray(weight, dtype=np.float64).T + np.asarray(bias, dtype=np.float64)


def clip_between(xp: Any, w: Any, lower: Any, upper: Any) -> Any:
    """``min(max(w, lower), upper)`` elementwise (bounds broadcast over the last axis)."""
    return xp.minimum(xp.maximum(w, lower), upper)


def base_from_features(
    kind: str,
    features: np.ndarray,
    cols: BaseColumns,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    target_vol: float,
    periods_per_year: float,
    budget: float = 1.0,
    forecast: np.ndarray | None = None,
) -> np.ndarray:
    """Numpy base exposures [T, N] from a raw feature matrix [T, F] (NaN rows give NaN = hold).

    ``forecast`` [T, N]: the sized ridge forecast (kind ``ridge``), e.g. from :func:`linear_forecast`."""
    x = np.asarray(features, dtype=np.float64)
    sigma = x[:, list(cols.sigma)]
    mom = x[:, list(cols.momentum)] if cols.momentum is not None else None
    hrp = x[:, list(cols.hrp)] if cols.hrp is not None else None
    hold = x[:, list(cols.hold)] if cols.hold is not None else None
    w = base_weights(np, kind, np.nan_to_num(sigma, nan=0.0), None if mom is None else np.nan_to_num(mom),
                     np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64),
                     target_vol=target_vol, periods_per_year=periods_per_year, budget=budget,
                     hrp=None if hrp is None else np.nan_to_num(hrp, nan=0.0),
                     hold=None if hold is None else np.nan_to_num(hold, nan=0.0),
                     forecast=None if forecast is None else np.asarray(forecast, dtype=np.float64))
    bad = ~np.isfinite(x).all(axis=1)
    w[bad] = np.nan
    return w


__all__ = [
    "BASE_KINDS",
    "BaseColumns",
    "base_columns",
    "base_from_features",
    "base_weights",
    "clip_between",
    "hold_feature_name",
    "hrp_feature_name",
    "linear_forecast",
    "momentum_feature_name",
    "required_features",
    "vol_feature_name",
    "vol_unit",
]
