"""Derivatives features: funding, time to next funding, basis, open-interest change.

Funding comes from the panel's ``funding_rate`` field (the last *settled* rate known at t; NaN for
a perpetual declared ``funding: none``, so a funding feature on such an instrument is flagged
missing rather than silently zero). The accounting field ``funding_settled`` is never an input.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from dea.config.base import StrictModel
from dea.features.base import ExprFeature, Input
from dea.features.ops import as_int64, safe_div, safe_log
from dea.features.registry import register
from dea.timeutil import parse_duration


@register
class FundingRate(ExprFeature):
    """Last settled funding rate known at t (fraction per settlement; positive: longs pay)."""

    name = "funding_rate"
    family = "derivatives"
    version = 1

    def inputs(self):
        return (Input("field", "funding_rate"),)

    def warmup(self) -> int:
        return 0

    def compute(self, ops, x):
        return x.field("funding_rate") + 0.0


class _FundingWindow(StrictModel):
    window: int = Field(default=96, ge=2, description="rows")


@register
class FundingMean(ExprFeature):
    """Rolling mean of the last settled funding rate over ``window`` rows (time-weighted)."""

    name = "funding_mean"
    family = "derivatives"
    version = 1
    Params = _FundingWindow

    def inputs(self):
        return (Input("field", "funding_rate"),)

    def warmup(self) -> int:
        return self.params.window - 1

    def compute(self, ops, x):
        return ops.rolling_sum(x.field("funding_rate"), self.params.window) / self.params.window


class _Interval(StrictModel):
    interval: str = "8h"
    offset: str = "0s"

    @field_validator("interval", "offset")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


@register
class TimeToFunding(ExprFeature):
    """Fraction of the funding interval left until the next settlement, in (0, 1].

    Settlements are at ``offset + k * interval`` (UTC epoch grid; Binance/BitMEX: 8h, offset 0).
    Global: every instrument on the same schedule shares one column.
    """

    name = "time_to_funding"
    family = "derivatives"
    version = 1
    scope = "global"
    Params = _Interval

    def inputs(self):
        return ()

    def warmup(self) -> int:
        return 0

    def stems(self):
        return (f"time_to_funding_{self.params.interval}",)

    def compute(self, ops, x):
        iv = parse_duration(self.params.interval)
        off = parse_duration(self.params.offset)
        since = (as_int64(x.t) - off) % iv
        return (iv - since).astype(np.float64) / float(iv)


class _Basis(StrictModel):
    price: str = "mark_price"
    reference: str = "index_price"


@register
class Basis(ExprFeature):
    """Basis: price / reference − 1 (default mark vs index; e.g. ``price: close`` vs a spot index)."""

    name = "basis"
    family = "derivatives"
    version = 1
    Params = _Basis

    def inputs(self):
        return (Input("field", self.params.price), Input("field", self.params.reference))

    def warmup(self) -> int:
        return 0

    def stems(self):
        p = self.params
        if (p.price, p.reference) == ("mark_price", "index_price"):
            return ("basis",)
        return (f"basis_{p.price}_{p.reference}",)

    def compute(self, ops, x):
        return safe_div(x.field(self.params.price), x.field(self.params.reference)) - 1.0


class _OI(StrictModel):
    horizon: int = Field(default=1, ge=1)
    field: str = "open_interest"


@register
class OpenInterestChange(ExprFeature):
    """log change of open interest over ``horizon`` rows (panel field ``open_interest`` by default).

    The field comes from an ``open_interest`` source (exchange dumps or a vendor ``Date,Data``
    export, :mod:`dea.data.loaders.vendor`), as-of joined on its ``available_at``.
    """

    name = "oi_change"
    family = "derivatives"
    version = 1
    Params = _OI

    def inputs(self):
        return (Input("field", self.params.field),)

    def warmup(self) -> int:
        return self.params.horizon

    def stems(self):
        return (f"oi_change_{self.params.horizon}",)

    def compute(self, ops, x):
        loi = safe_log(x.field(self.params.field))
        return loi - ops.lag(loi, self.params.horizon)
