"""Feature sets: the config's list of features, its stable spec hash, and both executions.

``FeatureSet.batch(panel)`` builds the training matrix; ``FeatureSet.streaming()`` gives the
serving-side object that consumes one decision-time panel row at a time and returns the same
vector the batch matrix holds for that row. The spec hash (names, order, parameters, versions,
missing-data and scaling policy) is stamped into every exported model; a runner refuses a model
whose hash differs from its live feature set.

This module imports numpy and pydantic only (serving imports it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.errors import FeatureError
from dea.features import registry
from dea.features.base import ACCOUNTING_FIELDS, BatchData, Feature, FeatureStream, Input
from dea.features.config import FeaturesConfig
from dea.progress import track

if TYPE_CHECKING:
    import pyarrow as pa

    from dea.data.panel import Panel

SPEC_FORMAT = 1


@dataclass(frozen=True)
class FeatureMatrix:
    """Batch feature values on the decision clock.

    ``values`` float64 [T, F] (NaN during each feature's warm-up and where inputs are missing);
    ``valid`` bool [T, F] is False exactly there. ``fingerprint`` hashes the panel fingerprint and
    the spec hash, so a matrix can be traced to its data and definition.
    """

    clock: np.ndarray
    names: tuple[str, ...]
    values: np.ndarray
    valid: np.ndarray
    fingerprint: str
    spec_hash: str = ""
    warmups: tuple[int, ...] = ()
    instruments: tuple[str, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)

    @property
    def warmup(self) -> int:
        """Rows before every feature is past its warm-up."""
        return max(self.warmups, default=0)

    def column(self, name: str) -> np.ndarray:
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise FeatureError(f"no feature column {name!r}; columns: {list(self.names)}") from None

    def nan_share(self) -> dict[str, float]:
        """Share of rows after each feature's warm-up that are not valid."""
        out = {}
        T = len(self.clock)
        for j, n in enumerate(self.names):
            w = self.warmups[j] if self.warmups else 0
            rows = T - w
            out[n] = float((~self.valid[w:, j]).sum() / rows) if rows > 0 else 1.0
        return out

    def to_table(self) -> "pa.Table":
        """Arrow table: ``ts`` (int64 ns) then one float64 column per feature; spec in metadata."""
        import pyarrow as pa

        cols = {"ts": pa.array(self.clock, pa.int64())}
        for j, n in enumerate(self.names):
            cols[n] = pa.array(self.values[:, j], pa.float64())
        meta = {
            b"dea.feature_spec_hash": self.spec_hash.encode(),
            b"dea.fingerprint": self.fingerprint.encode(),
            b"dea.feature_warmups": json.dumps(list(self.warmups)).encode(),
            b"dea.instruments": json.dumps(list(self.instruments)).encode(),
            b"dea.feature_spec": json.dumps(dict(self.spec), sort_keys=True).encode(),
        }
        return pa.table(cols).replace_schema_metadata(meta)

    def write_parquet(self, path: Any) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.to_table(), str(path))

    @classmethod
    def read_parquet(cls, path: Any) -> "FeatureMatrix":
        """Inverse of :meth:`write_parquet` (``valid`` is recomputed as finite values)."""
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        meta = table.schema.metadata or {}
        names = tuple(c for c in table.column_names if c != "ts")
        values = np.column_stack([table.column(n).to_numpy() for n in names]) if names else np.empty((table.num_rows, 0))
        return cls(
            clock=table.column("ts").to_numpy(),
            names=names,
            values=values,
            valid=np.isfinite(values),
            fingerprint=meta.get(b"dea.fingerprint", b"").decode(),
            spec_hash=meta.get(b"dea.feature_spec_hash", b"").decode(),
            warmups=tuple(json.loads(meta.get(b"dea.feature_warmups", b"[]"))),
            instruments=tuple(json.loads(meta.get(b"dea.instruments", b"[]"))),
            spec=json.loads(meta.get(b"dea.feature_spec", b"{}")),
        )


