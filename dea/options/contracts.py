"""Option contracts parsed from exchange instrument names (``BTC-26JUN20-8000-C``).

A contract carries everything its arithmetic needs: underlying, expiry instant, strike, right,
contract multiplier (units of underlying per contract) and the currency its premium and
settlement are paid in. Deribit's coin options (``BTC-...``, ``ETH-...``) are inverse: quoted,
margined and settled in the coin, one coin per contract; its linear options (``SOL_USDC-...``)
are quoted and settled in USDC. Deribit writes a decimal strike with ``d`` (``XRP_USDC-...-0d625-C``).
Expiry is 08:00 UTC on the expiry day (Deribit's rule). Names this module cannot read, and
underlyings whose multiplier it does not know, are refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from dea.options.black76 import OptionError

_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)(?:_(?P<quote>[A-Z]+))?-(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})"
    r"-(?P<strike>\d+(?:[dD.]\d+)?)-(?P<right>[CP])$"
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_NUMBER = {m: i + 1 for i, m in enumerate(MONTHS)}
EXPIRY_HOUR_UTC = {"deribit": 8}
# Units of underlying per contract for Deribit's inverse (coin-settled) options.
COIN_MULTIPLIER = {"BTC": 1.0, "ETH": 1.0}


@dataclass(frozen=True)
class OptionContract:
    """One listed option. ``multiplier``: units of ``underlying`` per contract; ``premium_currency``
    is what the price is quoted and settled in (the coin for inverse options)."""

    name: str
    venue: str
    underlying: str
    expiry_ns: int
    strike: float
    is_call: bool
    multiplier: float
    premium_currency: str

    @property
    def inverse(self) -> bool:
        """Premium and settlement in the underlying coin itself (Deribit BTC/ETH options)."""
        return self.premium_currency == self.underlying


def parse_option_name(name: str, venue: str = "deribit", multipliers: Mapping[str, float] | None = None) -> OptionContract:
    """Parse an exchange option name; ``multipliers`` gives units per contract for linear
    underlyings (``{"SOL_USDC": 1.0}``), which DEA does not guess."""
    if venue not in EXPIRY_HOUR_UTC:
        raise OptionError(f"option {name!r}: unknown venue {venue!r}; known: {sorted(EXPIRY_HOUR_UTC)}")
    m = _NAME.match(name.strip()) if isinstance(name, str) else None
    if m is None:
        raise OptionError(f"option name {name!r} is not UNDERLYING-DDMMMYY-STRIKE-C|P (e.g. BTC-26JUN20-8000-C)")
    mon = _MONTH_NUMBER.get(m["mon"])
    if mon is None:
        raise OptionError(f"option {name!r}: unknown month {m['mon']!r}")
    try:
        expiry = datetime(2000 + int(m["yy"]), mon, int(m["day"]), EXPIRY_HOUR_UTC[venue], tzinfo=timezone.utc)
    except ValueError as exc:
        raise OptionError(f"option {name!r}: bad expiry date ({exc})") from None
    strike = float(m["strike"].replace("d", ".").replace("D", "."))
    if strike <= 0:
        raise OptionError(f"option {name!r}: strike must be positive")
    base, quote = m["base"], m["quote"]
    if quote is None:
        if base not in COIN_MULTIPLIER:
            raise OptionError(f"option {name!r}: no known contract multiplier for coin-settled {base!r} options; known: {sorted(COIN_MULTIPLIER)}")
        multiplier, premium = COIN_MULTIPLIER[base], base
    else:
        key = f"{base}_{quote}"
        if not multipliers or key not in multipliers:
            raise OptionError(f"option {name!r}: linear {key} options need their contract multiplier (multipliers={{{key!r}: ...}})")
        multiplier, premium = float(multipliers[key]), quote
    return OptionContract(
        name=name.strip(),
        venue=venue,
        underlying=base,
        expiry_ns=int(expiry.timestamp()) * 1_000_000_000,
        strike=strike,
        is_call=m["right"] == "C",
        multiplier=multiplier,
        premium_currency=premium,
    )


@dataclass(frozen=True)
class ContractArrays:
    """Parsed contracts of a chain as arrays (one element per input name), for vectorised pricing."""

    name: np.ndarray
    underlying: np.ndarray
    expiry_ns: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    multiplier: np.ndarray
    premium_currency: np.ndarray


def parse_option_names(names: Iterable[str], venue: str = "deribit", multipliers: Mapping[str, float] | None = None) -> ContractArrays:
    """Parse many names (each distinct name once)."""
    names = list(names)
    seen: dict[str, OptionContract] = {}
    for n in names:
        if n not in seen:
            seen[n] = parse_option_name(n, venue, multipliers)
    cs = [seen[n] for n in names]
    return ContractArrays(
        name=np.array([c.name for c in cs], dtype=object),
        underlying=np.array([c.underlying for c in cs], dtype=object),
        expiry_ns=np.array([c.expiry_ns for c in cs], dtype=np.int64),
        strike=np.array([c.strike for c in cs], dtype=np.float64),
        is_call=np.array([c.is_call for c in cs], dtype=bool),
        multiplier=np.array([c.multiplier for c in cs], dtype=np.float64),
        premium_currency=np.array([c.premium_currency for c in cs], dtype=object),
    )
