"""DEA's exception hierarchy.

Every error DEA raises on purpose derives from :class:`DeaError`, so callers (the CLI, the live
loop, property-based tests) can tell "DEA refused this input and said why" apart from a bug.
Messages name the file / row / field / instrument and the rule that was broken.
"""

from __future__ import annotations


class DeaError(Exception):
    """Base of every error DEA raises deliberately."""


class ConfigError(DeaError):
    """A configuration is malformed, has unknown keys or out-of-range values."""


class DataError(DeaError):
    """Input data breaks a rule (unsorted, duplicated, gaps, NaN, bad format, ...)."""


class DataFormatError(DataError):
    """A file cannot be parsed in the format its loader reads."""


class SequenceGapError(DataError):
    """An order-book diff stream skipped update ids and could not be resynchronised."""


class MissingFundingError(DataError):
    """A perpetual has no funding source and the config does not say ``funding: none``."""


class LeakageError(DataError):
    """A value would become visible before its ``available_at``."""


class StaleDataError(DataError):
    """An input is older than its configured staleness threshold."""


class FeatureError(DeaError):
    """A feature definition or feature set is invalid."""


class ModelError(DeaError):
    """A model artefact is invalid or does not match the live feature spec / instruments."""


class ExportError(ModelError):
    """Exporting a model failed (for example, the torch/onnxruntime parity gate)."""


class RiskError(DeaError):
    """A risk rule cannot be evaluated or a hard limit would be breached."""


class ExchangeError(DeaError):
    """An exchange adapter failed or rejected an order."""


class JournalError(DeaError):
    """The state journal is corrupt or inconsistent with the exchange."""
