"""Causal time-series operators with two executions, the building blocks of expression features.

An :class:`~dea.features.base.ExprFeature` writes its definition once against an ``ops`` object.
:class:`BatchOps` runs each operator over a whole history ([T, C] arrays; numba kernels imported
lazily from :mod:`dea.features.kernels_batch`), :class:`StreamOps` keeps O(1)-amortised state per
operator call site and consumes one row at a time ([C] arrays) with numpy only. The streaming
state of one column is a *cell* (:class:`LagCell`, :class:`SumCell`, :class:`MeanStdCell`,
:class:`ExtremeCell`, :class:`EwmaCell`); the compiled streaming execution
(:mod:`dea.features.stream_plan`) runs the very same cells.

Both executions follow the *same arithmetic in the same order* (add/remove running sums with an
exact re-summation every ``w`` rows, a shifted second moment, a plain EWMA recurrence), so batch
and streaming agree to the last bit in practice and always within the 1e-9 parity tolerance.

Operator semantics (identical in both executions):

- ``lag(x, k)``: x[t-k]; NaN for the first k rows.
- ``rolling_sum(x, w)``: sum of the last w values (current included); NaN unless all w are finite.
- ``rolling_mean_std(x, w)``: (mean, sample std) of the last w values; NaN unless all finite.
- ``rolling_max(x, w)`` / ``rolling_min(x, w)``: extreme of the last w values; NaN unless all finite.
- ``ewma(x, span, min_periods)``: m += a (x - m) with a = 2/(span+1), started at the first finite
  value; a NaN input leaves the state unchanged and yields NaN; NaN until ``min_periods`` finite
  inputs were seen.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.errors import FeatureError
from dea.features.base import BatchData, FeatureStream, Input

if TYPE_CHECKING:
    from dea.features.base import Feature

_NAN = float("nan")


class TracedArray:
    """Marker base of the symbolic arrays :mod:`dea.features.stream_plan` traces ``compute``
    with; the helpers below hand such arrays to their traced counterparts."""

    __slots__ = ()


def safe_log(x: Any) -> np.ndarray:
    """log of a positive quantity; non-positive or missing values give NaN (never -inf, no warning)."""
    if isinstance(x, TracedArray):
        return x._safe_log()  # type: ignore[attr-defined]
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape)
    out.fill(np.nan)
    np.log(x, out=out, where=x > 0)
    return out


def safe_div(a: Any, b: Any) -> np.ndarray:
    """a / b where b > 0, NaN elsewhere (no warning). For ratios over a volatility or variance."""
    if isinstance(a, TracedArray) or isinstance(b, TracedArray):
        return (a if isinstance(a, TracedArray) else b)._safe_div(a, b)  # type: ignore[attr-defined]
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.empty(a.shape)
    out.fill(np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def as_float64(x: Any) -> np.ndarray:
    """``np.asarray(x, dtype=np.float64)`` that expression features may apply to their inputs."""
    if isinstance(x, TracedArray):
        return x.astype(np.float64)  # type: ignore[attr-defined]
    return np.asarray(x, dtype=np.float64)


def as_int64(x: Any) -> np.ndarray:
    """``np.asarray(x, dtype=np.int64)`` (e.g. of ``x.t``) for expression features."""
    if isinstance(x, TracedArray):
        return x.astype(np.int64)  # type: ignore[attr-defined]
    return np.asarray(x, dtype=np.int64)


def ewma_alpha(span: float) -> float:
    """Smoothing factor of an EWMA with the given span (pandas' ``span`` convention)."""
    return 2.0 / (float(span) + 1.0)


# ---------------------------------------------------------------------------------------- inputs
class _Inputs:
    """What ``compute`` sees as ``x``: accessors shared by batch and streaming views."""

    __slots__ = ("_feature", "_fields", "_series", "t")

    def __init__(self, feature: "Feature", t: Any, fields: Mapping[str, np.ndarray], series: Mapping[str, Any]):
        self._feature = feature
        self._fields = fields
        self._series = series
        self.t = t  # int64 ns: [T] in batch, a numpy int64 scalar in streaming

    def field(self, name: str) -> np.ndarray:
        """Per-instrument field for the selected instruments: [T, C] (batch) or [C] (streaming)."""
        return self.field_all(name)[..., self._feature._sel]

    def field_all(self, name: str) -> np.ndarray:
        """Per-instrument field for all panel instruments (cross-asset features): [T, N] or [N]."""
        try:
            return self._fields[name]
        except KeyError:
            raise FeatureError(
                f"feature {self._feature.name!r} needs panel field {name!r}; the panel has {sorted(self._fields)}"
            ) from None

    def series(self, name: str) -> Any:
        """Global series: [T] (batch) or a float64 scalar (streaming)."""
        try:
            v = self._series[name]
        except KeyError:
            raise FeatureError(
                f"feature {self._feature.name!r} needs panel series {name!r}; the panel has {sorted(self._series)}"
            ) from None
        return v if isinstance(v, np.ndarray) else np.float64(v)

    def source(self, default: Input | None = None) -> np.ndarray:
        """The config-chosen input (``series:`` or ``field:`` of the feature's config item)."""
        src = self._feature.source or default
        if src is None:
            raise FeatureError(f"feature {self._feature.name!r} has no input series/field configured")
        return self.series(src.name) if src.kind == "series" else self.field(src.name)


def batch_view(feature: "Feature", data: BatchData) -> _Inputs:
    return _Inputs(feature, np.asarray(data.clock, dtype=np.int64), data.fields, data.series)


# ---------------------------------------------------------------------------------------- batch
class BatchOps:
    """Operators over whole histories (time on axis 0)."""

    @staticmethod
    def _2d(x: np.ndarray) -> tuple[np.ndarray, bool]:
        a = np.ascontiguousarray(x, dtype=np.float64)
        return (a.reshape(-1, 1), True) if a.ndim == 1 else (a, False)

    def lag(self, x: np.ndarray, k: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if k == 0:
            return x.copy()
        out = np.full_like(x, _NAN)
        if k < len(x):
            out[k:] = x[:-k]
        return out

    def rolling_sum(self, x: np.ndarray, w: int) -> np.ndarray:
        from dea.features.kernels_batch import rolling_sum

        a, flat = self._2d(x)
        out = rolling_sum(a, int(w))
        return out.ravel() if flat else out

    def rolling_mean_std(self, x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
        from dea.features.kernels_batch import rolling_mean_std

        if w < 2:
            raise FeatureError(f"rolling_mean_std needs a window >= 2, got {w}")
        a, flat = self._2d(x)
        mean, std = rolling_mean_std(a, int(w))
        return (mean.ravel(), std.ravel()) if flat else (mean, std)

    def rolling_max(self, x: np.ndarray, w: int) -> np.ndarray:
        from dea.features.kernels_batch import rolling_extreme

        a, flat = self._2d(x)
        out = rolling_extreme(a, int(w), True)
        return out.ravel() if flat else out

    def rolling_min(self, x: np.ndarray, w: int) -> np.ndarray:
        from dea.features.kernels_batch import rolling_extreme

        a, flat = self._2d(x)
        out = rolling_extreme(a, int(w), False)
        return out.ravel() if flat else out

    def ewma(self, x: np.ndarray, span: float, min_periods: int = 1) -> np.ndarray:
        from dea.features.kernels_batch import ewma

        a, flat = self._2d(x)
        out = ewma(a, ewma_alpha(span), int(min_periods))
        return out.ravel() if flat else out


# ---------------------------------------------------------------------------------------- streaming
# One *cell* per operator call site and column: the per-row arithmetic of every streaming
# operator, written once. The generic streaming execution (:class:`StreamOps`) runs one cell per
# column of its [C] inputs; the compiled execution (:mod:`dea.features.stream_plan`) calls the
# cells straight from its generated row function. Plain Python floats: for the few columns of a
# decision row this beats numpy's per-call overhead, and each cell performs exactly the
# operations of its kernel in :mod:`dea.features.kernels_batch`.

_isfinite = math.isfinite


class LagCell:
    """x[t-k] of one column (NaN for the first k rows)."""

    __slots__ = ("k", "buf", "pos")

    def __init__(self, k: int) -> None:
        self.k = k
        self.buf = [_NAN] * max(k, 1)
        self.pos = 0

    def step(self, v: float) -> float:
        if self.k == 0:
            return v
        pos = self.pos
        out = self.buf[pos]
        self.buf[pos] = v
        self.pos = (pos + 1) % self.k
        return out


class SumCell:
    """Add/remove running sum with exact sequential re-summation whenever the ring wraps
    (``kernels_batch.rolling_sum``)."""

    __slots__ = ("w", "buf", "pos", "s", "nanc")

    def __init__(self, w: int) -> None:
        if w < 1:
            raise FeatureError(f"rolling window must be >= 1, got {w}")
        self.w = w
        self.buf = [_NAN] * w
        self.pos = 0
        self.s = 0.0
        self.nanc = w

    def step(self, v: float) -> float:
        buf, pos = self.buf, self.pos
        old = buf[pos]
        s = self.s
        if _isfinite(old):
            s = s - old
        else:
            self.nanc -= 1
        if _isfinite(v):
            s = s + v
        else:
            self.nanc += 1
        buf[pos] = v
        pos += 1
        if pos == self.w:
            pos = 0
            acc = 0.0
            for b in buf:
                acc = acc + (b if _isfinite(b) else 0.0)
            s = acc
        self.pos = pos
        self.s = s
        return s if self.nanc == 0 else _NAN


class MeanStdCell:
    """Shifted first/second moments (shift = a recent value, refreshed on each wrap) for
    stability (``kernels_batch.rolling_mean_std``); ``step`` returns (mean, sample std)."""

    __slots__ = ("w", "buf", "pos", "ref", "s1", "s2", "nanc")

    def __init__(self, w: int) -> None:
        if w < 2:
            raise FeatureError(f"rolling_mean_std needs a window >= 2, got {w}")
        self.w = w
        self.buf = [_NAN] * w
        self.pos = 0
        self.ref = _NAN
        self.s1 = 0.0
        self.s2 = 0.0
        self.nanc = w

    def step(self, v: float) -> tuple[float, float]:
        w = self.w
        buf, pos = self.buf, self.pos
        ref, s1, s2 = self.ref, self.s1, self.s2
        vfin = _isfinite(v)
        if ref != ref and vfin:
            ref = v
        old = buf[pos]
        if _isfinite(old):
            d = old - ref
            s1 = s1 - d
            s2 = s2 - d * d
        else:
            s1 = s1 - 0.0
            s2 = s2 - 0.0
            self.nanc -= 1
        if vfin:
            d = v - ref
            s1 = s1 + d
            s2 = s2 + d * d
        else:
            s1 = s1 + 0.0
            s2 = s2 + 0.0
            self.nanc += 1
        buf[pos] = v
        pos += 1
        if pos == w:
            pos = 0
            last = buf[w - 1]
            if _isfinite(last):
                ref = last
            a1 = 0.0
            a2 = 0.0
            for b in buf:
                d = b - ref
                if not _isfinite(d):
                    d = 0.0
                a1 = a1 + d
                a2 = a2 + d * d
            s1 = a1
            s2 = a2
        self.pos, self.ref, self.s1, self.s2 = pos, ref, s1, s2
        if self.nanc == 0:
            var = (s2 - s1 * s1 / w) / (w - 1)
            return ref + s1 / w, math.sqrt(var if var > 0.0 else 0.0)
        return _NAN, _NAN


class ExtremeCell:
    """Monotonic-deque sliding max/min of one column (O(1) amortised)."""

    __slots__ = ("w", "is_max", "q", "i", "last_nan")

    def __init__(self, w: int, is_max: bool) -> None:
        self.w = w
        self.is_max = is_max
        self.q: deque[tuple[int, float]] = deque()
        self.i = -1
        self.last_nan = -(10**18)

    def step(self, v: float) -> float:
        self.i += 1
        i, w, q = self.i, self.w, self.q
        if not _isfinite(v):
            self.last_nan = i
        else:
            if self.is_max:
                while q and q[-1][1] <= v:
                    q.pop()
            else:
                while q and q[-1][1] >= v:
                    q.pop()
            q.append((i, v))
        while q and q[0][0] <= i - w:
            q.popleft()
        return q[0][1] if (i >= w - 1 and self.last_nan <= i - w and q) else _NAN


class EwmaCell:
    """m += a (x - m), started at the first finite value (``kernels_batch.ewma``)."""

    __slots__ = ("a", "mp", "m", "n")

    def __init__(self, span: float, min_periods: int) -> None:
        self.a = ewma_alpha(span)
        self.mp = int(min_periods)
        self.m = _NAN
        self.n = 0

    def step(self, v: float) -> float:
        if _isfinite(v):
            m = self.m
            m = v if m != m else m + self.a * (v - m)
            self.m = m
            self.n += 1
            return m if self.n >= self.mp else _NAN
        return _NAN


def _flat(x: np.ndarray) -> list[float]:
    return np.asarray(x, dtype=np.float64).ravel().tolist()


def _shaped(values: list[float], shape: tuple[int, ...]) -> np.ndarray:
    a = np.array(values, dtype=np.float64)
    return a.reshape(shape) if shape else a[0]


class _Columns:
    """One cell per column of a [C] (or scalar) input: the generic streaming operator."""

    __slots__ = ("shape", "steps")

    def __init__(self, shape: tuple[int, ...], make: Any) -> None:
        self.shape = shape
        n = int(np.prod(shape)) if shape else 1
        self.steps = [make().step for _ in range(n)]

    def step(self, x: np.ndarray) -> np.ndarray:
        return _shaped([f(v) for f, v in zip(self.steps, _flat(x))], self.shape)

    def step2(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = [f(v) for f, v in zip(self.steps, _flat(x))]
        return _shaped([p[0] for p in pairs], self.shape), _shaped([p[1] for p in pairs], self.shape)


class StreamOps:
    """Operators over one row at a time; state lives per call site (the k-th call of a row)."""

    def __init__(self) -> None:
        self._nodes: list[tuple[tuple[Any, ...], Any]] = []
        self._k = 0
        self._frozen = False

    def begin(self) -> None:
        self._k = 0

    def end(self) -> None:
        if self._frozen and self._k != len(self._nodes):
            raise FeatureError("expression feature called a different number of ops on this row (data-dependent branching)")
        self._frozen = True

    def _node(self, key: tuple[Any, ...], make: Any) -> Any:
        k = self._k
        self._k += 1
        if k < len(self._nodes):
            if self._nodes[k][0] != key:
                raise FeatureError(f"expression feature op #{k} changed from {self._nodes[k][0]} to {key} between rows")
            return self._nodes[k][1]
        if self._frozen:
            raise FeatureError("expression feature called more ops on this row than on the first (data-dependent branching)")
        node = make()
        self._nodes.append((key, node))
        return node

    def lag(self, x: Any, k: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if k == 0:
            self._node(("lag", x.shape, k), lambda: None)
            return np.array(x, dtype=np.float64)
        return self._node(("lag", x.shape, k), lambda: _Columns(x.shape, lambda: LagCell(int(k)))).step(x)

    def rolling_sum(self, x: Any, w: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self._node(("sum", x.shape, w), lambda: _Columns(x.shape, lambda: SumCell(int(w)))).step(x)

    def rolling_mean_std(self, x: Any, w: int) -> tuple[np.ndarray, np.ndarray]:
        if w < 2:
            raise FeatureError(f"rolling_mean_std needs a window >= 2, got {w}")
        x = np.asarray(x, dtype=np.float64)
        return self._node(("meanstd", x.shape, w), lambda: _Columns(x.shape, lambda: MeanStdCell(int(w)))).step2(x)

    def rolling_max(self, x: Any, w: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self._node(("max", x.shape, w), lambda: _Columns(x.shape, lambda: ExtremeCell(int(w), True))).step(x)

    def rolling_min(self, x: Any, w: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self._node(("min", x.shape, w), lambda: _Columns(x.shape, lambda: ExtremeCell(int(w), False))).step(x)

    def ewma(self, x: Any, span: float, min_periods: int = 1) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self._node(
            ("ewma", x.shape, span, min_periods), lambda: _Columns(x.shape, lambda: EwmaCell(span, min_periods))
        ).step(x)


class ExprStream(FeatureStream):
    """Streaming execution of an :class:`~dea.features.base.ExprFeature`."""

    def __init__(self, feature: "Feature") -> None:
        self._f = feature
        self._ops = StreamOps()
        self._n_stems = len(feature.stems())
        self._width = feature.width
        self._out = np.empty(self._n_stems * self._width)

    def update(self, t: int, fields: Mapping[str, np.ndarray], series: Mapping[str, float]) -> np.ndarray:
        self._ops.begin()
        res = self._f.compute(self._ops, _Inputs(self._f, np.int64(t), fields, series))  # type: ignore[attr-defined]
        self._ops.end()
        arrays = res if isinstance(res, tuple) else (res,)
        if len(arrays) != self._n_stems:
            raise FeatureError(f"feature {self._f.name!r}: compute returned {len(arrays)} arrays for {self._n_stems} stems")
        w = self._width
        for j, a in enumerate(arrays):
            self._out[j * w : (j + 1) * w] = a
        return self._out
