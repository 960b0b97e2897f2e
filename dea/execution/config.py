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


class RouteVenue(StrictModel):
    """One venue an instrument can be routed to, with its per-order limits there."""

    venue: str = Field(min_length=1)
    symbol: str | None = Field(default=None, description="the venue's symbol (default: the DEA symbol)")
    taker_fee: float = Field(default=0.0005, ge=0, le=0.05)
    maker_fee: float | None = Field(default=None, ge=-0.01, le=0.05, description="default: the instrument's")
    lot: float = Field(default=0.0, ge=0)
    min_notional: float = Field(default=0.0, ge=0)
    max_qty: float | None = Field(default=None, gt=0)
    max_notional: float | None = Field(default=None, gt=0)
    capture: str | None = Field(
        default=None, description="event backtest: this venue's binance_ws capture (a path, resolved like a source's); "
                                  "default: the instrument's book data source",
    )
    capture_market: Literal["auto", "futures", "spot"] = Field(default="auto", description="the capture's sequencing")
    exchange: str | None = Field(default=None, description="dea serve, ccxt: the ccxt venue id (default: --exchange's)")
    urls: dict[str, str] = Field(
        default_factory=dict, description="dea serve, ccxt: this venue's endpoint overrides (as serving.venue_urls)"
    )


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
    routes: dict[str, list[RouteVenue]] = Field(
        default_factory=dict, description="DEA symbol -> venues it may be split across (dea.execution.routing)"
    )
    cost_fragment: str | None = Field(
        default=None, description="costs calibrated from fills (YAML written by dea.execution.calibration)"
    )

    _dur = duration_field("horizon", "pov_interval", "passive_timeout", "submit_latency", "cancel_latency")

    @property
    def worked(self) -> bool:
        """Orders go through the execution desk (schedules, queue-aware fills, routing): an algo
        other than ``immediate``, or any instrument routed across venues (``routes``)."""
        return self.algo != "immediate" or any(self.routes.values())

    def ns(self, name: str) -> int:
        return parse_duration(getattr(self, name))
