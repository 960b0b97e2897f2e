"""``guards`` section: the market-data guards' thresholds and the action each guard takes.

Why a section of its own: the same guards run in the batch panel, the event backtest, the replay
and the live loop (DESIGN.md: every price, rate and timestamp passes them first), so their
settings belong to the experiment, not to one of those paths.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field

Action = Literal["ignore", "hold", "derisk", "halt"]


class JumpGuardConfig(StrictModel):
    """A move is a *jump* when ``|p / last_good - 1|`` exceeds ``max_move`` (a fixed fraction), or,
    after ``warmup`` good observations, when ``|log(p / last_good)|`` exceeds
    ``max(k_sigma * sigma, min_move)`` (sigma: EWMA of squared log moves, ``halflife`` observations).
    A jump is quarantined until a second price of the same instrument (any source: bar close,
    mark, book mid, trade) confirms it: the next price closer to the jump than to the last good
    price confirms (and is used from then on); one closer to the old level refutes it.
    ``confirm_window``: a jump not confirmed within this time is forgotten (None: the next price
    decides, however late).

    The default ``k_sigma`` lets the largest clean daily moves of the shared history pass (BTC and
    ETH on 2020-03-12: 15 and 13 sigma), so a bars-only *daily* feed does not hold a real crash
    for a day; the cost is that a 50 % daily spike at 3 % daily vol (13 sigma) also passes there.
    On intraday bars (hourly: a 50 % spike is ~80 sigma) or with a second price source (a mark
    confirms a real move at once) the defaults catch it; ``max_move`` adds a fixed-fraction limit."""

    enabled: bool = True
    k_sigma: float | None = Field(default=16.0, gt=0)
    min_move: float = Field(default=0.1, ge=0)
    max_move: float | None = Field(default=None, gt=0)
    halflife: float = Field(default=50.0, gt=0)
    warmup: int = Field(default=30, ge=1)
    confirm_window: str | None = None

    _dur = duration_field("confirm_window")


class GuardActions(StrictModel):
    """What the next decision does for an instrument after one of its values was quarantined.

    ``hold``: keep the instrument's current exposure at the next decision; ``derisk``: scale it by
    ``guards.derisk_factor``; ``halt``: flatten everything and halt (the risk kill switch);
    ``ignore``: only quarantine, count, log and journal."""

    missing: Action = "hold"  # NaN price
    nonfinite: Action = "halt"  # +-inf price or rate
    nonpositive: Action = "hold"  # price <= 0
    jump: Action = "hold"  # unconfirmed move beyond the jump threshold
    conflict: Action = "hold"  # same instrument/source/timestamp, different value
    duplicate: Action = "ignore"  # the same value repeated
    out_of_order: Action = "hold"  # older than the last value of its stream
    future: Action = "hold"  # stamped beyond the local clock plus future_tolerance
    funding_missing: Action = "derisk"  # a perpetual without funding information for > its interval


class GuardsConfig(StrictModel):
    """Market-data guards (see :mod:`dea.guards`).

    ``future_tolerance``: a value stamped later than the local clock plus this is quarantined;
    ``duplicate_rel_tol``: two values of one stream with the same timestamp closer than this
    (relative) are a duplicate, otherwise a conflict; ``funding_missing``: a perpetual with no
    funding information for longer than its funding interval is an ``error`` (the loop stops
    with :class:`~dea.errors.MissingFundingError`) or takes ``actions.funding_missing``;
    ``funding_interval``: the interval assumed when the instrument gives none."""

    enabled: bool = True
    jump: JumpGuardConfig = Field(default_factory=JumpGuardConfig)
    actions: GuardActions = Field(default_factory=GuardActions)
    future_tolerance: str = "5m"
    duplicate_rel_tol: float = Field(default=1e-9, ge=0)
    derisk_factor: float = Field(default=0.5, ge=0, le=1)
    funding_missing: Literal["error", "derisk"] = "derisk"
    funding_interval: str = "8h"

    _dur = duration_field("future_tolerance", "funding_interval")
