"""``costs`` section: what trading charges (fees, spread, impact, funding, latency)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field


class ImpactConfig(StrictModel):
    """Market impact. ``sqrt``: k * sigma * sqrt(|dw| * equity / ADV); ``book``: walk the L2 book
    where depth exists (falls back to ``sqrt`` elsewhere); ``none``: no impact."""

    model: Literal["sqrt", "book", "none"] = "sqrt"
    k: float | None = Field(default=0.5, ge=0, description="None = estimate from volume and volatility")
    adv_window: int = Field(default=30, ge=1, description="decision steps for average volume")
    vol_window: int = Field(default=30, ge=2)


class CostsConfig(StrictModel):
    fee_side: Literal["taker", "maker"] = "taker"
    half_spread_bps: float = Field(default=1.0, ge=0, description="used when no book is available")
    impact: ImpactConfig = Field(default_factory=ImpactConfig)
    funding: Literal["charge", "ignore"] = "charge"
    initial_equity: float = Field(default=1_000_000.0, gt=0)
    latency: str = "0s"

    _dur = duration_field("latency")
