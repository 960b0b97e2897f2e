"""Bar features (per instrument, from the panel's ``open/high/low/close/volume``).

Returns are log returns of ``close``; volatilities are per-bar (not annualised: the robust scaler
makes units irrelevant to the model and per-bar numbers stay comparable across clocks when read
together with the clock step). Windows and horizons are in decision rows.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from dea.config.base import StrictModel
from dea.features.base import ExprFeature, Input
from dea.features.ops import safe_div, safe_log
from dea.features.registry import register

_LN2 = math.log(2.0)
_GK_CO = 2.0 * _LN2 - 1.0




class _Horizon(StrictModel):
    horizon: int = Field(default=1, ge=1, le=100_000)


class _Window(StrictModel):
    window: int = Field(default=48, ge=2, le=100_000)


@register
class LogReturn(ExprFeature):
    """log(close_t / close_{t-h})."""

    name = "logret"
    family = "bars"
    version = 1
    Params = _Horizon

    def inputs(self):
        return (Input("field", "close"),)

    def warmup(self) -> int:
        return self.params.horizon

    def compute(self, ops, x):
        lc = safe_log(x.field("close"))
        return lc - ops.lag(lc, self.params.horizon)


@register
class RealisedVolCC(ExprFeature):
    """Close-to-close realised volatility: sqrt(mean of squared 1-row log returns over ``window``)."""

    name = "rvol_cc"
    family = "bars"
    version = 1
    Params = _Window

    def inputs(self):
        return (Input("field", "close"),)

    def warmup(self) -> int:
        return self.params.window

    def compute(self, ops, x):
        lc = safe_log(x.field("close"))
        r = lc - ops.lag(lc, 1)
        return np.sqrt(ops.rolling_sum(r * r, self.params.window) / self.params.window)


@register
class RealisedVolParkinson(ExprFeature):
    """Parkinson (1980) range volatility: sqrt(mean(ln(H/L)^2) / (4 ln 2)) over ``window``."""

    name = "rvol_parkinson"
    family = "bars"
    version = 1
    Params = _Window

    def inputs(self):
        return (Input("field", "high"), Input("field", "low"))

    def warmup(self) -> int:
        return self.params.window - 1

    def compute(self, ops, x):
        hl = safe_log(x.field("high")) - safe_log(x.field("low"))
        return np.sqrt(ops.rolling_sum(hl * hl, self.params.window) / (4.0 * _LN2 * self.params.window))


@register
class RealisedVolGarmanKlass(ExprFeature):
    """Garman–Klass (1980) volatility: sqrt(mean(0.5 ln(H/L)^2 − (2 ln 2 − 1) ln(C/O)^2))."""

    name = "rvol_gk"
    family = "bars"
    version = 1
    Params = _Window

    def inputs(self):
        return tuple(Input("field", f) for f in ("open", "high", "low", "close"))

    def warmup(self) -> int:
        return self.params.window - 1

    def compute(self, ops, x):
        hl = safe_log(x.field("high")) - safe_log(x.field("low"))
        co = safe_log(x.field("close")) - safe_log(x.field("open"))
        term = 0.5 * hl * hl - _GK_CO * co * co
        var = ops.rolling_sum(term, self.params.window) / self.params.window
        return np.sqrt(np.maximum(var, 0.0))


@register
class VolumeZScore(ExprFeature):
    """z-score of log(1 + volume) against its rolling mean/std over ``window`` (current row included)."""

    name = "volume_z"
    family = "bars"
    version = 1
    Params = _Window

    def inputs(self):
        return (Input("field", "volume"),)

    def warmup(self) -> int:
        return self.params.window - 1

    def compute(self, ops, x):
        v = x.field("volume")
        lv = np.log1p(np.where(v >= 0, v, np.nan))
        mean, std = ops.rolling_mean_std(lv, self.params.window)
        return safe_div(lv - mean, std)


class _Trend(StrictModel):
    fast: int = Field(default=12, ge=1)
    slow: int = Field(default=48, ge=2)
    warmup_spans: float = Field(default=3.0, ge=0, description="rows flagged warm-up, in multiples of slow")


@register
class EwmaTrend(ExprFeature):
    """EWMA trend: EWMA_fast(log close) − EWMA_slow(log close) (a log-price MACD)."""

    name = "ewma_trend"
    family = "bars"
    version = 1
    Params = _Trend

    def inputs(self):
        return (Input("field", "close"),)

    def stems(self):
        return (f"ewma_trend_{self.params.fast}_{self.params.slow}",)

    def _min_periods(self) -> int:
        return max(1, int(math.ceil(self.params.warmup_spans * self.params.slow)))

    def warmup(self) -> int:
        return self._min_periods() - 1

    def compute(self, ops, x):
        p = self.params
        lc = safe_log(x.field("close"))
        mp = self._min_periods()
        return ops.ewma(lc, p.fast, mp) - ops.ewma(lc, p.slow, mp)


class _Momentum(StrictModel):
    span: int = Field(default=48, ge=2)
    warmup_spans: float = Field(default=3.0, ge=0)


@register
class EwmaMomentum(ExprFeature):
    """Volatility-normalised momentum: EWMA(r) / sqrt(EWMA(r^2)) of 1-row log returns, in [-1, 1]."""

    name = "ewma_mom"
    family = "bars"
    version = 1
    Params = _Momentum

    def inputs(self):
        return (Input("field", "close"),)

    def stems(self):
        return (f"ewma_mom_{self.params.span}",)

    def _min_periods(self) -> int:
        return max(1, int(math.ceil(self.params.warmup_spans * self.params.span)))

    def warmup(self) -> int:
        return self._min_periods()

    def compute(self, ops, x):
        lc = safe_log(x.field("close"))
        r = lc - ops.lag(lc, 1)
        mp = self._min_periods()
        m1 = ops.ewma(r, self.params.span, mp)
        m2 = ops.ewma(r * r, self.params.span, mp)
        return safe_div(m1, np.sqrt(m2))


class _High(StrictModel):
    window: int = Field(default=48, ge=2, le=100_000)
    use: Literal["close", "high"] = Field(
        default="close", description="rolling max of closes (works on close-only data) or of bar highs"
    )


@register
class DistanceFromHigh(ExprFeature):
    """log(close / rolling max over ``window``) of closes (default) or highs: ≤ 0, 0 at a new high."""

    name = "dist_high"
    family = "bars"
    version = 1
    Params = _High

    def inputs(self):
        return tuple(dict.fromkeys((Input("field", "close"), Input("field", self.params.use))))

    def warmup(self) -> int:
        return self.params.window - 1

    def stems(self):
        tail = "" if self.params.use == "close" else "_high"
        return (f"dist_high_{self.params.window}{tail}",)

    def compute(self, ops, x):
        peak = ops.rolling_max(x.field(self.params.use), self.params.window)
        return safe_log(x.field("close")) - safe_log(peak)
