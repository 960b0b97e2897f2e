"""``stress`` section: the scenario library replayed through the live loop.

Each scenario is one entry of ``stress.scenarios`` with a ``kind`` selecting its generator in
:mod:`dea.stress.scenarios` and that generator's parameters (unknown keys are refused, like
everywhere else). Synthetic shocks are applied to a *base path* — the most recent
``base_steps`` decision steps of the experiment's own data — starting at ``start`` (a share of
the base path), so the same library fits any clock and any instrument set.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field


class _Scenario(StrictModel):
    name: str | None = Field(default=None, description="label in reports (default: the kind)")
    start: float = Field(default=0.5, ge=0, lt=1, description="shock onset as a share of the base path")
    instruments: list[str] | None = Field(default=None, description="instruments hit (default all)")
    min_steps: int = Field(default=1, ge=1, description="shock window at least this many decision steps (coarse clocks)")

    @property
    def label(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class FlashCrashScenario(_Scenario):
    """Price falls by ``drop`` over ``duration``, then recovers ``recovery`` of the fall over
    ``recovery_duration`` and stays there."""

    kind: Literal["flash_crash"] = "flash_crash"
    drop: float = Field(default=0.2, gt=0, lt=1)
    duration: str = "10m"
    recovery: float = Field(default=0.5, ge=0, le=1)
    recovery_duration: str = "2h"
    volume_factor: float = Field(default=5.0, ge=1)
    spread_factor: float = Field(default=5.0, ge=1)

    _dur = duration_field("duration", "recovery_duration")


class VolSpikeScenario(_Scenario):
    """Log returns scaled by ``factor`` around their mean for ``duration``."""

    kind: Literal["vol_spike"] = "vol_spike"
    min_steps: int = Field(default=10, ge=2)
    factor: float = Field(default=4.0, gt=1)
    duration: str = "1d"

    _dur = duration_field("duration")


class LiquidityDrainScenario(_Scenario):
    """Depth multiplied by ``depth_factor`` and the spread by ``spread_factor`` for ``duration``."""

    kind: Literal["liquidity_drain"] = "liquidity_drain"
    depth_factor: float = Field(default=0.1, gt=0, le=1)
    spread_factor: float = Field(default=10.0, ge=1)
    duration: str = "6h"

    _dur = duration_field("duration")


class FundingSqueezeScenario(_Scenario):
    """Every funding settlement (each ``interval``) during ``duration`` pays ``rate``
    (positive: longs pay shorts)."""

    kind: Literal["funding_squeeze"] = "funding_squeeze"
    rate: float = Field(default=0.003, ge=-0.05, le=0.05)
    interval: str = "8h"
    duration: str = "3d"

    _dur = duration_field("interval", "duration")


class CorrelationOneScenario(_Scenario):
    """Every instrument's returns follow ``leader``'s (rescaled to its own volatility)."""

    kind: Literal["correlation_one"] = "correlation_one"
    min_steps: int = Field(default=10, ge=2)
    leader: str | None = Field(default=None, description="default: the first instrument")
    duration: str = "2d"

    _dur = duration_field("duration")


class StaleFeedScenario(_Scenario):
    """The market-data feed delivers nothing for ``duration`` (the market keeps moving)."""

    kind: Literal["stale_feed"] = "stale_feed"
    duration: str = "30m"

    _dur = duration_field("duration")


class LatencySpikeScenario(_Scenario):
    """Orders take ``latency`` to reach the exchange for ``duration``."""

    kind: Literal["latency_spike"] = "latency_spike"
    latency: str = "30s"
    duration: str = "2h"

    _dur = duration_field("latency", "duration")


class OrderRejectsScenario(_Scenario):
    """The exchange rejects a ``share`` of orders (all by default) for ``duration``."""

    kind: Literal["order_rejects"] = "order_rejects"
    share: float = Field(default=1.0, gt=0, le=1)
    duration: str = "1h"
    seed: int = 0

    _dur = duration_field("duration")


class HistoricalScenario(_Scenario):
    """A window of a real price series replayed step by step onto the base clock (one source
    step per decision step: a daily −39 % day hits as one bar), from ``start_time`` to
    ``end_time``. ``source`` is a Coin Metrics CSV (``format: coinmetrics``, ``column``) or a
    freqtrade feather of bars (``format: freqtrade``, close prices)."""

    kind: Literal["historical"] = "historical"
    source: str
    format: Literal["coinmetrics", "freqtrade"] = "coinmetrics"
    column: str = "PriceUSD"
    start_time: str
    end_time: str


class WorstDrawdownScenario(_Scenario):
    """The ``rank``-th worst peak-to-trough fall lasting at most ``max_length`` steps of the source
    series (found automatically), padded by ``pad`` steps each side, replayed like
    :class:`HistoricalScenario`. ``source`` None searches the base path itself."""

    kind: Literal["worst_drawdown"] = "worst_drawdown"
    source: str | None = None
    format: Literal["coinmetrics", "freqtrade"] = "freqtrade"
    column: str = "close"
    rank: int = Field(default=1, ge=1)
    max_length: int = Field(default=288, ge=2, description="source steps from peak to trough, at most")
    pad: int = Field(default=24, ge=0)


Scenario = Annotated[
    FlashCrashScenario
    | VolSpikeScenario
    | LiquidityDrainScenario
    | FundingSqueezeScenario
    | CorrelationOneScenario
    | StaleFeedScenario
    | LatencySpikeScenario
    | OrderRejectsScenario
    | HistoricalScenario
    | WorstDrawdownScenario,
    Field(discriminator="kind"),
]


def default_scenarios() -> list[Scenario]:
    """The built-in library: every synthetic shock once, plus the base path's worst fall."""
    return [
        FlashCrashScenario(),
        VolSpikeScenario(),
        LiquidityDrainScenario(),
        FundingSqueezeScenario(),
        FundingSqueezeScenario(name="funding_squeeze_neg", rate=-0.003),
        CorrelationOneScenario(),
        StaleFeedScenario(),
        LatencySpikeScenario(),
        OrderRejectsScenario(),
        WorstDrawdownScenario(),
    ]


class StressConfig(StrictModel):
    """``scenarios`` replaces the built-in library; ``extra`` adds to it (e.g. a historical window
    of the experiment's own data). :attr:`all` is what runs."""

    scenarios: list[Scenario] = Field(default_factory=default_scenarios)
    extra: list[Scenario] = Field(default_factory=list)
    base_steps: int = Field(default=1000, ge=10, description="decision steps in the base path")
    warmup_steps: int = Field(default=300, ge=0, description="steps replayed before scoring starts")
    var_level: float = Field(default=0.99, gt=0.5, lt=1)
    derisk_level: float = Field(
        default=0.5, gt=0, lt=1, description="de-risked = gross exposure <= this share of pre-shock gross"
    )
    max_drawdown: float | None = Field(default=None, gt=0, lt=1, description="promotion gate, None = risk.drawdown.hard")

    @property
    def all(self) -> list[Scenario]:
        return [*self.scenarios, *self.extra]

    @model_validator(mode="after")
    def _unique_labels(self) -> "StressConfig":
        labels = [s.label for s in self.all]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"duplicated scenario names {dup}: give each a distinct 'name'")
        return self
