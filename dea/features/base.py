"""What a feature *is*: one declaration, executed two ways (batch for training, streaming for serving).

Why one declaration: the classic failure of ML trading systems is that the features a model sees
live differ from the ones it was trained on. Here a feature is declared once (name, family,
version, validated parameters, inputs, warm-up, output columns) and both executions come from
that declaration; the parity tests in ``tests/features`` hold them together on real data.

Two ways to write a feature
---------------------------
1. **Expression features** (preferred; every built-in feature is one): subclass
   :class:`ExprFeature` and write ``compute(self, ops, x)`` *once*, using numpy elementwise math
   and, for anything that looks back in time, the causal operators of ``ops`` (``ops.lag``,
   ``ops.rolling_sum``, ``ops.rolling_mean_std``, ``ops.rolling_max``, ``ops.rolling_min``,
   ``ops.ewma``; see :mod:`dea.features.ops`). In batch, ``x`` holds whole histories ([T, C] per
   field, [T] per series and clock) and ``ops`` runs vectorised/numba kernels; in streaming, ``x``
   holds one decision-time row ([C], scalars) and ``ops`` keeps O(1) state per operator call.
   The same code therefore produces both executions, causal by construction (no operator can see
   a later row). Rules: never index or reduce along the time axis yourself (use ``ops``); reduce
   across instruments with ``axis=-1``; call the same ``ops`` operators in the same order on every
   call (no data-dependent branching around ``ops`` calls).
2. **Explicit features** (escape hatch, e.g. order-book features with their own event-driven
   state): subclass :class:`Feature` and implement ``batch`` and ``stream`` yourself. The
   automatic parity and leakage tests still cover them.

How to add a feature (checklist)
--------------------------------
- Put it in its family module (``bars.py``, ``derivatives.py``, ``exogenous.py``,
  ``cross_asset.py``, ``calendar.py``; order book: ``orderbook.py``) or a new module listed in
  :data:`dea.features.registry.FEATURE_MODULES`.
- Set the class attributes ``name`` (registry key, unique), ``family``, ``version`` (bump it
  whenever the values it produces change: the spec hash changes, so models trained on the old
  values are refused), and a nested ``Params(StrictModel)`` with defaults and bounds.
- ``scope``: ``"instrument"`` (one column per selected instrument and output, named
  ``"<stem>@<symbol>"``) or ``"global"`` (plain ``"<stem>"``). Features that read a config-chosen
  input set ``input_kind`` (``"series"``, ``"field"`` or ``"either"``; the config item's
  ``series`` makes it global, ``field`` per-instrument) and ``example_input`` (used by the
  automatic tests).
- Implement ``inputs()`` (panel fields/series read), ``warmup()`` (rows before the first valid
  value given complete inputs; a test checks it against the real first valid row), and
  optionally ``stems()`` (output column stems; default ``name`` + parameter values).
- Decorate the class with :func:`dea.features.registry.register`.
- Streaming code must stay importable with numpy + stdlib only (serving imports it); heavy
  libraries (pandas, numba) may be imported lazily inside batch code only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from dea.config.base import StrictModel
from dea.errors import FeatureError

Scope = Literal["instrument", "global"]
InputKind = Literal["series", "field", "either"]

# Panel fields that are accounting, not information: they may use event time rather than
# publication time (funding is charged at settlement), so no feature may read them.
ACCOUNTING_FIELDS: frozenset[str] = frozenset({"funding_settled"})


class NoParams(StrictModel):
    """Parameter model of a feature that takes none."""


@dataclass(frozen=True)
class Input:
    """One panel input a feature reads: a per-instrument ``field`` ([T, N]) or a global ``series`` ([T])."""

    kind: Literal["field", "series"]
    name: str


@dataclass(frozen=True)
class BatchData:
    """Whole-history inputs for a batch execution (exactly what a :class:`~dea.data.panel.Panel` holds)."""

    clock: np.ndarray  # [T] int64 ns
    fields: Mapping[str, np.ndarray]  # name -> [T, N] float64
    series: Mapping[str, np.ndarray]  # name -> [T] float64
    instruments: tuple[str, ...]


class FeatureStream(ABC):
    """Streaming execution of one feature: O(1) amortised work per decision-time row."""

    @abstractmethod
    def update(self, t: int, fields: Mapping[str, np.ndarray], series: Mapping[str, float]) -> np.ndarray:
        """Consume one panel row (``fields[name]`` is [N], ``series[name]`` a float) at decision time
        ``t`` (int ns) and return this feature's columns (float64 [n_columns])."""


