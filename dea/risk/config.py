"""``risk`` section: the rules the risk engine applies identically in backtest and live.

Every rule here is enforced by :mod:`dea.risk.rules` (one implementation, run interpreted by the
live :class:`~dea.risk.engine.RiskEngine` and JIT-compiled inside the vectorised backtest), so a
setting means the same thing wherever a target exposure is produced.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field
from dea.risk.greeks import GreekBudgetConfig


class VolTargetConfig(StrictModel):
    """Scale the whole target so its predicted annualised volatility equals ``target_annual``.

    The prediction is sqrt(w' S w) with S an EWMA covariance of instrument returns (half-life
    ``halflife`` decisions, annualised by the actual time between decisions), or, where the caller
    passes per-instrument volatility forecasts, those forecasts combined with the EWMA correlation
    (perfect correlation until the EWMA is warm). No scaling before ``warmup`` observations
    (default: ``halflife``).
    """

    enabled: bool = False
    target_annual: float = Field(default=0.4, gt=0)
    halflife: int = Field(default=20, ge=1, description="EWMA half-life in decision steps")
    max_scale: float = Field(default=2.0, gt=0)
    warmup: int | None = Field(default=None, ge=1, description="observations before scaling (None = halflife)")


class DrawdownConfig(StrictModel):
    """Drawdown from the running equity peak: linear de-risking from ``soft`` (scale 1) to ``hard``
    (scale 0), where the kill switch flattens and halts trading until an explicit reset."""

    enabled: bool = True
    soft: float = Field(default=0.15, gt=0, lt=1)
    hard: float = Field(default=0.30, gt=0, lt=1)

    @model_validator(mode="after")
    def _order(self) -> "DrawdownConfig":
        if self.hard <= self.soft:
            raise ValueError(f"drawdown.hard ({self.hard}) must exceed drawdown.soft ({self.soft})")
        return self


class StaleGuardConfig(StrictModel):
    """An input older than ``max_age`` at decision time: ``hold`` the current exposure,
    ``derisk`` (current exposure times ``derisk_factor``) or ``flatten``."""

    max_age: str = "1d"
    action: Literal["hold", "derisk", "flatten"] = "hold"
    derisk_factor: float = Field(default=0.5, ge=0, le=1)

    _dur = duration_field("max_age")


class RiskConfig(StrictModel):
    max_exposure: float | dict[str, float] = Field(
        default=1.0,
        description="per-instrument |w| cap; a mapping symbol -> cap may give '*' as the default",
    )
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
    greeks: dict[str, GreekBudgetConfig] = Field(
        default_factory=dict,
        description="per-underlying greek budgets (dea.risk.greeks): option orders checked pre-trade, linear "
        "targets cut so linear + option delta stays within max_delta; enforced by the RiskEngine",
    )

    @model_validator(mode="after")
    def _caps_positive(self) -> "RiskConfig":
        caps = self.max_exposure if isinstance(self.max_exposure, dict) else {"*": self.max_exposure}
        bad = {k: v for k, v in caps.items() if not v >= 0}
        if bad:
            raise ValueError(f"max_exposure caps must be >= 0, got {bad}")
        return self
