"""``drift`` section: how the live loop watches its input features for distribution shift."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel

DriftAction = Literal["alert", "derisk", "retrain"]


class DriftConfig(StrictModel):
    """PSI / KS per feature over the last ``window`` decisions against the training reference.

    A feature is flagged when PSI >= ``psi_threshold`` or KS distance >= ``ks_threshold`` (once
    the window holds ``min_samples`` rows). When at least ``min_flagged`` features are flagged
    the ``actions`` are taken: ``alert`` (log + metric), ``derisk`` (exposure scaled by
    ``derisk_factor`` until drift clears), ``retrain`` (write ``retrain_flag``, a JSON file
    ``dea retrain --if-flagged`` acts on).
    """

    enabled: bool = True
    window: int = Field(default=2000, ge=10, description="decisions in the rolling window")
    every: int = Field(default=50, ge=1, description="re-score every n decisions")
    min_samples: int = Field(default=200, ge=2)
    n_bins: int = Field(default=10, ge=2, description="PSI bins (training quantiles)")
    n_quantiles: int = Field(default=101, ge=3, description="stored quantiles for the KS reference CDF")
    psi_threshold: float = Field(default=0.25, gt=0)
    ks_threshold: float = Field(default=0.15, gt=0, le=1)
    min_flagged: int = Field(default=1, ge=1)
    actions: list[DriftAction] = Field(default_factory=lambda: ["alert"])
    derisk_factor: float = Field(default=0.5, ge=0, le=1)
    retrain_flag: str = "dea_retrain.flag"
