"""``serving`` section: the live loop's settings (``dea serve``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field


class ServingConfig(StrictModel):
    """How the live allocator loop runs.

    ``fallback``: what the loop does when the model fails (an error or a NaN output): ``hold``
    the current exposure, ``derisk`` (current exposure x ``derisk_factor``) or ``flatten``; the
    risk engine then applies its rules as usual. Stale inputs are handled by the risk engine's
    ``risk.stale`` guard (the same rule as in the backtest); ``max_feature_age`` adds a loop-level
    guard that takes the fallback action when any input is older (None = risk guard only).
    """

    journal: str = Field(default="dea_journal.sqlite", description="SQLite state journal (relative to the cwd)")
    journal_sync: Literal["full", "normal", "off"] = Field(
        default="full", description="SQLite synchronous level: full survives power loss, normal survives a crash"
    )
    fallback: Literal["hold", "derisk", "flatten"] = "hold"
    derisk_factor: float = Field(default=0.5, ge=0, le=1)
    max_feature_age: str | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    testnet: bool = True
    secrets_file: str | None = None
    model_poll: str | None = Field(
        default="30s", description="how often a registry/file model source is checked for a new version (None: never)"
    )
    venue_symbols: dict[str, str] = Field(
        default_factory=dict, description="DEA symbol -> venue symbol for ccxt (e.g. BTCUSDT: BTC/USDT:USDT)"
    )
    impact_k: float | None = Field(
        default=None, ge=0, description="paper fills: square-root impact k when costs.impact.k is null (estimated)"
    )
    book_levels: int = Field(default=200, ge=1, description="paper fills walk at most this many book levels")
    client_id_prefix: str = Field(default="dea", pattern=r"^[A-Za-z0-9_.:-]{1,8}$")
    tick: str = Field(default="1s", description="live feeds: how often a quiet feed still advances the clock")

    _dur = duration_field("max_feature_age", "model_poll", "tick")
