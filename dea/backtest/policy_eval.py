"""Run an exported ONNX policy over a feature matrix, step by step, as it would trade.

The policy contract (DESIGN.md, :mod:`dea.onnx_contract`): inputs ``features`` float32 [B, F]
(raw values; scaling is inside the graph) and ``exposure`` float32 [B, N] (exposure held before
the decision), optional ``state_in``; outputs ``target_exposure``, optional ``state_out`` and
``dispersion``. :func:`onnx_policy_targets` walks the clock with batch 1, feeding back the
exposure and the recurrent state exactly as training's rollout does: the exposure fed at t is the
target decided at t-1; on rows whose features are not usable (warm-up, missing under the
``mask``/``error`` policies) the model is not consulted and the exposure is held (target NaN =
hold, the live loop's ``hold`` fallback). A NaN model output is also a hold, and counted.

:class:`OnnxPolicy` is the closed-loop variant for the event-driven backtest: it feeds the
exposure the account actually holds (after risk rules, fills and drift).

onnxruntime is imported lazily (numpy-only at import).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.errors import ModelError
from dea.onnx_contract import (
    INPUT_EXPOSURE,
    INPUT_FEATURES,
    INPUT_STATE,
    OUTPUT_DISPERSION,
    OUTPUT_STATE,
    OUTPUT_TARGET,
    PolicyMetadata,
    check_compatible,
)

if TYPE_CHECKING:  # pragma: no cover
    from dea.backtest.event import DecisionContext, PolicyOutput
    from dea.features.config import MissingPolicy
    from dea.features.featureset import FeatureMatrix


@dataclass(frozen=True)
class PolicyTargets:
    """Targets [T, N] (NaN = hold), optional dispersion [T, N], and what the run saw."""

    targets: np.ndarray
    dispersion: np.ndarray | None
    metadata: PolicyMetadata | None
    usable_rows: int
    nan_outputs: int


class OnnxRunner:
    """One single-threaded onnxruntime session with the contract's inputs and outputs checked."""

    def __init__(self, model_path: str | Path, *, n_features: int | None = None, n_instruments: int | None = None,
                 require_metadata: bool = True) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: onnxruntime cannot load the model: {exc}") from None
        self.path = path
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = PolicyMetadata.from_props(props, str(path)) if (require_metadata or props) else None
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        for name in (INPUT_FEATURES, INPUT_EXPOSURE):
            if name not in inputs:
                raise ModelError(f"{path}: input {name!r} missing; inputs are {sorted(inputs)}")
        if OUTPUT_TARGET not in outputs:
            raise ModelError(f"{path}: output {OUTPUT_TARGET!r} missing; outputs are {outputs}")
        self.recurrent = INPUT_STATE in inputs
        if self.recurrent and OUTPUT_STATE not in outputs:
            raise ModelError(f"{path}: recurrent input {INPUT_STATE!r} without output {OUTPUT_STATE!r}")
        self.has_dispersion = OUTPUT_DISPERSION in outputs
        self.n_features = _static_dim(inputs[INPUT_FEATURES].shape, n_features, f"{path}: features")
        self.n_instruments = _static_dim(inputs[INPUT_EXPOSURE].shape, n_instruments, f"{path}: exposure")
        self.state_size = _static_dim(inputs[INPUT_STATE].shape, None, f"{path}: state_in") if self.recurrent else 0
        self.outputs = [OUTPUT_TARGET] + ([OUTPUT_STATE] if self.recurrent else []) + (
            [OUTPUT_DISPERSION] if self.has_dispersion else [])

    def step(self, x: np.ndarray, w: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """One decision: (target [N], next state or None, dispersion [N] or None)."""
        feeds = {INPUT_FEATURES: x.reshape(1, -1), INPUT_EXPOSURE: w.reshape(1, -1)}
        if self.recurrent:
            feeds[INPUT_STATE] = state.reshape(1, -1)  # type: ignore[union-attr]
        out = self.session.run(self.outputs, feeds)
        target = out[0].reshape(-1)
        k = 1
        new_state = None
        if self.recurrent:
            new_state = out[1].reshape(-1)
            k = 2
        disp = out[k].reshape(-1) if self.has_dispersion else None
        return target, new_state, disp


def drift(w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Exposure held after one step of returns ``r``: ``w (1 + r) / (1 + sum w r)`` (float32), the
    numpy twin of :func:`training.objective.drift` (a position's notional moves with its price,
    equity with the portfolio)."""
    w64 = np.asarray(w, dtype=np.float64)
    return (w64 * (1.0 + r) / (1.0 + float(np.dot(w64, r)))).astype(np.float32)


def _static_dim(shape: Sequence[Any], expected: int | None, what: str) -> int:
    dim = shape[-1] if shape else None
    if not isinstance(dim, int):
        if expected is None:
            raise ModelError(f"{what} has no static last dimension ({shape}); cannot size the inputs")
        return expected
    if expected is not None and dim != expected:
        raise ModelError(f"{what} expects {dim} columns, the data has {expected}")
    return dim


def prepare_features(matrix: "FeatureMatrix", missing: "MissingPolicy") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Model inputs from a batch feature matrix under the missing-data policy (as in training)."""
    from dea.features.missing import prepare_inputs

    return prepare_inputs(matrix, missing)


def onnx_policy_targets(
    model_path: str | Path,
    feature_matrix: "FeatureMatrix | np.ndarray",
    *,
    missing: "MissingPolicy | None" = None,
    instruments: Sequence[str] | None = None,
    row_mask: np.ndarray | None = None,
    exposure0: np.ndarray | None = None,
    check_spec: bool = True,
    returns: np.ndarray | None = None,
) -> PolicyTargets:
    """Targets [T, N] of the ONNX policy over every row of ``feature_matrix``.

    ``feature_matrix``: a :class:`~dea.features.featureset.FeatureMatrix` (then ``missing``, the
    config's ``features.missing``, turns it into model inputs exactly as training did, and the
    model's feature spec hash and names are checked), or prepared float32 inputs [T, F] with an
    optional ``row_mask`` [T] of usable rows. ``instruments``: checked against the model's.
    ``returns`` [T, N] (return over (t, t+1], e.g. :attr:`Market.forward_returns`): the exposure
    fed at t+1 is the target of t drifted by that return — what is actually held, as in
    training's rollout and the live loop; without it the previous target is fed as is.
    """
    names: tuple[str, ...] | None = None
    spec_hash = None
    if isinstance(feature_matrix, np.ndarray):
        X = np.ascontiguousarray(feature_matrix, dtype=np.float32)
        mask = np.ones(len(X), dtype=bool) if row_mask is None else np.asarray(row_mask, dtype=bool)
    else:
        if missing is None:
            raise ModelError("onnx_policy_targets(FeatureMatrix) needs the missing-data policy (features.missing)")
        X, mask, names = prepare_features(feature_matrix, missing)
        spec_hash = feature_matrix.spec_hash
        if row_mask is not None:
            mask = mask & np.asarray(row_mask, dtype=bool)
    if X.ndim != 2 or len(mask) != len(X):
        raise ModelError(f"features must be [T, F] with a [T] row mask; got {X.shape} and {mask.shape}")
    runner = OnnxRunner(model_path, n_features=X.shape[1],
                        n_instruments=None if instruments is None else len(instruments))
    if runner.metadata is not None and check_spec:
        check_compatible(runner.metadata, feature_names=names, feature_spec_hash=spec_hash,
                         instruments=instruments, source=str(runner.path))
    T, N = len(X), runner.n_instruments
    w = np.zeros(N, dtype=np.float32) if exposure0 is None else np.asarray(exposure0, dtype=np.float32).reshape(N)
    state = np.zeros(runner.state_size, dtype=np.float32) if runner.recurrent else None
    targets = np.full((T, N), np.nan)
    disp = np.full((T, N), np.nan) if runner.has_dispersion else None
    usable = 0
    nan_out = 0
    r_all = None if returns is None else np.asarray(returns, dtype=np.float64)
    if r_all is not None and r_all.shape != (T, N):
        raise ModelError(f"returns must be [T, N] = {(T, N)}, got {r_all.shape}")
    for t in range(T):
        ok = bool(mask[t]) and bool(np.isfinite(X[t]).all())
        if ok:
            usable += 1
            target, new_state, d = runner.step(X[t], w, state)
            if not np.isfinite(target).all() or (new_state is not None and not np.isfinite(new_state).all()):
                nan_out += 1
                ok = False
        if not ok:
            if r_all is not None and bool(mask[t]) and np.isfinite(r_all[t]).all():
                w = drift(w, r_all[t])
            continue
        targets[t] = target
        w = target.astype(np.float32)
        if r_all is not None and np.isfinite(r_all[t]).all():
            w = drift(w, r_all[t])
        if new_state is not None:
            state = new_state
        if disp is not None and d is not None:
            disp[t] = np.where(np.isfinite(d), d, 0.0)
    return PolicyTargets(targets, disp, runner.metadata, usable, nan_out)


class OnnxPolicy:
    """Closed-loop policy for :class:`~dea.backtest.event.EventBacktester`: row ``ctx.index`` of
    the prepared inputs, with the exposure the account holds now."""

    def __init__(self, model_path: str | Path, X: np.ndarray, row_mask: np.ndarray, *,
                 instruments: Sequence[str] | None = None) -> None:
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.mask = np.asarray(row_mask, dtype=bool)
        self.runner = OnnxRunner(model_path, n_features=self.X.shape[1],
                                 n_instruments=None if instruments is None else len(instruments))
        self.state = np.zeros(self.runner.state_size, dtype=np.float32) if self.runner.recurrent else None
        self.nan_outputs = 0

    def __call__(self, ctx: "DecisionContext") -> "PolicyOutput":
        from dea.backtest.event import PolicyOutput

        n = self.runner.n_instruments
        x = self.X[ctx.index]
        if not self.mask[ctx.index] or not np.isfinite(x).all():
            return PolicyOutput(np.full(n, np.nan))
        target, state, disp = self.runner.step(x, np.asarray(ctx.exposure, dtype=np.float32), self.state)
        if not np.isfinite(target).all():
            self.nan_outputs += 1
            return PolicyOutput(np.full(n, np.nan))
        if state is not None:
            self.state = state
        d = None if disp is None else np.where(np.isfinite(disp), disp, 0.0).astype(np.float64)
        return PolicyOutput(target.astype(np.float64), dispersion=d)
