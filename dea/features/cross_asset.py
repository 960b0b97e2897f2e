"""Cross-asset features: rolling correlation and beta to a reference instrument, relative strength.

All use 1-row log returns of ``close`` for every panel instrument (not just the selected ones),
so a feature restricted to ETH can still be measured against BTC. ``hrp_weight`` and
``hold_weight`` are explicit features (their fits branch on data, which the expression tracer
cannot compile): batch and streaming run the same row-by-row schedule and the same numpy code.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from dea.allocation.hrp import hrp_weights
from dea.config.base import StrictModel
from dea.features.base import BatchData, ExprFeature, Feature, FeatureStream, Input, _index_of
from dea.features.ops import safe_div, safe_log
from dea.features.registry import register
from dea.timeutil import parse_duration


class _RefWindow(StrictModel):
    window: int = Field(default=288, ge=3)
    ref: str = "BTC"


class _RefFeature(ExprFeature):
    family = "cross_asset"
    Params = _RefWindow

    def inputs(self):
        return (Input("field", "close"),)

    def warmup(self) -> int:
        return self.params.window

    def check(self) -> None:
        self._ref_index()

    def _ref_index(self) -> int:
        return _index_of(self.params.ref, self.instruments, f"feature {self.name!r} ref")

    def stems(self):
        return (f"{self.name}_{self.params.ref}_{self.params.window}",)

    def _moments(self, ops, x):
        w = self.params.window
        j = self._ref_index()
        lc = safe_log(x.field_all("close"))
        r_all = lc - ops.lag(lc, 1)
        rx = r_all[..., self._sel]
        ry = np.broadcast_to(r_all[..., j : j + 1], rx.shape)
        sx = ops.rolling_sum(rx, w)
        sy = ops.rolling_sum(ry, w)
        sxy = ops.rolling_sum(rx * ry, w)
        sxx = ops.rolling_sum(rx * rx, w)
        syy = ops.rolling_sum(ry * ry, w)
        cxy = w * sxy - sx * sy
        vx = w * sxx - sx * sx
        vy = w * syy - sy * sy
        return cxy, vx, vy


@register
class RollingCorrelation(_RefFeature):
    """Rolling Pearson correlation of 1-row log returns with the reference instrument (default BTC)."""

    name = "corr"
    version = 1

    def compute(self, ops, x):
        cxy, vx, vy = self._moments(ops, x)
        return np.clip(safe_div(cxy, np.sqrt(vx * vy)), -1.0, 1.0)


@register
class RollingBeta(_RefFeature):
    """Rolling OLS beta of 1-row log returns on the reference instrument's."""

    name = "beta"
    version = 1

    def compute(self, ops, x):
        cxy, _, vy = self._moments(ops, x)
        return safe_div(cxy, vy)


class _RS(StrictModel):
    horizon: int = Field(default=288, ge=1)


@register
class RelativeStrength(ExprFeature):
    """log return over ``horizon`` minus the cross-sectional mean of all instruments' (finite) ones."""

    name = "rel_strength"
    family = "cross_asset"
    version = 1
    Params = _RS

    def inputs(self):
        return (Input("field", "close"),)

    def warmup(self) -> int:
        return self.params.horizon

    def compute(self, ops, x):
        lc = safe_log(x.field_all("close"))
        r = lc - ops.lag(lc, self.params.horizon)
        fin = np.isfinite(r)
        total = np.zeros(r.shape[:-1])
        count = np.zeros(r.shape[:-1])
        for j in range(r.shape[-1]):
            total = total + np.where(fin[..., j], r[..., j], 0.0)
            count = count + fin[..., j]
        mean = np.where(count >= 2, safe_div(total, count), np.nan)
        return r[..., self._sel] - mean[..., None]


