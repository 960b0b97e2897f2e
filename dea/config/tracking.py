"""``tracking`` section: where MLflow runs go (embedded default: a local SQLite store)."""

from __future__ import annotations

from pydantic import Field

from dea.config.base import StrictModel


class TrackingConfig(StrictModel):
    uri: str | None = Field(default=None, description="None = sqlite:///mlflow.db in the cwd")
    experiment: str = "dea"
    registered_model: str = "dea-policy"
    enabled: bool = True
