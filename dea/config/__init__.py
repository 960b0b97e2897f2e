"""Experiment configuration (frozen pydantic models that reject unknown keys)."""

from dea.config.base import StrictModel
from dea.config.experiment import ExperimentConfig, config_hash, load_config, validate_config

__all__ = ["ExperimentConfig", "StrictModel", "config_hash", "load_config", "validate_config"]