class StreamingFeatureSet:
    """Serving-side execution: ``update`` consumes one decision-time panel row, returns [F] values.

    Rows must arrive in strictly increasing time; with ``step_ns`` set, a skipped decision time is
    an error (feed a row of NaNs for a missing period instead, so row-based windows stay aligned
    with training). Values are NaN during warm-up, exactly as in :meth:`FeatureSet.batch`.

    ``compiled`` (default): expression features run as one compiled row program
    (:mod:`dea.features.stream_plan`: shared sub-expressions, plain floats, the same values);
    features it cannot trace, and explicit streams, keep their own :class:`FeatureStream`.
    ``compiled=False`` runs every feature's own stream (the reference the tests compare with).
    :attr:`plan` tells which features are compiled and why any fell back.
    """

    def __init__(self, fs: "FeatureSet", step_ns: int | None = None, compiled: bool = True) -> None:
        from dea.features.stream_plan import StreamPlan, compile_plan

        self.names = fs.names
        self.spec_hash = fs.spec_hash
        self.warmup = fs.warmup
        slices: list[slice] = []
        pos = 0
        for f in fs.features:
            k = len(f.columns())
            slices.append(slice(pos, pos + k))
            pos += k
        if compiled:
            self.plan, rest = compile_plan(fs.features, len(fs.instruments))
        else:
            self.plan, rest = StreamPlan(None, []), list(range(len(fs.features)))
        self._plan_row = self.plan.row
        self._plan_idx = np.asarray(self.plan.columns, dtype=np.intp)
        self._all_compiled = not rest
        self._streams: list[tuple[slice, FeatureStream]] = [(slices[i], fs.features[i].stream()) for i in rest]
        self._warm = np.asarray(fs.warmups, dtype=np.int64)
        self._out = np.empty(len(fs.names))
        self._row = 0
        self._last_t: int | None = None
        self._step = step_ns

    @property
    def rows_seen(self) -> int:
        return self._row

    @property
    def is_warm(self) -> bool:
        """True once every feature is past its warm-up."""
        return self._row >= self.warmup

    def update(self, t: int, fields: Mapping[str, np.ndarray], series: Mapping[str, float]) -> np.ndarray:
        t = int(t)
        last = self._last_t
        if last is not None:
            if t <= last:
                raise FeatureError(f"streaming features: row at t={t} is not after the previous row t={last}")
            if self._step is not None and t - last != self._step:
                raise FeatureError(
                    f"streaming features: decision time jumped from {last} to {t} "
                    f"(step {self._step} ns); feed NaN rows for missing periods"
                )
        if self._all_compiled:  # the program already turned +-inf into NaN
            out = np.array(self._plan_row(t, fields, series))  # type: ignore[misc]
        else:
            out = self._out
            if self._plan_row is not None:
                out[self._plan_idx] = self._plan_row(t, fields, series)
            for sl, stream in self._streams:
                out[sl] = stream.update(t, fields, series)
            out[~np.isfinite(out)] = np.nan  # +-inf never leaves the engine (as in batch)
            out = out.copy()
        if self._row < self.warmup:
            out[self._warm > self._row] = np.nan
        self._row += 1
        self._last_t = t
        return out


