"""``costs`` section (what trading charges) and ``backtest`` section (baselines, annualisation).

Latency rule (one place): an order decided at t fills at t + latency. ``costs.latency`` and
``data.clock.latency`` name the same delay; set either (both set to different values is an error,
see :func:`resolve_latency_ns`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field
from dea.errors import ConfigError
from dea.timeutil import parse_duration

if TYPE_CHECKING:  # pragma: no cover
    from dea.config.experiment import ExperimentConfig


class ImpactConfig(StrictModel):
    """Market impact. ``sqrt``: the price moves k * sigma * sqrt(|dw| * equity / ADV) and the order
    pays that on its notional; ``book``: walk the L2 book where depth exists (falls back to
    ``sqrt`` elsewhere); ``none``: no impact. ``k: null`` estimates k per instrument from the data
    (least squares of |return| on sigma * sqrt(volume / ADV))."""

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


BASELINE_NAMES: tuple[str, ...] = (
    "buy_and_hold",
    "equal_weight",
    "inverse_vol",
    "tsmom",
    "hrp",
    "mean_risk",
)


class BaselineConfig(StrictModel):
    """Parameters of the baseline allocators (durations are converted to decision steps)."""

    benchmark: str | None = Field(
        default=None, description="buy-and-hold instrument (None = first instrument with base BTC, else the first)"
    )
    rebalance: str = Field(default="1d", description="equal weight / inverse vol / tsmom rebalance period")
    vol_lookback: str = "30d"
    momentum_lookback: str = "30d"
    target_vol: float = Field(default=0.4, gt=0, description="annualised, for tsmom")
    max_weight: float = Field(default=1.0, gt=0, description="per-instrument |w| cap of the baselines")
    refit: str = Field(default="30d", description="skfolio refit period (hrp, mean_risk)")
    fit_lookback: str = Field(default="180d", description="history each skfolio refit uses")
    mean_risk_objective: Literal["min_risk", "max_ratio"] = "min_risk"

    _dur = duration_field("rebalance", "vol_lookback", "momentum_lookback", "refit", "fit_lookback")


class BacktestConfig(StrictModel):
    """``backtest`` section: what ``dea backtest`` compares and how it annualises."""

    baselines: list[str] = Field(default_factory=lambda: list(BASELINE_NAMES))
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    periods_per_year: float | None = Field(default=None, gt=0, description="None = from the clock step")
    engine: Literal["numba", "reference"] = "numba"


def resolve_latency_ns(costs: CostsConfig, clock_latency: str | None = None) -> int:
    """The decision -> fill delay in ns from ``costs.latency`` and ``data.clock.latency``."""
    a = parse_duration(costs.latency)
    b = parse_duration(clock_latency) if clock_latency is not None else 0
    if a < 0 or b < 0:
        raise ConfigError(f"latency must be >= 0 (costs.latency={costs.latency!r}, data.clock.latency={clock_latency!r})")
    if a and b and a != b:
        raise ConfigError(
            f"costs.latency ({costs.latency}) and data.clock.latency ({clock_latency}) disagree; set one of them"
        )
    return a or b


def latency_from_config(cfg: "ExperimentConfig") -> int:
    return resolve_latency_ns(cfg.costs, cfg.data.clock.latency)
