"""Compiled streaming execution of expression features: serving's per-decision feature path.

Why: the generic streaming execution (:class:`dea.features.ops.ExprStream`) runs each feature's
``compute`` on every row with numpy on [C]-sized arrays. For a decision row numpy's per-call
overhead dwarfs the arithmetic, and every feature recomputes what others already computed (the
log of ``close`` is taken by half of the bar features). This module traces each expression
feature's ``compute`` *once*, on symbolic inputs, into one graph of scalar operations shared by
the whole feature set (identical sub-expressions, operator states included, become one node),
and turns the graph into a single straight-line Python function over plain floats, run per row.

Same values, by construction:

- elementwise arithmetic (``+ - * /``, comparisons, ``np.where``, ``np.maximum``/``minimum``,
  ``np.clip``, ``np.sqrt``, ``np.isfinite``) is emitted as Python float operations, which are
  the same IEEE-754 double operations numpy performs, with numpy's NaN, zero-division and
  type-promotion rules reproduced (NEP 50: Python scalars are weak);
- every other ufunc (``np.log`` via :func:`~dea.features.ops.safe_log`, ``np.log1p``,
  ``np.sin``, ...) is left to numpy: the values that need it on a row are gathered into one
  float64 array and passed to the very same ufunc (libm's ``log`` differs from numpy's SIMD
  ``log`` in the last bit, so calling :mod:`math` would not do);
- time operators run the cells of :mod:`dea.features.ops`, the arithmetic the generic
  execution runs.

Anything the tracer does not understand (a numpy function outside the short list above, a
data-dependent branch, a conversion of a traced value to a Python number, an exotic dtype)
makes that feature fall back to the generic execution, so a new feature is never computed
wrongly, only more slowly; :attr:`StreamPlan.fallback` says which and why. The tests in
``tests/features`` hold the compiled and generic executions equal bit for bit on real data.

numpy + stdlib only (serving imports it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dea.errors import FeatureError
from dea.features import ops as _ops
from dea.features.base import ExprFeature, Feature

_NAN = math.nan
_INF = math.inf

# value kinds, ordered for type promotion (bool < int64 < float64)
_B, _I, _F = 0, 1, 2
_F64 = np.dtype(np.float64)
_KIND_OF_DTYPE = {np.dtype(np.bool_): _B, np.dtype(np.int64): _I, _F64: _F}
_DTYPE_OF_KIND = {_B: np.dtype(np.bool_), _I: np.dtype(np.int64), _F: _F64}

# ops computed by numpy on gathered float64 arrays (batched per row and ufunc)
_BATCHED = frozenset({"np", "safelog"})
# ufuncs numpy evaluates in float64 for int64 inputs (so an int input may be cast first)
_FLOAT_LOOP_ON_INT = frozenset(
    {
        np.log, np.log1p, np.log2, np.log10, np.exp, np.expm1, np.exp2, np.sin, np.cos, np.tan,
        np.arcsin, np.arccos, np.arctan, np.sinh, np.cosh, np.tanh, np.arcsinh, np.arccosh,
        np.arctanh, np.cbrt, np.arctan2, np.hypot, np.deg2rad, np.rad2deg,
    }
)
_CMP = {np.less: "<", np.less_equal: "<=", np.greater: ">", np.greater_equal: ">=", np.equal: "==", np.not_equal: "!="}


class Untraceable(Exception):
    """``compute`` did something the tracer cannot reproduce exactly (the feature falls back)."""


# ======================================================================================== graph
class _Node:
    """One scalar value of the row program."""

    __slots__ = ("id", "op", "args", "kind", "param", "value")

    def __init__(self, nid: int, op: str, args: tuple["_Node", ...], kind: int | None, param: Any, value: Any) -> None:
        self.id = nid
        self.op = op
        self.args = args
        self.kind = kind
        self.param = param
        self.value = value

    def __bool__(self) -> bool:
        raise Untraceable("a traced value was used as a Python bool (data-dependent branching)")


class _Weak:
    """A Python scalar operand: takes the kind of the array it meets (NEP 50)."""

    __slots__ = ("value", "kind")

    def __init__(self, value: Any, kind: int) -> None:
        self.value = value
        self.kind = kind


class _Graph:
    """Hash-consed nodes: the same operation on the same operands is one node (and one state)."""

    def __init__(self) -> None:
        self.nodes: list[_Node] = []
        self._memo: dict[tuple[Any, ...], _Node] = {}

    def node(self, op: str, args: Sequence[_Node], kind: int | None, param: Any = None, value: Any = None) -> _Node:
        args = tuple(args)
        key = (op, tuple(a.id for a in args), kind, param)
        n = self._memo.get(key)
        if n is None:
            n = _Node(len(self.nodes), op, args, kind, param, value)
            self.nodes.append(n)
            self._memo[key] = n
        return n

    def const(self, value: Any, kind: int) -> _Node:
        if kind == _F:
            value = float(value)
        elif kind == _I:
            value = int(value)
        else:
            value = bool(value)
        return self.node("const", (), kind, (kind, repr(value)), value)  # repr: keeps -0.0 and nan apart

    def cast(self, n: _Node, kind: int) -> _Node:
        if n.kind == kind:
            return n
        if kind < n.kind:
            raise Untraceable("narrowing cast")
        if n.op == "const":
            return self.const(n.value, kind)
        return self.node("cast", (n,), kind)


# ======================================================================================== tracing
def _scalar_operand(g: _Graph, x: Any) -> _Node | _Weak:
    if isinstance(x, (_Node, _Weak)):
        return x
    if isinstance(x, bool):
        return _Weak(x, _B)
    if isinstance(x, int):
        return _Weak(x, _I)
    if isinstance(x, float):
        return _Weak(x, _F)
    if isinstance(x, np.generic):
        kind = _KIND_OF_DTYPE.get(x.dtype)
        if kind is None:
            raise Untraceable(f"dtype {x.dtype}")
        return g.const(x.item(), kind)
    raise Untraceable(f"operand of type {type(x).__name__}")


def _as_obj(g: _Graph, x: Any) -> np.ndarray:
    """An operand as an object array of nodes (or weak scalars)."""
    if isinstance(x, Traced):
        return x.a
    if isinstance(x, np.ndarray):
        kind = _KIND_OF_DTYPE.get(x.dtype)
        if kind is None:
            raise Untraceable(f"array of dtype {x.dtype}")
        out = np.empty(x.shape, dtype=object)
        for idx in np.ndindex(x.shape):
            out[idx] = g.const(x[idx].item(), kind)
        return out
    out = np.empty((), dtype=object)
    out[()] = _scalar_operand(g, x)
    return out


def _strong(g: _Graph, x: Any) -> np.ndarray:
    """``x`` as numpy would hold it in an array of its own: Python scalars become float64,
    int64 or bool constants (they are weak only as operands of a ufunc)."""
    arr = _as_obj(g, x)
    if arr.shape == () and isinstance(arr[()], _Weak):
        w = arr[()]
        arr = np.empty((), dtype=object)
        arr[()] = g.const(w.value, w.kind)
    return arr


def _elementwise(g: _Graph, fn: Callable[..., _Node], *arrays: np.ndarray) -> "Traced":
    arrays = np.broadcast_arrays(*arrays)
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(a[idx] for a in arrays))
    return Traced(out, g)


def _operands(g: _Graph, args: Sequence[_Node | _Weak]) -> tuple[list[_Node], int]:
    """Common kind of ``args`` (weak scalars adopt it) and the args cast to it."""
    kind = max(a.kind for a in args)
    nodes = []
    for a in args:
        if isinstance(a, _Weak):
            nodes.append(g.const(a.value, kind))
        else:
            nodes.append(g.cast(a, kind))
    return nodes, kind


def _to_float(g: _Graph, a: _Node | _Weak) -> _Node:
    if isinstance(a, _Weak):
        return g.const(a.value, _F)
    return g.cast(a, _F)


def _probe_kind(ufunc: np.ufunc) -> int:
    res = ufunc(*([np.ones(1)] * ufunc.nin))
    if ufunc.nout != 1 or res.dtype not in (_F64, np.dtype(np.bool_)):
        raise Untraceable(f"ufunc {ufunc.__name__} does not give one float64/bool result")
    return _F if res.dtype == _F64 else _B


def _ufunc_node(g: _Graph, uf: np.ufunc, args: Sequence[_Node | _Weak]) -> _Node:
    name = uf.__name__
    if uf in (np.add, np.subtract, np.multiply):
        nodes, k = _operands(g, args)
        if k == _B:
            if uf is np.subtract:
                raise Untraceable("boolean subtract")
            return g.node("or" if uf is np.add else "and", nodes, _B)
        return g.node({"add": "add", "subtract": "sub", "multiply": "mul"}[name], nodes, k)
    if uf is np.true_divide:
        nodes, k = _operands(g, args)
        if k == _B:
            raise Untraceable("boolean divide")
        return g.node("div", [g.cast(n, _F) for n in nodes], _F)
    if uf in (np.floor_divide, np.remainder):
        nodes, k = _operands(g, args)
        if k == _I and nodes[1].op == "const" and nodes[1].value != 0:
            return g.node("floordiv" if uf is np.floor_divide else "mod", nodes, _I)
        if k == _F:
            return g.node("np", nodes, _F, uf)
        raise Untraceable(f"{name} on these operands")
    if uf in _CMP:
        nodes, k = _operands(g, args)
        return g.node("cmp", nodes, _B, _CMP[uf])
    if uf in (np.maximum, np.minimum):
        nodes, k = _operands(g, args)
        if k == _B:
            return g.node("or" if uf is np.maximum else "and", nodes, _B)
        return g.node(("max" if uf is np.maximum else "min") + ("f" if k == _F else "i"), nodes, k)
    if uf in (np.negative, np.absolute, np.positive, np.square):
        (n,), k = _operands(g, args)
        if k == _B:
            raise Untraceable(f"{name} of a boolean")
        if uf is np.positive:
            return n
        if uf is np.square:
            return g.node("mul", (n, n), k)
        return g.node("neg" if uf is np.negative else "abs", (n,), k)
    if uf is np.sqrt:
        (n,), k = _operands(g, args)
        if k == _B:
            raise Untraceable("sqrt of a boolean")
        return g.node("sqrt", (g.cast(n, _F),), _F)
    if uf in (np.isfinite, np.isnan, np.isinf):
        (n,), k = _operands(g, args)
        if k != _F:
            return g.const(uf is np.isfinite, _B)
        return g.node(name, (n,), _B)
    if uf in (np.logical_and, np.logical_or, np.logical_xor, np.bitwise_and, np.bitwise_or, np.bitwise_xor):
        nodes, k = _operands(g, args)
        if k != _B:
            raise Untraceable(f"{name} of non-booleans")
        return g.node({"and": "and", "or": "or", "xor": "xor"}[name.split("_")[1]], nodes, _B)
    if uf in (np.logical_not, np.invert):
        (n,), k = _operands(g, args)
        if k != _B:
            raise Untraceable(f"{name} of a non-boolean")
        return g.node("not", (n,), _B)
    if uf.nin in (1, 2) and uf.nout == 1 and uf.signature is None:  # any other elementwise ufunc:
        # numpy computes it, on float64 inputs
        nodes, k = _operands(g, args)
        if k == _B or (k == _I and uf not in _FLOAT_LOOP_ON_INT):
            raise Untraceable(f"{name} on non-float operands")
        return g.node("np", [g.cast(n, _F) for n in nodes], _probe_kind(uf), uf)
    raise Untraceable(f"ufunc {name}")


class Traced(_ops.TracedArray):
    """A traced array: an object array of scalar nodes that behaves like a float ndarray.

    numpy hands every ufunc and the few array functions the features use to this class
    (``__array_ufunc__`` / ``__array_function__``); anything else raises :class:`Untraceable`.
    """

    __slots__ = ("a", "g")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, a: np.ndarray, g: _Graph) -> None:
        self.a = a
        self.g = g

    # -- numpy protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != "__call__" or any(v is not None for v in kwargs.values()):
            raise Untraceable(f"ufunc {ufunc.__name__}.{method} with {sorted(kwargs)}")
        g = self.g
        return _elementwise(g, lambda *xs: _ufunc_node(g, ufunc, xs), *(_as_obj(g, x) for x in inputs))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        g = self.g
        if func is np.where and len(args) == 3 and not kwargs:
            def where(c: Any, x: Any, y: Any) -> _Node:
                c = _scalar_operand(g, c)
                if isinstance(c, _Weak) or c.kind != _B:
                    raise Untraceable("np.where with a non-boolean condition")
                (xn, yn), _ = _operands(g, (x, y))
                return g.node("where", (c, xn, yn), xn.kind)

            return _elementwise(g, where, *(_as_obj(g, v) for v in args))
        if func is np.clip:
            if len(args) != 3 or any(v is not None for v in kwargs.values()) or args[1] is None or args[2] is None:
                raise Untraceable("np.clip form")
            return _elementwise(g, lambda x, lo, hi: _clip_node(g, x, lo, hi), *(_as_obj(g, v) for v in args))
        if func is np.broadcast_to and len(args) == 2 and not kwargs:
            return Traced(np.broadcast_to(_strong(g, args[0]), args[1]), g)
        if func is np.broadcast_arrays and not kwargs:
            return [Traced(a, g) for a in np.broadcast_arrays(*(_strong(g, v) for v in args))]
        if func in (np.shape, np.ndim, np.size) and len(args) == 1 and not kwargs:
            return func(self.a)
        raise Untraceable(f"numpy function {getattr(func, '__name__', func)}")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise Untraceable("conversion of a traced value to an ndarray")

    # -- array-like --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.a.shape

    @property
    def ndim(self) -> int:
        return self.a.ndim

    @property
    def size(self) -> int:
        return self.a.size

    @property
    def dtype(self) -> np.dtype:
        kinds = {n.kind for n in self.a.flat if isinstance(n, _Node)}
        if len(kinds) != 1:
            raise Untraceable("mixed-kind traced array")
        return _DTYPE_OF_KIND[kinds.pop()]

    def __len__(self) -> int:
        return len(self.a)

    def __iter__(self) -> Any:
        for i in range(len(self.a)):
            yield self[i]

    def __getitem__(self, idx: Any) -> "Traced":
        items = idx if isinstance(idx, tuple) else (idx,)
        if any(isinstance(i, Traced) for i in items):
            raise Untraceable("indexing with a traced value")
        out = self.a[idx]
        if not isinstance(out, np.ndarray):
            cell = np.empty((), dtype=object)
            cell[()] = out
            out = cell
        return Traced(out, self.g)

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> "Traced":
        kind = _KIND_OF_DTYPE.get(np.dtype(dtype))
        if kind is None:
            raise Untraceable(f"astype({dtype})")
        g = self.g
        return _elementwise(g, lambda n: g.cast(n, kind), self.a)

    def clip(self, lo: Any, hi: Any) -> "Traced":
        return np.clip(self, lo, hi)

    def __bool__(self) -> bool:
        raise Untraceable("a traced value was used as a Python bool (data-dependent branching)")

    def __float__(self) -> float:
        raise Untraceable("a traced value was converted to a Python float")

    def __int__(self) -> int:
        raise Untraceable("a traced value was converted to a Python int")

    __index__ = __int__
    __complex__ = __float__

    def __setitem__(self, idx: Any, value: Any) -> None:
        raise Untraceable("item assignment into a traced array")

    def _inplace(self, *_: Any) -> Any:
        # numpy would modify the array in place (and every name bound to it); refuse rather
        # than rebind silently
        raise Untraceable("in-place operator on a traced array")

    __iadd__ = __isub__ = __imul__ = __itruediv__ = __ifloordiv__ = __imod__ = __ipow__ = _inplace
    __iand__ = __ior__ = __ixor__ = __ilshift__ = __irshift__ = __imatmul__ = _inplace

    # -- operators: the ufuncs they stand for ------------------------------------------------
    def _u(self, uf: np.ufunc, *xs: Any) -> Any:
        return self.__array_ufunc__(uf, "__call__", *xs)

    def __add__(self, o: Any) -> Any: return self._u(np.add, self, o)
    def __radd__(self, o: Any) -> Any: return self._u(np.add, o, self)
    def __sub__(self, o: Any) -> Any: return self._u(np.subtract, self, o)
    def __rsub__(self, o: Any) -> Any: return self._u(np.subtract, o, self)
    def __mul__(self, o: Any) -> Any: return self._u(np.multiply, self, o)
    def __rmul__(self, o: Any) -> Any: return self._u(np.multiply, o, self)
    def __truediv__(self, o: Any) -> Any: return self._u(np.true_divide, self, o)
    def __rtruediv__(self, o: Any) -> Any: return self._u(np.true_divide, o, self)
    def __floordiv__(self, o: Any) -> Any: return self._u(np.floor_divide, self, o)
    def __rfloordiv__(self, o: Any) -> Any: return self._u(np.floor_divide, o, self)
    def __mod__(self, o: Any) -> Any: return self._u(np.remainder, self, o)
    def __rmod__(self, o: Any) -> Any: return self._u(np.remainder, o, self)
    def __pow__(self, o: Any) -> Any: return self._u(np.power, self, o)
    def __rpow__(self, o: Any) -> Any: return self._u(np.power, o, self)
    def __neg__(self) -> Any: return self._u(np.negative, self)
    def __pos__(self) -> Any: return self._u(np.positive, self)
    def __abs__(self) -> Any: return self._u(np.absolute, self)
    def __invert__(self) -> Any: return self._u(np.invert, self)
    def __and__(self, o: Any) -> Any: return self._u(np.bitwise_and, self, o)
    def __rand__(self, o: Any) -> Any: return self._u(np.bitwise_and, o, self)
    def __or__(self, o: Any) -> Any: return self._u(np.bitwise_or, self, o)
    def __ror__(self, o: Any) -> Any: return self._u(np.bitwise_or, o, self)
    def __xor__(self, o: Any) -> Any: return self._u(np.bitwise_xor, self, o)
    def __rxor__(self, o: Any) -> Any: return self._u(np.bitwise_xor, o, self)
    def __lt__(self, o: Any) -> Any: return self._u(np.less, self, o)
    def __le__(self, o: Any) -> Any: return self._u(np.less_equal, self, o)
    def __gt__(self, o: Any) -> Any: return self._u(np.greater, self, o)
    def __ge__(self, o: Any) -> Any: return self._u(np.greater_equal, self, o)
    def __eq__(self, o: Any) -> Any: return self._u(np.equal, self, o)  # type: ignore[override]
    def __ne__(self, o: Any) -> Any: return self._u(np.not_equal, self, o)  # type: ignore[override]

    # -- the traced counterparts of ops.safe_log / ops.safe_div -----------------------------
    def _safe_log(self) -> "Traced":
        g = self.g
        return _elementwise(g, lambda n: g.node("safelog", (_to_float(g, n),), _F), self.a)

    @staticmethod
    def _safe_div(a: Any, b: Any) -> "Traced":
        g = a.g if isinstance(a, Traced) else b.g
        return _elementwise(
            g, lambda x, y: g.node("safediv", (_to_float(g, x), _to_float(g, y)), _F), _as_obj(g, a), _as_obj(g, b)
        )


def _clip_node(g: _Graph, x: Any, lo: Any, hi: Any) -> _Node:
    nodes, k = _operands(g, (x, lo, hi))
    if k == _F:
        return g.node("clip", nodes, _F)
    if k == _I:
        return g.node("mini", (g.node("maxi", nodes[:2], _I), nodes[2]), _I)
    raise Untraceable("clip of booleans")


class _TraceOps:
    """``ops`` while tracing: one operator cell per element, keyed for sharing."""

    def __init__(self, g: _Graph) -> None:
        self.g = g

    def _float_nodes(self, x: Any) -> np.ndarray:
        g = self.g
        arr = _as_obj(g, x)
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(arr.shape):
            out[idx] = _to_float(g, arr[idx])
        return out

    def _cells(self, x: Any, op: str, param: Any) -> Traced:
        g = self.g
        return _elementwise(g, lambda n: g.node(op, (n,), _F, param), self._float_nodes(x))

    def lag(self, x: Any, k: int) -> Traced:
        if k == 0:
            return Traced(self._float_nodes(x), self.g)
        return self._cells(x, "lag", int(k))

    def rolling_sum(self, x: Any, w: int) -> Traced:
        _ops.SumCell(int(w))  # validates the window exactly as the generic execution does
        return self._cells(x, "sum", int(w))

    def rolling_mean_std(self, x: Any, w: int) -> tuple[Traced, Traced]:
        if w < 2:
            raise FeatureError(f"rolling_mean_std needs a window >= 2, got {w}")
        g = self.g
        cells = self._cells(x, "meanstd", int(w))
        return (
            _elementwise(g, lambda n: g.node("item0", (n,), _F), cells.a),
            _elementwise(g, lambda n: g.node("item1", (n,), _F), cells.a),
        )

    def rolling_max(self, x: Any, w: int) -> Traced:
        return self._cells(x, "rmax", int(w))

    def rolling_min(self, x: Any, w: int) -> Traced:
        return self._cells(x, "rmin", int(w))

    def ewma(self, x: Any, span: float, min_periods: int = 1) -> Traced:
        return self._cells(x, "ewma", (span, min_periods))


class _TraceInputs:
    """``x`` while tracing: panel inputs as input nodes."""

    def __init__(self, feature: Feature, g: _Graph, n_instruments: int) -> None:
        self._feature = feature
        self._g = g
        self._n = n_instruments
        cell = np.empty((), dtype=object)
        cell[()] = g.node("in_t", (), _I)
        self.t = Traced(cell, g)

    def field(self, name: str) -> Traced:
        return self.field_all(name)[..., self._feature._sel]

    def field_all(self, name: str) -> Traced:
        out = np.empty(self._n, dtype=object)
        for j in range(self._n):
            out[j] = self._g.node("in_f", (), _F, (name, j))
        return Traced(out, self._g)

    def series(self, name: str) -> Traced:
        cell = np.empty((), dtype=object)
        cell[()] = self._g.node("in_s", (), _F, name)
        return Traced(cell, self._g)

    def source(self, default: Any = None) -> Traced:
        src = self._feature.source or default
        if src is None:
            raise FeatureError(f"feature {self._feature.name!r} has no input series/field configured")
        return self.series(src.name) if src.kind == "series" else self.field(src.name)


def _trace(feature: ExprFeature, g: _Graph, n_instruments: int) -> list[_Node]:
    """The output nodes of ``feature``'s columns (stem-major), or Untraceable."""
    res = feature.compute(_TraceOps(g), _TraceInputs(feature, g, n_instruments))
    arrays = res if isinstance(res, tuple) else (res,)
    if len(arrays) != len(feature.stems()):
        raise Untraceable("compute returned a different number of arrays than stems")
    width = feature.width
    cols: list[_Node] = []
    for a in arrays:
        obj = np.broadcast_to(_as_obj(g, a), (width,))  # the generic execution's slice assignment
        cols.extend(_to_float(g, n) for n in obj)
    return cols


