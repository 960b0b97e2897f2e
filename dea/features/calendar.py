"""Calendar features: hour of day and day of week as sin/cos pairs (UTC), so 23:00 is close to 00:00."""

from __future__ import annotations

import math

import numpy as np

from dea.features.base import ExprFeature
from dea.features.ops import as_int64
from dea.features.registry import register
from dea.timeutil import NS_PER_DAY

_TAU = 2.0 * math.pi
_MONDAY_OFFSET = 3  # 1970-01-01 was a Thursday: (days + 3) % 7 == 0 on Mondays


@register
class HourOfDay(ExprFeature):
    """sin/cos of the UTC time of day of the decision (continuous: minutes included)."""

    name = "hour_of_day"
    family = "calendar"
    version = 1
    scope = "global"

    def inputs(self):
        return ()

    def warmup(self) -> int:
        return 0

    def stems(self):
        return ("hour_sin", "hour_cos")

    def compute(self, ops, x):
        frac = (as_int64(x.t) % NS_PER_DAY).astype(np.float64) / NS_PER_DAY
        return np.sin(_TAU * frac), np.cos(_TAU * frac)


@register
class DayOfWeek(ExprFeature):
    """sin/cos of the UTC day of week (Monday = 0)."""

    name = "day_of_week"
    family = "calendar"
    version = 1
    scope = "global"

    def inputs(self):
        return ()

    def warmup(self) -> int:
        return 0

    def stems(self):
        return ("dow_sin", "dow_cos")

    def compute(self, ops, x):
        dow = ((as_int64(x.t) // NS_PER_DAY + _MONDAY_OFFSET) % 7).astype(np.float64)
        return np.sin(_TAU * dow / 7.0), np.cos(_TAU * dow / 7.0)
