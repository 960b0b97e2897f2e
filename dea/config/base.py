"""Base for every DEA config model: frozen, strict, rejecting unknown keys.

Why: a typo in an experiment YAML (``risk_aversoin: 3``) must fail loudly at load time with the
path of the bad key, not be ignored and silently run a different experiment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from dea.errors import ConfigError
from dea.timeutil import parse_duration


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def duration_field(*names: str):
    """Validator factory: check that the named string fields parse as durations (``"5m"``)."""

    @field_validator(*names)
    @classmethod
    def _check(cls, value):  # noqa: ANN001, ANN202 - pydantic validator signature
        if value is None:
            return value
        try:
            parse_duration(value)
        except ConfigError as exc:  # ValueError lets pydantic report the field's path
            raise ValueError(str(exc)) from None
        return value

    return _check
