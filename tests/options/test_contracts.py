"""Option names as exchanges write them."""

from __future__ import annotations

import pytest

from dea.options import OptionError, parse_option_name
from dea.timeutil import parse_timestamp


def test_deribit_coin_option() -> None:
    c = parse_option_name("BTC-26JUN20-8000-C")
    assert (c.underlying, c.strike, c.is_call, c.multiplier, c.premium_currency, c.inverse) == ("BTC", 8000.0, True, 1.0, "BTC", True)
    assert c.expiry_ns == parse_timestamp("2020-06-26T08:00:00Z")
    p = parse_option_name("ETH-5MAR21-1600-P")
    assert (p.underlying, p.is_call, p.expiry_ns) == ("ETH", False, parse_timestamp("2021-03-05T08:00:00Z"))


def test_linear_usdc_option_needs_its_multiplier() -> None:
    with pytest.raises(OptionError, match="contract multiplier"):
        parse_option_name("XRP_USDC-29MAY26-0d625-C")
    c = parse_option_name("AVAX_USDC-29MAY26-8D6-P", multipliers={"AVAX_USDC": 1.0})
    assert (c.underlying, c.strike, c.premium_currency, c.inverse) == ("AVAX", 8.6, "USDC", False)


@pytest.mark.parametrize("name", ["BTC-26JUN20-8000", "BTC-31JUN20-8000-C", "BTC-26XXX20-8000-C", "BTC-PERPETUAL", "DOGE-26JUN20-1-C"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(OptionError, match=name.split("-")[0] if name.startswith("DOGE") else "option"):
        parse_option_name(name)
