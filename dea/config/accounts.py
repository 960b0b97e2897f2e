"""``accounts`` section: where each instrument's collateral sits, in what currency, and the rules
per venue (counterparty).

Why a section of its own: an exchange computes equity, margin and liquidation per account, in the
account's collateral currency (USDT at Binance USDT-M, BTC at Binance COIN-M), and a venue is a
counterparty whose failure loses what is held there. Without this section every instrument sits in
one implicit quote-currency account per venue with no spot margin and no venue limits, which is
what configs written before it meant (except that spot is now long-only and unlevered, as a cash
account is).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dea.config.base import StrictModel


class AccountConfig(StrictModel):
    """One account at one venue.

    ``collateral``: the currency the account holds (``USDT``, ``USDC``, ``BTC`` ...); converted to
    ``accounts.reporting_currency`` at the current price, less ``haircut`` when it is not the
    reporting currency (a coin's USD value can fall while it is posted). ``margin``: the account
    may short and lever spot (a spot margin account); without it spot is long-only and unlevered.
    ``margin_mode``: ``cross`` (one collateral pool for all positions: one liquidation for the
    account) or ``isolated`` (each position has its own collateral and liquidation price).
    ``max_gross``: cap on the sum of |exposure| of the account's instruments (fraction of total
    equity); ``max_equity_share``: the most of total equity that may be posted at this venue
    (counterparty limit), where a position needs ``1 / leverage`` of its notional as collateral
    and unlevered spot needs all of it.
    """

    name: str = Field(min_length=1)
    venue: str = Field(min_length=1)
    collateral: str = Field(default="USD", min_length=1)
    margin: bool = False
    margin_mode: Literal["cross", "isolated"] = "cross"
    leverage: float | None = Field(
        default=None, ge=1.0,
        description="initial margin = notional / leverage; None = not limited here (risk.max_leverage still applies)",
    )
    haircut: float = Field(default=0.0, ge=0.0, lt=1.0, description="share of non-reporting collateral not counted")
    max_gross: float | None = Field(default=None, gt=0)
    max_equity_share: float = Field(default=1.0, gt=0, le=1.0)

    @model_validator(mode="after")
    def _isolated_needs_leverage(self) -> "AccountConfig":
        if self.margin_mode == "isolated" and self.leverage is None:
            raise ValueError(
                f"account {self.name!r} is isolated: set 'leverage' (each position's isolated margin is its "
                "notional / leverage)"
            )
        return self


class AccountsConfig(StrictModel):
    """``accounts: {reporting_currency: USD, list: [...]}``; instruments name their account with
    ``account:`` (or fall back to the one account of their venue)."""

    reporting_currency: str = Field(default="USD", min_length=1)
    list: tuple[AccountConfig, ...] = ()

    @field_validator("list")
    @classmethod
    def _unique(cls, v: tuple[AccountConfig, ...]) -> tuple[AccountConfig, ...]:
        names = [a.name for a in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicated account names: {dup}")
        return v

    @model_validator(mode="after")
    def _haircut_only_foreign(self) -> "AccountsConfig":
        for a in self.list:
            if a.haircut > 0 and a.collateral == self.reporting_currency:
                raise ValueError(
                    f"account {a.name!r}: a haircut applies to collateral other than the reporting currency "
                    f"({self.reporting_currency}); its collateral is {a.collateral}"
                )
        return self

    def by_name(self, name: str) -> AccountConfig | None:
        for a in self.list:
            if a.name == name:
                return a
        return None


def default_account(venue: str, currency: str) -> AccountConfig:
    """The implicit account of a venue nobody configured, holding ``currency`` (the instrument's
    settlement currency): spot long-only and unlevered, derivatives cross-margined, no venue
    limits. Named ``venue:currency`` so a venue's linear and inverse books stay apart."""
    return AccountConfig(name=f"{venue}:{currency}", venue=venue, collateral=currency)


def resolve_accounts(instruments: Sequence, accounts: AccountsConfig | None) -> tuple[AccountConfig, ...]:
    """The account of each instrument, in instrument order.

    An instrument naming ``account:`` gets that account (an unknown name, or an account at another
    venue, is an error); otherwise the single configured account at its venue, or the implicit
    :func:`default_account`. Two configured accounts at one venue make the choice ambiguous, so
    the instrument must name one.
    """
    from dea.errors import ConfigError

    accounts = accounts or AccountsConfig()
    out = []
    for inst in instruments:
        if inst.account is not None:
            acc = accounts.by_name(inst.account)
            if acc is None:
                known = [a.name for a in accounts.list]
                raise ConfigError(f"instrument {inst.symbol!r} names account {inst.account!r}; accounts are {known}")
            if acc.venue != inst.venue:
                raise ConfigError(
                    f"instrument {inst.symbol!r} is at venue {inst.venue!r} but its account {acc.name!r} is at {acc.venue!r}"
                )
        else:
            at_venue = [a for a in accounts.list if a.venue == inst.venue]
            if len(at_venue) > 1:
                raise ConfigError(
                    f"instrument {inst.symbol!r}: venue {inst.venue!r} has accounts {[a.name for a in at_venue]}; "
                    "name one with 'account:'"
                )
            acc = at_venue[0] if at_venue else default_account(inst.venue, inst.settlement_currency)
        if inst.kind in ("perpetual", "future") and acc.collateral != inst.settlement_currency:
            raise ConfigError(
                f"instrument {inst.symbol!r} is {inst.contract} and settles in {inst.settlement_currency}, but its "
                f"account {acc.name!r} holds {acc.collateral}; give it an account with collateral: "
                f"{inst.settlement_currency}"
            )
        out.append(acc)
    return tuple(out)
