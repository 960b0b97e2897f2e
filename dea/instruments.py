"""Instrument definitions: what is traded, where, and the contract terms its arithmetic depends on.

An instrument's kind fixes its arithmetic (DESIGN.md): ``spot`` is long-only and unlevered unless
its account has margin; a ``perpetual`` or ``future`` is ``linear`` (PnL, margin and funding in the
quote currency, ``contract_size`` base units per contract) or ``inverse`` (coin-margined: PnL,
margin and funding in the base coin, ``contract_size`` quote-currency units per contract, e.g.
100 USD for Binance COIN-M ``BTCUSD_PERP``); a ``future`` has an ``expiry`` at which it settles
and may roll into another instrument before it.

In the reporting-currency backtest an inverse position is held as its linear equivalent (a fill of
``N`` quote notional at ``P`` is ``N / P`` coins), which values it exactly in the reporting currency
(:mod:`dea.risk.margin`); the per-account ledger (:mod:`dea.backtest.ledger`) and the paper venue's
statement keep it in the coin. ``kind: option`` belongs to the options overlay
(:mod:`dea.options`, ``dea.backtest.options_overlay``): the core's exposure arithmetic refuses it
(:func:`refuse_options`) instead of treating an option as a linear instrument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field
from dea.errors import ConfigError
from dea.timeutil import parse_duration, parse_timestamp

InstrumentKind = Literal["spot", "perpetual", "future", "option"]
ContractType = Literal["linear", "inverse"]


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
    contract: ContractType = Field(
        default="linear",
        description="linear (settles in the quote currency) or inverse (coin-margined: settles in the base coin); "
        "perpetuals and futures only",
    )
    contract_size: float = Field(
        default=1.0, gt=0,
        description="per contract: base units (linear) or quote-currency units (inverse, e.g. 100 USD)",
    )
    account: str | None = Field(
        default=None, description="name of the account in the 'accounts' section (None = the venue's account)"
    )
    tick_size: float = Field(default=0.0, ge=0)
    lot_size: float = Field(default=0.0, ge=0, description="minimum quantity increment (base units)")
    min_notional: float = Field(default=0.0, ge=0)
    maker_fee: float = Field(default=0.0002, ge=-0.01, le=0.05)
    taker_fee: float = Field(default=0.0005, ge=-0.01, le=0.05)
    funding_interval: str | None = None
    funding: str | None = None
    expiry: str | None = Field(default=None, description="ISO UTC instant a dated future settles (futures only)")
    roll_to: str | None = Field(
        default=None, description="future: instrument that takes over its exposure at expiry - roll_before"
    )
    roll_before: str = Field(default="0s", description="future: how long before expiry the exposure rolls")
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

    _dur = duration_field("funding_interval", "roll_before")

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

    @model_validator(mode="after")
    def _contract_terms(self) -> "Instrument":
        """Every contract field is used by this kind or refused: none is accepted and ignored."""
        s, k = self.symbol, self.kind
        if k == "spot":
            if self.contract != "linear":
                raise ValueError(f"instrument {s!r} is spot: 'contract: {self.contract}' applies to perpetuals and futures")
            if self.contract_size != 1.0:
                raise ValueError(f"instrument {s!r} is spot: contract_size applies to perpetuals and futures "
                                 "(use lot_size for the quantity increment)")
            if self.funding_interval is not None:
                raise ValueError(f"instrument {s!r} is spot: funding_interval applies to perpetuals only")
        if k == "future":
            if self.expiry is None:
                raise ValueError(f"instrument {s!r} is a dated future but has no expiry (ISO UTC instant)")
            try:
                parse_timestamp(self.expiry)
            except Exception as exc:  # noqa: BLE001 - any parse failure is a config error here
                raise ValueError(f"instrument {s!r}: expiry {self.expiry!r} is not a timestamp ({exc})") from None
            if self.funding_interval is not None:
                raise ValueError(f"instrument {s!r} is a dated future: it has no funding (funding_interval)")
        elif k != "option":
            if self.expiry is not None:
                raise ValueError(f"instrument {s!r} is {k}: only dated futures (and options) have an expiry")
            if self.roll_to is not None or parse_duration(self.roll_before) != 0:
                raise ValueError(f"instrument {s!r} is {k}: roll_to/roll_before apply to dated futures only")
        if self.roll_to == s:
            raise ValueError(f"instrument {s!r} rolls into itself")
        if self.contract == "inverse" and not self.base:
            raise ValueError(f"instrument {s!r} is inverse (coin-margined) but names no base coin (base: BTC)")
        if self.contract == "inverse" and self.lot_size > 0:
            raise ValueError(
                f"instrument {s!r} is inverse: it trades in contracts of contract_size {self.quote}; lot_size "
                "(base units) does not apply (use min_notional for the smallest order)"
            )
        return self

    @property
    def inverse(self) -> bool:
        """True for a coin-margined contract (PnL, margin and funding in the base coin)."""
        return self.contract == "inverse"

    @property
    def settlement_currency(self) -> str:
        """Currency PnL, margin and funding settle in: the base coin (inverse) or the quote."""
        return self.base if self.inverse else self.quote

    @property
    def expiry_ns(self) -> int | None:
        return None if self.expiry is None else int(parse_timestamp(self.expiry))

    @property
    def roll_ns(self) -> int | None:
        """Instant the exposure leaves this future: ``expiry - roll_before`` (None: no expiry)."""
        e = self.expiry_ns
        return None if e is None else e - parse_duration(self.roll_before)

    def terms(self) -> dict[str, object]:
        """The contract terms a reader (``dea data inspect``, the ONNX contract) needs to see."""
        out: dict[str, object] = {"kind": self.kind, "venue": self.venue, "base": self.base, "quote": self.quote}
        if self.kind in ("perpetual", "future"):
            out.update(contract=self.contract, contract_size=self.contract_size,
                       settlement=self.settlement_currency, maintenance_margin=self.maintenance_margin)
        if self.kind == "perpetual":
            out["funding"] = self.funding
        if self.kind == "future":
            out.update(expiry=self.expiry, roll_to=self.roll_to, roll_before=self.roll_before)
        if self.account is not None:
            out["account"] = self.account
        return out

    @property
    def funding_interval_ns(self) -> int | None:
        return None if self.funding_interval is None else parse_duration(self.funding_interval)

    @property
    def has_funding(self) -> bool:
        return self.kind == "perpetual" and self.funding not in (None, "none")


def refuse_options(instruments: Sequence["Instrument"], where: str) -> None:
    """Raise a :class:`~dea.errors.ConfigError` for any ``kind: option`` instrument.

    Why: an option's value is not linear in its underlying; treating it as a linear exposure would
    silently mis-account it. Options are handled by the options overlay, outside the core's
    linear exposure arithmetic."""
    opts = [i.symbol for i in instruments if i.kind == "option"]
    if opts:
        raise ConfigError(
            f"{where}: instruments {opts} are options; the core's exposure arithmetic (risk engine, "
            "backtest, policy bounds) is for spot, perpetuals and futures only. Trade options through "
            "the options overlay (dea.backtest.options_overlay), not as data.instruments entries"
        )
