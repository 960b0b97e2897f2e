"""Configs of the rolled option overlay, shared by the overlay backtest and ``dea serve``.

Why a module of its own: the overlay backtest (:mod:`dea.backtest.options_overlay`) and the
serving config (``serving.options_overlay``, :mod:`dea.config.serving`) must describe the same
leg, fees and budgets with the same models, and the serving config cannot import the backtest.
pydantic + :mod:`dea.risk.greeks` only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field
from dea.risk.greeks import GreekBudgetConfig


class OverlayLegConfig(StrictModel):
    """The rolled option: what, how far out of the money, how long, how much."""

    strategy: Literal["protective_put", "covered_call"]
    moneyness: float = Field(gt=0, description="strike / underlying price at the roll")
    tenor: str = Field(default="28d", description="the series expires at the first 08:00 UTC at or after the roll + tenor")
    hedge_ratio: float = Field(default=1.0, gt=0, le=2, description="option units per unit of linear underlying")
    strike_step: float = Field(default=1000.0, gt=0)
    multiplier: float = Field(default=1.0, gt=0, description="underlying units per contract (Deribit BTC: 1)")

    _dur = duration_field("tenor")


class OptionFeeConfig(StrictModel):
    """Deribit's option fees: ``rate`` of the underlying notional, capped at ``cap_of_premium``
    of the premium; ``delivery_rate`` likewise at an in-the-money settlement."""

    rate: float = Field(default=0.0003, ge=0)
    delivery_rate: float = Field(default=0.00015, ge=0)
    cap_of_premium: float = Field(default=0.125, ge=0)


class LiveIVConfig(StrictModel):
    """The live overlay's implied volatility: exactly one of a ``flat`` volatility (fraction) or a
    panel ``field`` fed by a data source (a ``format: deribit_dvol`` exogenous source with
    ``entity`` the underlying gives the field ``dvol``), no older than ``max_age``."""

    flat: float | None = Field(default=None, gt=0)
    field: str | None = Field(default=None, min_length=1, description="panel field of the underlying's instrument (e.g. dvol)")
    max_age: str = "2d"

    _dur = duration_field("max_age")

    @model_validator(mode="after")
    def _one(self) -> "LiveIVConfig":
        if (self.flat is None) == (self.field is None):
            raise ValueError("give exactly one of iv.flat (a volatility) or iv.field (a panel field such as dvol)")
        return self


class LiveOverlayConfig(StrictModel):
    """``serving.options_overlay``: the overlay the live loop runs on one perpetual.

    ``instrument``: the perpetual (a ``data.instruments`` symbol) whose decided exposure the leg
    protects or covers; its ``base`` is the option's underlying. The option trades on the paper
    option venue only (:mod:`serving.exchanges.paper_options`). ``price_max_age``: an
    underlying price older than this (its last good value) makes the overlay hold."""

    instrument: str = Field(min_length=1)
    leg: OverlayLegConfig
    fees: OptionFeeConfig = Field(default_factory=OptionFeeConfig)
    iv: LiveIVConfig
    budgets: GreekBudgetConfig = Field(default_factory=GreekBudgetConfig)
    price_max_age: str = "1h"

    _dur = duration_field("price_max_age")


__all__ = ["LiveIVConfig", "LiveOverlayConfig", "OptionFeeConfig", "OverlayLegConfig"]