class Feature(ABC):
    """A declared feature bound to its parameters, instruments and (optionally) a chosen input.

    Construct through :meth:`from_item` (what :class:`~dea.features.featureset.FeatureSet` does).
    """

    name: ClassVar[str]
    family: ClassVar[str]
    version: ClassVar[int] = 1
    scope: ClassVar[Scope] = "instrument"
    Params: ClassVar[type[StrictModel]] = NoParams
    input_kind: ClassVar[InputKind | None] = None
    example_input: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    def __init__(
        self,
        params: StrictModel,
        instruments: Sequence[str],
        selected: Sequence[int],
        source: Input | None = None,
    ) -> None:
        self.params = params
        self.instruments = tuple(instruments)
        self.selected = tuple(int(i) for i in selected)
        self.source = source
        self.scope_ = self._resolve_scope()
        self._sel = np.asarray(self.selected, dtype=np.intp)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_item(
        cls,
        params: Mapping[str, Any],
        instruments: Sequence[str],
        selected: Sequence[str] | None = None,
        series: str | None = None,
        field: str | None = None,
    ) -> "Feature":
        """Validate parameters and input choice and bind the feature to ``instruments``."""
        try:
            p = cls.Params.model_validate(dict(params))
        except Exception as exc:  # pydantic ValidationError -> FeatureError naming the feature
            raise FeatureError(f"feature {cls.name!r}: invalid params {dict(params)!r}: {exc}") from None
        source = cls._resolve_source(series, field)
        all_insts = tuple(instruments)
        if selected is None:
            idx = list(range(len(all_insts)))
        else:
            idx = []
            for s in selected:
                idx.append(_index_of(s, all_insts, f"feature {cls.name!r}"))
            if len(set(idx)) != len(idx):
                raise FeatureError(f"feature {cls.name!r}: instruments {list(selected)} repeat a symbol")
        feature = cls(p, all_insts, idx, source)
        feature.check()
        return feature

    def check(self) -> None:
        """Cross-field validation once bound (e.g. a reference instrument exists); raise FeatureError."""

    @classmethod
    def _resolve_source(cls, series: str | None, field: str | None) -> Input | None:
        if series is not None and field is not None:
            raise FeatureError(f"feature {cls.name!r}: give either 'series' or 'field', not both")
        if cls.input_kind is None:
            if series is not None or field is not None:
                raise FeatureError(f"feature {cls.name!r} reads fixed inputs; it takes no 'series'/'field'")
            return None
        chosen = Input("series", series) if series is not None else Input("field", field) if field else None
        if chosen is None:
            kinds = {"series": "'series: <name>'", "field": "'field: <name>'"}
            need = kinds.get(cls.input_kind, "'series: <name>' or 'field: <name>'")
            raise FeatureError(f"feature {cls.name!r} needs {need} in its config item")
        if cls.input_kind == "series" and chosen.kind != "series":
            raise FeatureError(f"feature {cls.name!r} reads a global series: use 'series:', not 'field:'")
        if cls.input_kind == "field" and chosen.kind != "field":
            raise FeatureError(f"feature {cls.name!r} reads a per-instrument field: use 'field:', not 'series:'")
        if chosen.kind == "field" and chosen.name in ACCOUNTING_FIELDS:
            raise FeatureError(f"feature {cls.name!r}: {chosen.name!r} is an accounting field, not an input")
        return chosen

    def _resolve_scope(self) -> Scope:
        if self.source is not None and self.input_kind is not None:
            return "global" if self.source.kind == "series" else "instrument"
        return self.scope

    # ------------------------------------------------------------------ declaration
    @abstractmethod
    def inputs(self) -> tuple[Input, ...]:
        """Panel fields/series this feature reads."""

    @abstractmethod
    def warmup(self) -> int:
        """Rows before the first valid value, given complete inputs from the first row."""

    def stems(self) -> tuple[str, ...]:
        """Output column stems; default: name, input name, then parameter values."""
        parts = [self.name]
        if self.source is not None:
            parts.append(self.source.name)
        for key in type(self.params).model_fields:
            parts.append(_fmt_param(getattr(self.params, key)))
        return ("_".join(parts),)

    def columns(self) -> tuple[str, ...]:
        """Flat column names: ``"<stem>@<symbol>"`` per instrument (stem-major) or plain stems."""
        if self.scope_ == "global":
            return self.stems()
        return tuple(f"{stem}@{self.instruments[i]}" for stem in self.stems() for i in self.selected)

    @property
    def width(self) -> int:
        """Number of instrument columns per stem (1 for global features)."""
        return 1 if self.scope_ == "global" else len(self.selected)

    def spec(self) -> dict[str, Any]:
        """JSON-able declaration; part of the feature-set spec hash."""
        return {
            "name": self.name,
            "family": self.family,
            "version": self.version,
            "params": self.params.model_dump(mode="json"),
            "input": None if self.source is None else {"kind": self.source.kind, "name": self.source.name},
            "scope": self.scope_,
            "instruments": [self.instruments[i] for i in self.selected] if self.scope_ == "instrument" else [],
            "warmup": self.warmup(),
            "columns": list(self.columns()),
        }

    # ------------------------------------------------------------------ executions
    @abstractmethod
    def batch(self, data: BatchData) -> np.ndarray:
        """Vectorised execution over the whole history: float64 [T, len(columns())]."""

    @abstractmethod
    def stream(self) -> FeatureStream:
        """A fresh streaming execution (numpy + stdlib only)."""


