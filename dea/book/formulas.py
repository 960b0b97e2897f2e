"""Order-book feature arithmetic, written once in plain scalar Python.

Why plain: the streaming execution (serving, numpy/stdlib only) calls these functions directly
and the replay execution (:mod:`dea.book.replay`) compiles the *same* source with numba, so both
executions perform the same IEEE operations in the same order. The parity tests then hold the
parts that necessarily differ (how each walks its book) to the same values.

Conventions: prices and sizes are floats; results in basis points are multiplied by 1e4;
undefined values (0/0, one-sided book) are NaN, never 0.
"""

from __future__ import annotations

import math

NAN = math.nan
SIZE_DECIMALS = 8
SIZE_SCALE = 10**SIZE_DECIMALS
"""Depth sums (cumulative level sizes, sizes inside a band) are exact integers of 1e-8 size
units: exact decimal arithmetic, independent of summation order, so the streaming walk and the
vectorised replay give identical values. Sizes with more than 8 decimals are rounded to 1e-8
in these sums only."""


def size_units(size: float) -> int:
    """A size as integer units of 1e-8 (exact for decimal sizes with up to 8 decimals)."""
    return round(size * 1e8)


def mid_price(bid: float, ask: float) -> float:
    return 0.5 * (bid + ask)


def spread_bps(bid: float, ask: float, mid: float) -> float:
    return (ask - bid) / mid * 1e4


def microprice_dev_bps(bid: float, bid_size: float, ask: float, ask_size: float, mid: float) -> float:
    """(microprice - mid) / mid in bps; microprice = size-weighted touch (Stoikov 2018's first
    order proxy): it leans towards the side with *less* size, where the next trade is likelier."""
    den = bid_size + ask_size
    if den <= 0.0:
        return NAN
    micro = (bid * ask_size + ask * bid_size) / den
    return (micro - mid) / mid * 1e4


def imbalance(bid_size: float, ask_size: float) -> float:
    """(bid - ask) / (bid + ask) in [-1, 1]; NaN when both are 0. Given exact integer sizes the
    numerator and denominator are exact, so the result is the correctly rounded ratio."""
    den = bid_size + ask_size
    if den <= 0.0:
        return NAN
    return (bid_size - ask_size) / den


def band_low(mid: float, frac: float) -> float:
    """Lowest bid price inside a band of ``frac`` (bps * 1e-4) around the mid."""
    return mid * (1.0 - frac)


def band_high(mid: float, frac: float) -> float:
    """Highest ask price inside a band of ``frac`` around the mid."""
    return mid * (1.0 + frac)


def slope_side(size_first: float, cum_last: float, price_first: float, price_last: float, mid: float) -> float:
    """Book slope of one side: log growth of cumulative size from the touch to the deepest
    requested level, per bp of price distance between them. Scale-free, so comparable across
    instruments; NaN when the side has fewer levels than requested (price_last NaN)."""
    dist = abs(price_last - price_first) / mid * 1e4
    if not dist > 0.0 or size_first <= 0.0:
        return NAN
    return math.log(cum_last / size_first) / dist


def ofi_increment(
    bid0: float, bid_size0: float, ask0: float, ask_size0: float,
    bid1: float, bid_size1: float, ask1: float, ask_size1: float,
) -> float:
    """Order-flow imbalance of one book change (Cont, Kukanov & Stoikov 2014, eq. 3):
    e = q_b1*1[P_b1 >= P_b0] - q_b0*1[P_b1 <= P_b0] - q_a1*1[P_a1 <= P_a0] + q_a0*1[P_a1 >= P_a0]."""
    e = 0.0
    if bid1 >= bid0:
        e += bid_size1
    if bid1 <= bid0:
        e -= bid_size0
    if ask1 <= ask0:
        e -= ask_size1
    if ask1 >= ask0:
        e += ask_size0
    return e


def log_return_sq(mid0: float, mid1: float) -> float:
    r = math.log(mid1 / mid0)
    return r * r


def realised_vol(sum_sq: float) -> float:
    """sqrt of a running sum of squared log returns (clamped at 0 against rounding)."""
    return math.sqrt(sum_sq) if sum_sq > 0.0 else 0.0


def trade_imbalance(signed_volume: float, volume: float) -> float:
    """(buy - sell) / (buy + sell) volume; NaN when there was no trade."""
    if volume <= 0.0:
        return NAN
    return signed_volume / volume
