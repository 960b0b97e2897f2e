"""``features`` section: which registered features to compute, and the missing-data/scaling policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel


class FeatureItem(StrictModel):
    """One registered feature with its parameters.

    ``instruments``: for per-instrument features, the instruments to compute it for (default all).
    ``series``: for exogenous transforms, the global panel series it reads (one plain column).
    ``field``: for exogenous transforms, the per-asset panel field it reads (one column per
    instrument). Give at most one of ``series``/``field``.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    instruments: list[str] | None = None
    series: str | None = None
    field: str | None = None

    @model_validator(mode="after")
    def _one_input(self) -> "FeatureItem":
        if self.series is not None and self.field is not None:
            raise ValueError(f"feature {self.name!r}: give either 'series' or 'field', not both")
        return self


class MissingPolicy(StrictModel):
    """What happens to NaNs before a model sees them.

    ``mask``: rows with NaN in any feature are excluded from training/evaluation (warm-up too).
    ``fill``: NaN replaced by ``fill_value`` *and* a missing-indicator column is added (when
    ``indicator``), so the model can tell a filled value from a real one.
    ``error``: any NaN after warm-up is an error.
    """

    policy: Literal["mask", "fill", "error"] = "fill"
    fill_value: float = 0.0
    indicator: bool = True


class ScalingConfig(StrictModel):
    """Robust per-feature scaling, fitted on the training window only."""

    method: Literal["robust", "standard", "none"] = "robust"
    clip: float | None = Field(default=5.0, gt=0)


class FeaturesConfig(StrictModel):
    set: list[FeatureItem] = Field(min_length=1)
    missing: MissingPolicy = Field(default_factory=MissingPolicy)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    version: int = 1
