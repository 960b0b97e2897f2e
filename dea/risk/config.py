"""``risk`` section: the rules the risk engine applies identically in backtest and live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field


class VolTargetConfig(StrictModel):
    enabled: bool = False
    target_annual: float = Field(default=0.4, gt=0)
    halflife: int = Field(default=20, ge=1, description="EWMA half-life in decision steps")
    max_scale: float = Field(default=2.0, gt=0)


class DrawdownConfig(StrictModel):
    soft: float = Field(default=0.15, gt=0, lt=1)
    hard: float = Field(default=0.30, gt=0, lt=1)

    @model_validator(mode="after")
    def _order(self) -> "DrawdownConfig":
        if self.hard <= self.soft:
            raise ValueError(f"drawdown.hard ({self.hard}) must exceed drawdown.soft ({self.soft})")
        return self


class StaleGuardConfig(StrictModel):
    max_age: str = "1d"
    action: Literal["hold", "derisk", "flatten"] = "hold"

    _dur = duration_field("max_age")


class RiskConfig(StrictModel):
    max_exposure: float | dict[str, float] = Field(default=1.0, description="per-instrument |w| cap")
    max_gross: float = Field(default=2.0, gt=0)
    max_net: float = Field(default=1.0, gt=0)
    max_leverage: float = Field(default=3.0, gt=0)
    vol_target: VolTargetConfig = Field(default_factory=VolTargetConfig)
    drawdown: DrawdownConfig = Field(default_factory=DrawdownConfig)
    no_trade_band: float = Field(default=0.0, ge=0)
    max_order_notional: float | None = Field(default=None, gt=0, description="fraction of equity")
    max_orders_per_minute: int | None = Field(default=None, ge=1)
    stale: StaleGuardConfig = Field(default_factory=StaleGuardConfig)
    dispersion_scale: float = Field(
        default=0.0, ge=0, description="exposure *= 1/(1 + k*dispersion); 0 disables"
    )
