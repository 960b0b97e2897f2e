"""``execution`` section of the experiment config: how a target change is worked (the schedule
of :mod:`dea.execution.schedule`), how limit orders are simulated (:mod:`dea.execution.queue`),
the venues an instrument may be routed to (:mod:`dea.execution.routing`) and the cost fragment
calibrated from fills (:mod:`dea.execution.calibration`) that overrides ``costs``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field
from dea.timeutil import parse_duration

Algo = Literal["immediate", "twap", "pov", "passive_aggressive"]


class ExecutionConfig(StrictModel):
    """``execution`` section: how a target change is worked and how limit orders are simulated."""

    algo: Algo = "immediate"
    horizon: str = Field(default="60s", description="twap: time over which the slices are spread; pov: deadline")
    slices: int = Field(default=6, ge=1, le=10_000)
    participation: float = Field(default=0.1, gt=0, le=1, description="pov: share of public volume")
    pov_interval: str = Field(default="1s", description="pov: how often the schedule tops up")
    passive_timeout: str = Field(default="10s", description="passive_aggressive: rest this long, then cross")
    queue_model: Literal["power", "risk_averse"] = "power"
    queue_power: float = Field(default=1.0, gt=0, description="power queue model exponent (1 = proportional)")
    submit_latency: str = Field(default="0s", description="simulated order -> venue delay")
    cancel_latency: str = Field(default="0s", description="simulated cancel -> venue delay")
    cost_fragment: str | None = Field(
        default=None, description="costs calibrated from fills (YAML written by dea.execution.calibration)"
    )

    _dur = duration_field("horizon", "pov_interval", "passive_timeout", "submit_latency", "cancel_latency")

    def ns(self, name: str) -> int:
        return parse_duration(getattr(self, name))
