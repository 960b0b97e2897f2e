"""Cross-asset features: rolling correlation and beta to a reference instrument, relative strength.

All use 1-row log returns of ``close`` for every panel instrument (not just the selected ones),
so a feature restricted to ETH can still be measured against BTC.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from dea.config.base import StrictModel
from dea.features.base import ExprFeature, Input, _index_of
from dea.features.ops import safe_div, safe_log
from dea.features.registry import register


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