class ExprFeature(Feature):
    """A feature written once as ``compute(ops, x)``; batch and streaming derive from it.

    ``compute`` returns one array per stem (or a single array): shape [T, C] / [C] for instrument
    scope (C = selected instruments), [T] / scalar for global scope.
    """

    @abstractmethod
    def compute(self, ops: Any, x: Any) -> Any:
        """The feature's definition (see the module docstring for the rules)."""

    def batch(self, data: BatchData) -> np.ndarray:
        from dea.features.ops import BatchOps, batch_view

        out = self.compute(BatchOps(), batch_view(self, data))
        return _stack_batch(self, out, len(data.clock))

    def stream(self) -> FeatureStream:
        from dea.features.ops import ExprStream

        return ExprStream(self)


def _stack_batch(feature: Feature, out: Any, T: int) -> np.ndarray:
    arrays = out if isinstance(out, tuple) else (out,)
    if len(arrays) != len(feature.stems()):
        raise FeatureError(f"feature {feature.name!r}: compute returned {len(arrays)} arrays for {len(feature.stems())} stems")
    cols = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        if feature.scope_ == "global":
            a = np.broadcast_to(a, (T,)).reshape(T, 1)
        else:
            a = np.broadcast_to(a, (T, feature.width))
        cols.append(a)
    return np.ascontiguousarray(np.concatenate(cols, axis=1))


def _index_of(symbol: str, instruments: tuple[str, ...], who: str) -> int:
    """Instrument index by exact symbol, else case-insensitive match."""
    if symbol in instruments:
        return instruments.index(symbol)
    low = [s.lower() for s in instruments]
    if symbol.lower() in low:
        return low.index(symbol.lower())
    raise FeatureError(f"{who}: unknown instrument {symbol!r}; instruments are {list(instruments)}")


def _fmt_param(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