class FeatureSet:
    """An ordered, validated list of bound features (see :meth:`from_config`)."""

    def __init__(self, features: Sequence[Feature], instruments: Sequence[str], config: FeaturesConfig) -> None:
        self.features = tuple(features)
        self.instruments = tuple(instruments)
        self.config = config
        names: list[str] = []
        warm: list[int] = []
        for f in self.features:
            cols = f.columns()
            names.extend(cols)
            warm.extend([int(f.warmup())] * len(cols))
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FeatureError(f"feature set produces duplicated columns {dup}; change a parameter or drop an item")
        if not names:
            raise FeatureError("feature set produces no columns")
        self.names: tuple[str, ...] = tuple(names)
        self.warmups: tuple[int, ...] = tuple(warm)
        self._spec = self._make_spec()
        self.spec_hash: str = hashlib.sha256(
            json.dumps(self._spec, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()

    @classmethod
    def from_config(cls, features_cfg: FeaturesConfig, instruments: Sequence[str]) -> "FeatureSet":
        """Bind every item of ``features_cfg.set`` to ``instruments`` (the panel's order)."""
        if not instruments:
            raise FeatureError("a feature set needs at least one instrument")
        feats = []
        for i, item in enumerate(features_cfg.set):
            klass = registry.get(item.name)
            try:
                feats.append(klass.from_item(item.params, instruments, item.instruments, item.series, item.field))
            except FeatureError as exc:
                raise FeatureError(f"features.set[{i}]: {exc}") from None
        return cls(feats, instruments, features_cfg)

    # ------------------------------------------------------------------ declaration
    @property
    def warmup(self) -> int:
        """Rows before every feature is valid (given complete inputs)."""
        return max(self.warmups, default=0)

    def inputs(self) -> tuple[Input, ...]:
        """Union of the panel inputs the set reads, in first-use order."""
        seen: dict[Input, None] = {}
        for f in self.features:
            for inp in f.inputs():
                seen.setdefault(inp, None)
        return tuple(seen)

    def _make_spec(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "version": self.config.version,
            "instruments": list(self.instruments),
            "names": list(self.names),
            "features": [f.spec() for f in self.features],
            "missing": self.config.missing.model_dump(mode="json"),
            "scaling": self.config.scaling.model_dump(mode="json"),
        }

    def spec(self) -> dict[str, Any]:
        """JSON-able description: names, order, parameters, versions, policies."""
        return json.loads(json.dumps(self._spec))

    # ------------------------------------------------------------------ executions
    def _check_panel(self, panel: "Panel") -> None:
        if tuple(panel.instruments) != self.instruments:
            raise FeatureError(
                f"panel instruments {list(panel.instruments)} differ from the feature set's {list(self.instruments)}"
            )
        for f in self.features:
            for inp in f.inputs():
                if inp.kind == "field" and inp.name in ACCOUNTING_FIELDS:
                    raise FeatureError(f"feature {f.name!r} reads accounting field {inp.name!r}")
                store = panel.fields if inp.kind == "field" else panel.series
                if inp.name not in store:
                    raise FeatureError(
                        f"feature {f.name!r} needs panel {inp.kind} {inp.name!r}; panel {inp.kind}s: {sorted(store)}"
                    )
                arr = np.asarray(store[inp.name])
                if inp.kind == "series":
                    if len(arr) and not np.isfinite(arr).any():
                        raise FeatureError(f"feature {f.name!r}: panel series {inp.name!r} has no finite value")
                else:
                    cols = f.selected if f.scope_ == "instrument" else range(arr.shape[1])
                    empty = [self.instruments[c] for c in cols if len(arr) and not np.isfinite(arr[:, c]).any()]
                    if empty:
                        raise FeatureError(
                            f"feature {f.name!r}: panel field {inp.name!r} has no finite value for {empty} "
                            "(restrict the item with 'instruments:' or fix the data)"
                        )

    def batch(self, panel: "Panel") -> FeatureMatrix:
        """Vectorised execution over the whole panel."""
        self._check_panel(panel)
        clock = np.asarray(panel.clock, dtype=np.int64)
        T = len(clock)
        data = BatchData(clock=clock, fields=panel.fields, series=panel.series, instruments=self.instruments)
        values = np.empty((T, len(self.names)))
        pos = 0
        for f in track(self.features, "features", unit="feature", detail=lambda f: f.name, min_interval=10.0):
            out = f.batch(data)
            k = len(f.columns())
            if out.shape != (T, k):
                raise FeatureError(f"feature {f.name!r}: batch returned shape {out.shape}, expected {(T, k)}")
            values[:, pos : pos + k] = out
            w = min(int(f.warmup()), T)
            values[:w, pos : pos + k] = np.nan
            pos += k
        valid = np.isfinite(values)
        values[~valid] = np.nan  # +-inf never leaves the engine
        fp = hashlib.sha256(f"{panel.fingerprint}|{self.spec_hash}".encode()).hexdigest()
        return FeatureMatrix(
            clock=clock,
            names=self.names,
            values=values,
            valid=valid,
            fingerprint=fp,
            spec_hash=self.spec_hash,
            warmups=self.warmups,
            instruments=self.instruments,
            spec=self.spec(),
        )

    def streaming(self, step_ns: int | None = None, compiled: bool = True) -> StreamingFeatureSet:
        """A fresh streaming execution (numpy + stdlib only); ``compiled=False``: every feature
        through its own generic stream (see :class:`StreamingFeatureSet`)."""
        return StreamingFeatureSet(self, step_ns=step_ns, compiled=compiled)