# ======================================================================================== codegen
def _cell(node: _Node) -> Any:
    op, p = node.op, node.param
    if op == "lag":
        return _ops.LagCell(p)
    if op == "sum":
        return _ops.SumCell(p)
    if op == "meanstd":
        return _ops.MeanStdCell(p)
    if op in ("rmax", "rmin"):
        return _ops.ExtremeCell(p, op == "rmax")
    if op == "ewma":
        return _ops.EwmaCell(p[0], p[1])
    raise AssertionError(op)


_CELL_OPS = frozenset({"lag", "sum", "meanstd", "rmax", "rmin", "ewma"})
_BINOP = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "mod": "%"}


def _clip(x: float, lo: float, hi: float) -> float:
    """numpy's float clip: minimum(maximum(x, lo), hi), NaN in x or lo propagating."""
    if x != x:
        return x
    m = x if x > lo else lo
    if m != m:
        return m
    return m if m < hi else hi


def _div(a: float, b: float) -> float:
    """a / b with numpy's IEEE result for a zero divisor (Python would raise)."""
    if b:
        return a / b
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


class _Codegen:
    def __init__(self, outputs: list[_Node], n_instruments: int, field_owner: dict[str, str], series_owner: dict[str, str]) -> None:
        self.outputs = outputs
        self.n = n_instruments
        self.field_owner = field_owner
        self.series_owner = series_owner
        self.env: dict[str, Any] = {}
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.n_cells = 0
        self.n_batched_calls = 0

    def _bind(self, prefix: str, obj: Any) -> str:
        name = f"{prefix}{len(self.env)}"
        self.env[name] = obj
        return name

    def _ref(self, n: _Node) -> str:
        if n.op == "const":
            v = n.value
            if n.kind == _F and not math.isfinite(v):
                return self._bind("_k", v)
            return repr(v)
        return self.names[n.id]

    def build(self) -> Callable[[int, Mapping[str, Any], Mapping[str, Any]], list[float]]:
        reach: dict[int, _Node] = {}
        stack = list(self.outputs)
        while stack:
            n = stack.pop()
            if n.id in reach:
                continue
            reach[n.id] = n
            stack.extend(n.args)
        order = [reach[i] for i in sorted(reach)]  # ids are creation order: topological
        level: dict[int, int] = {}
        for n in order:
            lv = max((level[a.id] for a in n.args), default=0)
            level[n.id] = lv + 1 if n.op in _BATCHED else lv
        body = self.lines
        # inputs
        fields: dict[str, dict[int, _Node]] = {}
        for n in order:
            if n.op == "in_f":
                fields.setdefault(n.param[0], {})[n.param[1]] = n
        for name, cols in fields.items():
            var = self._bind("_fl", name)
            targets = []
            for j in range(self.n):
                if j in cols:
                    self.names[cols[j].id] = f"v{cols[j].id}"
                    targets.append(f"v{cols[j].id}")
                else:
                    targets.append("_")
            # the reader inlined for the common case (a float64 [N] array); _field handles the rest
            body += [
                f"_a = fields.get({var})",
                f"if _a.__class__ is not _nd or _a.dtype is not _F64 or _a.shape != _shape:",
                f"    _a = _field(fields, {var})",
                f"{', '.join(targets)}, = _a.tolist()",
            ]
        for n in order:
            if n.op == "in_s":
                self.names[n.id] = f"v{n.id}"
                body.append(f"v{n.id} = _series(series, {self._bind('_sr', n.param)})")
            elif n.op == "in_t":
                self.names[n.id] = f"v{n.id}"
                body.append(f"v{n.id} = t")
        # levels: numpy batches first (their operands are ready), then the scalar code
        for lv in range(max(level.values(), default=0) + 1):
            groups: dict[tuple[str, Any], list[_Node]] = {}
            for n in order:
                if level[n.id] == lv and n.op in _BATCHED:
                    groups.setdefault((n.op, n.param), []).append(n)
            for (op, param), members in groups.items():
                self._batch(op, param, members)
            for n in order:
                if level[n.id] == lv and n.op not in _BATCHED and n.op not in ("const", "in_f", "in_s", "in_t"):
                    self._scalar(n)
        outs = []
        for n in self.outputs:
            r = self._ref(n)
            outs.append(f"({r} if {r} - {r} == 0.0 else _NAN)")  # +-inf never leaves the engine
        body.append(f"return [{', '.join(outs)}]")
        self.env.update(
            {"_NAN": _NAN, "_INF": _INF, "_sqrt": math.sqrt, "_clip": _clip, "_div": _div, "_array": np.array,
             "_field": self._field_reader(), "_series": self._series_reader(), "_nd": np.ndarray, "_F64": _F64,
             "_shape": (self.n,)}
        )
        params = ", ".join(self.env)
        src = "def _factory(" + params + "):\n    def _row(t, fields, series):\n"
        src += "".join(f"        {line}\n" for line in body)
        src += "    return _row\n"
        ns: dict[str, Any] = {}
        exec(compile(src, "<dea.features.stream_plan>", "exec"), ns)  # noqa: S102 - generated from the traced graph
        self.source = src
        return ns["_factory"](**self.env)

    def _batch(self, op: str, param: Any, members: list[_Node]) -> None:
        self.n_batched_calls += 1
        fn = _ops.safe_log if op == "safelog" else param
        fvar = self._bind("_np", fn)
        arity = len(members[0].args)
        arrays = []
        for i in range(arity):
            arrays.append("_array([" + ", ".join(self._ref(m.args[i]) for m in members) + "])")
        for m in members:
            self.names[m.id] = f"v{m.id}"
        targets = ", ".join(f"v{m.id}" for m in members)
        self.lines.append(f"{targets}, = {fvar}({', '.join(arrays)}).tolist()")

    def _scalar(self, n: _Node) -> None:
        v = f"v{n.id}"
        self.names[n.id] = v
        a = [self._ref(x) for x in n.args]
        op = n.op
        if op in _CELL_OPS:
            self.n_cells += 1
            expr = f"{self._bind('_c', _cell(n).step)}({a[0]})"
        elif op in ("item0", "item1"):
            expr = f"{a[0]}[{op[-1]}]"
        elif op == "cast":
            expr = {_F: f"float({a[0]})", _I: f"int({a[0]})"}[n.kind]
        elif op in _BINOP:
            expr = f"({a[0]} {_BINOP[op]} {a[1]})"
        elif op == "div":
            d = n.args[1]
            if d.op == "const" and d.value != 0.0 and math.isfinite(d.value):
                expr = f"({a[0]} / {a[1]})"
            else:
                expr = f"_div({a[0]}, {a[1]})"
        elif op == "safediv":
            expr = f"({a[0]} / {a[1]} if {a[1]} > 0.0 else _NAN)"
        elif op == "cmp":
            expr = f"({a[0]} {n.param} {a[1]})"
        elif op == "maxf":  # numpy: in1 >= in2 || isnan(in1) ? in1 : in2
            expr = f"({a[0]} if ({a[0]} >= {a[1]} or {a[0]} != {a[0]}) else {a[1]})"
        elif op == "minf":
            expr = f"({a[0]} if ({a[0]} <= {a[1]} or {a[0]} != {a[0]}) else {a[1]})"
        elif op == "maxi":
            expr = f"({a[0]} if {a[0]} >= {a[1]} else {a[1]})"
        elif op == "mini":
            expr = f"({a[0]} if {a[0]} <= {a[1]} else {a[1]})"
        elif op == "neg":
            expr = f"(-{a[0]})"
        elif op == "abs":
            expr = f"abs({a[0]})"
        elif op == "sqrt":  # numpy: NaN for negative input (math.sqrt would raise)
            expr = f"(_sqrt({a[0]}) if not {a[0]} < 0.0 else _NAN)"
        elif op == "isfinite":
            expr = f"({a[0]} - {a[0]} == 0.0)"
        elif op == "isnan":
            expr = f"({a[0]} != {a[0]})"
        elif op == "isinf":
            expr = f"(abs({a[0]}) == _INF)"
        elif op == "and":
            expr = f"({a[0]} and {a[1]})"
        elif op == "or":
            expr = f"({a[0]} or {a[1]})"
        elif op == "xor":
            expr = f"({a[0]} != {a[1]})"
        elif op == "not":
            expr = f"(not {a[0]})"
        elif op == "where":
            expr = f"({a[1]} if {a[0]} else {a[2]})"
        elif op == "clip":
            expr = f"_clip({a[0]}, {a[1]}, {a[2]})"
        else:
            raise AssertionError(op)
        self.lines.append(f"{v} = {expr}")

    def _field_reader(self) -> Callable[[Mapping[str, Any], str], np.ndarray]:
        n, owner = self.n, self.field_owner

        def read(fields: Mapping[str, Any], name: str) -> np.ndarray:
            try:
                a = fields[name]
            except KeyError:
                raise FeatureError(
                    f"feature {owner[name]!r} needs panel field {name!r}; the panel has {sorted(fields)}"
                ) from None
            if type(a) is not np.ndarray or a.dtype != _F64:
                a = np.asarray(a, dtype=np.float64)
            if a.shape != (n,):
                raise FeatureError(f"panel field {name!r} has shape {a.shape}; a decision row holds ({n},)")
            return a

        return read

    def _series_reader(self) -> Callable[[Mapping[str, Any], str], float]:
        owner = self.series_owner

        def read(series: Mapping[str, Any], name: str) -> float:
            try:
                v = series[name]
            except KeyError:
                raise FeatureError(
                    f"feature {owner[name]!r} needs panel series {name!r}; the panel has {sorted(series)}"
                ) from None
            if type(v) is float:
                return v
            if isinstance(v, np.ndarray):
                if v.shape != ():
                    raise FeatureError(f"panel series {name!r} must be a scalar on a decision row, got shape {v.shape}")
                return float(np.asarray(v, dtype=np.float64))
            return float(np.float64(v))

        return read


