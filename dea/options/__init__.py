"""Options: Black-76 prices and greeks, implied volatility, contract names, portfolio greeks.

numpy only (no scipy, pandas or torch), so the live loop can price and check option orders with
the same code as the backtest. Greeks follow Deribit's units (per coin; vega per vol point, theta
per day), which :mod:`tests.options` checks against the exchange's published greeks.
"""

from dea.options.black76 import Greeks, OptionError, coin_delta, greeks, price, year_fraction
from dea.options.contracts import ContractArrays, OptionContract, parse_option_name, parse_option_names
from dea.options.implied_vol import implied_vol
from dea.options.portfolio import GreekExposure, PortfolioGreeks, aggregate, position_greeks

__all__ = [
    "ContractArrays",
    "GreekExposure",
    "Greeks",
    "OptionContract",
    "OptionError",
    "PortfolioGreeks",
    "aggregate",
    "coin_delta",
    "greeks",
    "implied_vol",
    "parse_option_name",
    "parse_option_names",
    "position_greeks",
    "price",
    "year_fraction",
]
