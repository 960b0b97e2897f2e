"""``serving`` section: the live loop's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field


class ServingConfig(StrictModel):
    journal: str = "dea_journal.sqlite"
    fallback: Literal["hold", "derisk", "flatten"] = "hold"
    derisk_factor: float = Field(default=0.5, ge=0, le=1)
    max_feature_age: str = "2d"
    metrics_port: int | None = None
    testnet: bool = True
    secrets_file: str | None = None

    _dur = duration_field("max_feature_age")
