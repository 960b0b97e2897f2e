"""Session fixtures for the feature-engine tests (configs and helpers: features_realdata.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from features_realdata import daily_raw, perps_raw

from dea.config.experiment import ExperimentConfig, validate_config
from dea.data.panel import Panel, build_panel


@pytest.fixture(scope="session")
def perps_cfg(shared_data: Path) -> ExperimentConfig:
    return validate_config(perps_raw(shared_data))


@pytest.fixture(scope="session")
def perps_panel(perps_cfg: ExperimentConfig) -> Panel:
    return build_panel(perps_cfg)


@pytest.fixture(scope="session")
def daily_cfg(shared_data: Path) -> ExperimentConfig:
    return validate_config(daily_raw(shared_data))


@pytest.fixture(scope="session")
def daily_panel(daily_cfg: ExperimentConfig) -> Panel:
    return build_panel(daily_cfg)
