"""Experiment configuration (frozen pydantic models that reject unknown keys).

Exports are lazy: section modules (``dea.features.config``, ``dea.data.config``, ...) import
``dea.config.base``, and the experiment model imports them, so an eager import here would make
``import dea.features.config`` (as the first DEA import) a circular import.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["ExperimentConfig", "StrictModel", "config_hash", "load_config", "validate_config"]

if TYPE_CHECKING:  # pragma: no cover
    from dea.config.base import StrictModel
    from dea.config.experiment import ExperimentConfig, config_hash, load_config, validate_config


def __getattr__(name: str) -> Any:
    if name == "StrictModel":
        from dea.config.base import StrictModel

        return StrictModel
    if name in __all__:
        from dea.config import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'dea.config' has no attribute {name!r}")
