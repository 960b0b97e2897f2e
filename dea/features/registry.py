"""The feature registry: name -> feature class, filled by the ``@register`` decorator.

Why a registry: a feature set in an experiment config names features by string; the registry
turns a name into the one declaration of that feature (see :mod:`dea.features.base` for how to
write one). The built-in family modules are imported on first lookup, so importing this module is
cheap and pulls in nothing but numpy and pydantic.

Adding a feature: write the class (see :mod:`dea.features.base`), decorate it with
``@register``, and make sure its module is listed in :data:`FEATURE_MODULES` (a module that does
not exist yet is skipped, so the list can name modules other engineers are still writing).
The parity, warm-up and leakage tests iterate :func:`names` and pick the new feature up
automatically.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from dea.errors import FeatureError
from dea.features.base import Feature

FEATURE_MODULES: tuple[str, ...] = (
    "dea.features.bars",
    "dea.features.derivatives",
    "dea.features.exogenous",
    "dea.features.cross_asset",
    "dea.features.calendar",
    "dea.features.orderbook",
)

_REGISTRY: dict[str, type[Feature]] = {}
_loaded = False


def register(cls: type[Feature]) -> type[Feature]:
    """Class decorator: add ``cls`` under ``cls.name``. Re-registering the same class is a no-op
    (module reloads); a different class under a taken name is refused."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise FeatureError(f"{cls.__qualname__}: a registered feature needs a non-empty 'name'")
    for attr in ("family", "version"):
        if not hasattr(cls, attr):
            raise FeatureError(f"feature {name!r} must declare {attr!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise FeatureError(f"feature name {name!r} is taken by {existing.__module__}.{existing.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for module in FEATURE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    _loaded = True


def get(name: str) -> type[Feature]:
    """The feature class registered as ``name`` (FeatureError listing known names otherwise)."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FeatureError(f"unknown feature {name!r}; registered features: {sorted(_REGISTRY)}") from None


def names() -> tuple[str, ...]:
    """All registered feature names, sorted."""
    _load_builtins()
    return tuple(sorted(_REGISTRY))


def items() -> Iterator[tuple[str, type[Feature]]]:
    """(name, class) pairs, sorted by name."""
    _load_builtins()
    for n in sorted(_REGISTRY):
        yield n, _REGISTRY[n]
