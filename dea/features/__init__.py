"""Feature engine: one declaration per feature, batch for training and streaming for serving.

Public API (numpy + pydantic at import; batch code imports pandas/pyarrow/numba lazily):

- :class:`FeatureSet` (``from_config``, ``names``, ``spec()``, ``spec_hash``, ``warmup``,
  ``batch(panel)``, ``streaming()``), :class:`FeatureMatrix`, :class:`StreamingFeatureSet`
- :func:`prepare_inputs` / :func:`prepare_row`: the missing-data policy (mask, fill+indicator, error)
- :func:`fit_scaler` / :class:`Scaler`: robust per-feature scaling fitted on training rows only
- :mod:`dea.features.registry` and :mod:`dea.features.base`: how features are declared and found

See ``dea/features/README.md`` for the feature list and how to add a feature.
"""

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FeatureMatrix": "dea.features.featureset",
    "FeatureSet": "dea.features.featureset",
    "StreamingFeatureSet": "dea.features.featureset",
    "prepare_inputs": "dea.features.missing",
    "prepare_row": "dea.features.missing",
    "RowPreparer": "dea.features.missing",
    "Scaler": "dea.features.scaling",
    "fit_scaler": "dea.features.scaling",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from dea.features.featureset import FeatureMatrix, FeatureSet, StreamingFeatureSet
    from dea.features.missing import RowPreparer, prepare_inputs, prepare_row
    from dea.features.scaling import Scaler, fit_scaler


def __getattr__(name: str) -> Any:
    """Lazy exports: ``dea.features.config`` is imported by the experiment config, so the package
    itself must not import the engine eagerly (no cycles, cheap config loading)."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dea.features' has no attribute {name!r}")
