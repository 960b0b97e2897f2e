"""Instrument definitions: what is traded, where, and the contract terms costs depend on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field
from dea.timeutil import parse_duration

InstrumentKind = Literal["spot", "perpetual", "future", "option"]


class FundingRateFill(StrictModel):
    """``funding_missing: {rate: X}``: charge the constant rate X per missing settlement."""

    rate: float = Field(ge=-0.05, le=0.05)


FundingMissing = Literal["error", "impute_median", "from_first"] | FundingRateFill


class Instrument(StrictModel):
    """One tradable instrument.

    ``funding`` names the funding source for a perpetual (a source ``name`` in ``data.sources``)
    or is ``"none"`` to declare explicitly that the data has no funding history; a perpetual with
    neither is refused, because treating missing funding as zero biases every backtest.
    """

    symbol: str = Field(min_length=1)
    venue: str = "unknown"
    kind: InstrumentKind = "spot"
    base: str = ""
    quote: str = "USD"
    contract_size: float = Field(default=1.0, gt=0)
    tick_size: float = Field(default=0.0, ge=0)
    lot_size: float = Field(default=0.0, ge=0, description="minimum quantity increment (base units)")
    min_notional: float = Field(default=0.0, ge=0)
    maker_fee: float = Field(default=0.0002, ge=-0.01, le=0.05)
    taker_fee: float = Field(default=0.0005, ge=-0.01, le=0.05)
    funding_interval: str | None = None
    funding: str | None = None
    expiry: str | None = None
    maintenance_margin: float = Field(default=0.005, ge=0, le=1)
    funding_missing: FundingMissing = Field(
        default="error",
        description=(
            "settlements the funding source lacks on the clock: error | impute_median (median of the "
            "other perpetuals' rates at that settlement) | {rate: X} | from_first (nothing charged "
            "before the first real rate); applied only where data is missing, counted in the panel's "
            "coverage report (dea.data.coverage)"
        ),
    )

    _dur = duration_field("funding_interval")

    @model_validator(mode="after")
    def _perpetual_needs_funding(self) -> "Instrument":
        if self.kind == "perpetual" and self.funding is None:
            raise ValueError(
                f"instrument {self.symbol!r} is a perpetual but names no funding source: set "
                "'funding: <source name>' or declare 'funding: none' explicitly"
            )
        if self.funding_missing != "error" and not self.has_funding:
            raise ValueError(f"instrument {self.symbol!r}: funding_missing applies only to a perpetual with a funding source")
        if self.kind != "perpetual" and self.funding not in (None, "none"):
            raise ValueError(f"instrument {self.symbol!r} is {self.kind}; only perpetuals have funding")
        return self

    @property
    def funding_interval_ns(self) -> int | None:
        return None if self.funding_interval is None else parse_duration(self.funding_interval)

    @property
    def has_funding(self) -> bool:
        return self.kind == "perpetual" and self.funding not in (None, "none")
