"""Risk calibration: rolling volatility re-estimation, forecast reliability, VaR coverage."""

from dea.calibration.reliability import (
    VarCoverage,
    VolReliability,
    christoffersen_independence,
    kupiec_pof,
    normal_var_es,
    realised_variance,
    var_coverage,
    vol_reliability,
)
from dea.calibration.report import (
    CalibrationReport,
    HalflifeChoice,
    calibration_report,
    choose_halflife,
    filtered_hs_var,
    format_calibration,
    qlike,
)
from dea.calibration.vol import Garch11, ewma_variance, fit_garch11, rolling_garch_variance

__all__ = [
    "CalibrationReport",
    "Garch11",
    "HalflifeChoice",
    "VarCoverage",
    "VolReliability",
    "calibration_report",
    "choose_halflife",
    "christoffersen_independence",
    "ewma_variance",
    "filtered_hs_var",
    "fit_garch11",
    "format_calibration",
    "kupiec_pof",
    "normal_var_es",
    "qlike",
    "realised_variance",
    "rolling_garch_variance",
    "var_coverage",
    "vol_reliability",
]
