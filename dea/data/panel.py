"""The decision-clock panel: every source as-of joined onto one clock using ``available_at``.

A value is visible at decision time t only if ``available_at <= t``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Panel:
    """Typed, aligned arrays that the feature engine, the backtester and training consume.

    ``fields`` are per-instrument float64 arrays of shape [T, N] (``open``, ``high``, ``low``,
    ``close``, ``volume`` of the bar that closed at or before t; ``price`` the execution price;
    ``funding_rate`` the latest known rate; ``funding_settled`` the sum of rates settled in
    (t-1, t]; per-asset exogenous series under ``"<series>"``). ``series`` are global float64
    arrays of shape [T]. ``age`` gives, per field/series name, how old (ns) the as-of value
    is at t (same shape as the values; NaN where nothing is known).
    """

    clock: np.ndarray
    step_ns: int
    instruments: tuple[str, ...]
    fields: Mapping[str, np.ndarray]
    series: Mapping[str, np.ndarray] = field(default_factory=dict)
    age: Mapping[str, np.ndarray] = field(default_factory=dict)
    fingerprint: str = ""
