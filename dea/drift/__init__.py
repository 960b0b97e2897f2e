"""Feature drift: training-time reference distributions and PSI / KS monitoring (numpy only)."""

from dea.drift.monitor import DriftThresholds, FeatureDrift, RollingDriftMonitor, compare, format_report
from dea.drift.reference import (
    METADATA_KEY,
    DriftReference,
    FeatureReference,
    build_reference,
    load_reference,
    reference_from_metadata,
    sidecar_path,
)
from dea.drift.stats import ks_2samp_statistic, ks_pvalue, ks_statistic, psi, psi_from_shares

__all__ = [
    "METADATA_KEY",
    "DriftReference",
    "DriftThresholds",
    "FeatureDrift",
    "FeatureReference",
    "RollingDriftMonitor",
    "build_reference",
    "compare",
    "format_report",
    "ks_2samp_statistic",
    "ks_pvalue",
    "ks_statistic",
    "load_reference",
    "psi",
    "psi_from_shares",
    "reference_from_metadata",
    "sidecar_path",
]