# ======================================================================================== plan
@dataclass
class StreamPlan:
    """The compiled part of a streaming feature set.

    ``row(t, fields, series)`` returns the compiled features' columns (a list of floats, +-inf
    already NaN) in feature-set order restricted to ``columns`` (their indices in the set);
    ``compiled`` / ``fallback`` name the features in each execution (``fallback`` with the
    reason).
    """

    row: Callable[[int, Mapping[str, Any], Mapping[str, Any]], list[float]] | None
    columns: list[int]
    compiled: list[str] = field(default_factory=list)
    fallback: list[tuple[str, str]] = field(default_factory=list)
    n_nodes: int = 0
    n_cells: int = 0
    n_numpy_calls: int = 0
    source: str = ""


def traceable(feature: Feature) -> bool:
    """Expression features that keep the default streaming execution are compiled."""
    return isinstance(feature, ExprFeature) and type(feature).stream is ExprFeature.stream


def compile_plan(features: Sequence[Feature], n_instruments: int) -> tuple[StreamPlan, list[int]]:
    """Trace every traceable feature into one shared program.

    Returns the plan and the indices (into ``features``) of the features it does not cover
    (explicit streams, or untraceable expression features), which keep their own streams.
    """
    g = _Graph()
    outputs: list[_Node] = []
    columns: list[int] = []
    compiled: list[str] = []
    fallback: list[tuple[str, str]] = []
    rest: list[int] = []
    field_owner: dict[str, str] = {}
    series_owner: dict[str, str] = {}
    pos = 0
    for i, f in enumerate(features):
        k = len(f.columns())
        if not traceable(f):
            rest.append(i)
        else:
            try:
                with np.errstate(all="ignore"):
                    cols = _trace(f, g, n_instruments)  # type: ignore[arg-type]
                if len(cols) != k:
                    raise Untraceable(f"{len(cols)} traced columns for {k}")
            except Exception as exc:  # anything unexpected: the generic execution decides
                fallback.append((f.name, f"{type(exc).__name__}: {exc}"))
                rest.append(i)
            else:
                outputs.extend(cols)
                columns.extend(range(pos, pos + k))
                compiled.append(f.name)
                for inp in f.inputs():
                    (field_owner if inp.kind == "field" else series_owner).setdefault(inp.name, f.name)
        pos += k
    if not outputs:
        return StreamPlan(None, [], compiled, fallback), rest
    # an input read by compute but not declared in inputs() still gets a name for its errors
    for n in g.nodes:
        if n.op == "in_f":
            field_owner.setdefault(n.param[0], "?")
        elif n.op == "in_s":
            series_owner.setdefault(n.param, "?")
    cg = _Codegen(outputs, n_instruments, field_owner, series_owner)
    fn = cg.build()
    plan = StreamPlan(fn, columns, compiled, fallback, len(g.nodes), cg.n_cells, cg.n_batched_calls, cg.source)
    return plan, rest