class _HRPParams(StrictModel):
    window: int = Field(default=60, ge=3, description="rows of 1-row returns each fit uses")
    refit: str = Field(default="1d", description="refit period on the UTC epoch grid (a duration)")

    @field_validator("refit")
    @classmethod
    def _dur(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError(f"refit must be a positive duration, got {v!r}")
        return v


class _HRPRefitter:
    """The refit schedule and the held fit, shared by the batch and the streaming execution.

    A row with a full window refits when no fit is held yet (so the first value comes exactly
    after the declared warm-up, whatever the start) or when it falls in a later ``refit`` period
    of the UTC epoch grid than the held fit (so a stream restarted anywhere refits at the same
    times as training once it has held one fit). Between refits the fitted weights are held.
    """

    def __init__(self, refit_ns: int, n_instruments: int) -> None:
        self.refit_ns = int(refit_ns)
        self.bucket: int | None = None
        self.weights = np.full(n_instruments, np.nan)

    def due(self, t: int) -> bool:
        return self.bucket is None or int(t) // self.refit_ns != self.bucket

    def fit(self, t: int, window: np.ndarray) -> None:
        w = hrp_weights(window)
        self.weights = w
        self.bucket = int(t) // self.refit_ns if np.isfinite(w).any() else None


@register
class HRPWeight(Feature):
    """Hierarchical Risk Parity weight of each instrument (:mod:`dea.allocation.hrp`), fitted on the
    last ``window`` 1-row log returns of every panel instrument and refitted every ``refit``.

    Instruments with a missing return in the window (or a constant price) take no part: NaN for
    them, the others' weights sum to 1. This is the input of ``model.base.kind: hrp``.
    """

    name = "hrp_weight"
    family = "cross_asset"
    version = 1
    Params = _HRPParams

    def inputs(self):
        return (Input("field", "close"),)

    def warmup(self) -> int:
        return self.params.window

    def stems(self):
        return (f"hrp_weight_{self.params.window}_{self.params.refit}",)

    def _refitter(self) -> _HRPRefitter:
        return _HRPRefitter(parse_duration(self.params.refit), len(self.instruments))

    def batch(self, data: BatchData) -> np.ndarray:
        lc = safe_log(data.fields["close"])
        T = lc.shape[0]
        r = np.full(lc.shape, np.nan)
        r[1:] = lc[1:] - lc[:-1]
        w = self.params.window
        state = self._refitter()
        out = np.full((T, len(self.instruments)), np.nan)
        for i in range(w, T):
            t = int(data.clock[i])
            if state.due(t):
                state.fit(t, r[i - w + 1 : i + 1])
            out[i] = state.weights
        return np.ascontiguousarray(out[:, self._sel])

    def stream(self) -> FeatureStream:
        return _HRPStream(self)


class _HRPStream(FeatureStream):
    """Streaming ``hrp_weight``: a ring buffer of the last ``window`` returns (numpy only)."""

    def __init__(self, f: HRPWeight) -> None:
        self.window = f.params.window
        self.sel = f._sel
        n = len(f.instruments)
        self.buf = np.full((self.window, n), np.nan)
        self.prev = np.full(n, np.nan)
        self.row = 0
        self.state = f._refitter()

    def update(self, t, fields, series) -> np.ndarray:
        lc = safe_log(fields["close"])
        pos = self.row % self.window
        self.buf[pos] = lc - self.prev
        self.prev = lc
        if self.row >= self.window and self.state.due(t):
            start = pos + 1
            self.state.fit(t, np.concatenate([self.buf[start:], self.buf[:start]]))
        self.row += 1
        if self.row <= self.window:
            return np.full(len(self.sel), np.nan)
        return self.state.weights[self.sel].copy()


class _HoldParams(StrictModel):
    rebalance: str = Field(default="365d", description="re-anchor period on the UTC epoch grid (a duration)")

    @field_validator("rebalance")
    @classmethod
    def _dur(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError(f"rebalance must be a positive duration, got {v!r}")
        return v


class _HoldAnchor:
    """The anchor of ``hold_weight``, shared by the batch and the streaming execution.

    The first row with at least one finite price anchors (an equal-value portfolio of the
    instruments priced there); a row in a later ``rebalance`` period of the UTC epoch grid
    re-anchors. Between anchors each instrument's weight is its bought value drifted with its price,
    as a share of the portfolio's value: ``(P_i / A_i) / sum_j (P_j / A_j)``, each price the last
    good one (a missing bar leaves the holding as it was). A stream started anywhere matches the
    batch from its first anchor on the grid.
    """

    def __init__(self, rebalance_ns: int, n_instruments: int) -> None:
        self.rebalance_ns = int(rebalance_ns)
        self.bucket: int | None = None
        self.anchor = np.full(n_instruments, np.nan)
        self.last = np.full(n_instruments, np.nan)

    def weights(self, t: int, price: np.ndarray) -> np.ndarray:
        good = np.isfinite(price) & (price > 0)
        self.last = np.where(good, price, self.last)
        price = self.last
        priced = np.isfinite(price)
        if (self.bucket is None or int(t) // self.rebalance_ns != self.bucket) and priced.any():
            self.anchor = np.where(priced, price, np.nan)
            self.bucket = int(t) // self.rebalance_ns
        rel = price / self.anchor  # NaN where not held (not priced at the anchor) or not priced now
        held = np.isfinite(rel)
        if not held.any():
            return np.full(price.shape, np.nan)
        return np.where(held, rel / rel[held].sum(), np.nan)


@register
class HoldWeight(Feature):
    """Buy-and-hold weight of each instrument: an equal-value portfolio of the priced instruments
    bought at an anchor and left to drift with prices, re-anchored every ``rebalance`` on the UTC
    grid (a buy-and-hold that is rebalanced once a ``rebalance`` period, so that training, the
    backtest and a live loop started at any time hold the same weights). A missing bar counts at
    the instrument's last good price (the holding is still there); NaN for an instrument not held.
    The input of ``model.base.kind: buy_and_hold``."""

    name = "hold_weight"
    family = "cross_asset"
    version = 1
    Params = _HoldParams

    def inputs(self):
        return (Input("field", "close"),)

    def warmup(self) -> int:
        return 1

    def stems(self):
        return (f"hold_weight_{self.params.rebalance}",)

    def _anchor(self) -> _HoldAnchor:
        return _HoldAnchor(parse_duration(self.params.rebalance), len(self.instruments))

    def batch(self, data: BatchData) -> np.ndarray:
        px = np.asarray(data.fields["close"], dtype=np.float64)
        state = self._anchor()
        out = np.full(px.shape, np.nan)
        for i in range(px.shape[0]):
            out[i] = state.weights(int(data.clock[i]), px[i])
        return np.ascontiguousarray(out[:, self._sel])

    def stream(self) -> FeatureStream:
        return _HoldStream(self)


class _HoldStream(FeatureStream):
    """Streaming ``hold_weight`` (numpy only): the same anchor rule row by row."""

    def __init__(self, f: HoldWeight) -> None:
        self.sel = f._sel
        self.state = f._anchor()

    def update(self, t, fields, series) -> np.ndarray:
        return self.state.weights(int(t), np.asarray(fields["close"], dtype=np.float64))[self.sel].copy()
