"""Run an exported policy with onnxruntime at microsecond latency.

Why this shape: a decision at batch 1 is dominated by per-call overhead, not arithmetic. One
single-threaded session (intra=1, inter=1, sequential) with input/output buffers bound ONCE via
IOBinding and inputs written in place costs ~4-5 µs against ~25 µs for torch eager (see
STACK_NOTES). No ``RunOptions`` are passed to ``run_with_iobinding`` (it adds ~26 µs in 1.31).

A runner refuses, at load, a model whose ``dea.*`` metadata does not match the live feature spec
or instruments (:class:`ModelError` naming the difference): a model fed features in the wrong
order trades confidently on garbage, which is worse than not trading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort

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


@dataclass(frozen=True)
class LiveSpec:
    """What the live loop will feed a model: checked against the model's metadata at load.

    A field left ``None`` is not checked (e.g. a tool that only inspects a model).
    """

    feature_names: tuple[str, ...] | None = None
    feature_spec_hash: str | None = None
    instruments: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        feature_names: Sequence[str] | None = None,
        feature_spec_hash: str | None = None,
        instruments: Sequence[str] | None = None,
    ) -> LiveSpec:
        return cls(
            None if feature_names is None else tuple(feature_names),
            feature_spec_hash,
            None if instruments is None else tuple(instruments),
        )


def session_options() -> ort.SessionOptions:
    """Single-threaded, sequential execution: lowest and steadiest batch-1 latency."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class PolicyRunner:
    """One model, one session, preallocated bound buffers.

    Hot path: write raw features into :attr:`features` ``[1, F]`` and current exposure into
    :attr:`exposure` ``[1, N]`` (in place), call :meth:`infer`, read :attr:`target` ``[1, N]``
    (and :attr:`dispersion` when the model has one). :meth:`decide` does the copies for you.
    Recurrent models keep their hidden state between calls (``state_out`` is copied back into
    ``state_in`` after each step); :meth:`reset_state` zeroes it.
    """

    def __init__(self, session: ort.InferenceSession, metadata: PolicyMetadata, source: str, version: str | None = None) -> None:
        self.session = session
        self.metadata = metadata
        self.source = source
        #: registry version when loaded from the registry, else the exported model_version
        self.version = version or metadata.model_version
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
        for required in (INPUT_FEATURES, INPUT_EXPOSURE):
            if required not in inputs:
                raise ModelError(f"{source}: model has no input {required!r} (inputs: {sorted(inputs)})")
        if OUTPUT_TARGET not in outputs:
            raise ModelError(f"{source}: model has no output {OUTPUT_TARGET!r} (outputs: {sorted(outputs)})")
        self.n_features = len(metadata.feature_names)
        self.n_instruments = len(metadata.instruments)
        _check_width(inputs[INPUT_FEATURES], self.n_features, "dea.feature_names", source)
        _check_width(inputs[INPUT_EXPOSURE], self.n_instruments, "dea.instruments", source)
        _check_width(outputs[OUTPUT_TARGET], self.n_instruments, "dea.instruments", source)
        self.is_recurrent = INPUT_STATE in inputs
        if self.is_recurrent != (OUTPUT_STATE in outputs):
            raise ModelError(f"{source}: a recurrent model needs both {INPUT_STATE!r} and {OUTPUT_STATE!r}")
        self.features = np.zeros((1, self.n_features), dtype=np.float32)
        self.exposure = np.zeros((1, self.n_instruments), dtype=np.float32)
        self.target = np.zeros((1, self.n_instruments), dtype=np.float32)
        self.dispersion: np.ndarray | None = None
        self._binding = session.io_binding()
        self._binding.bind_cpu_input(INPUT_FEATURES, self.features)
        self._binding.bind_cpu_input(INPUT_EXPOSURE, self.exposure)
        self._bind_out(OUTPUT_TARGET, self.target)
        if OUTPUT_DISPERSION in outputs:
            self.dispersion = np.zeros((1, self.n_instruments), dtype=np.float32)
            self._bind_out(OUTPUT_DISPERSION, self.dispersion)
        self.state_size = 0
        self._state_in: np.ndarray | None = None
        self._state_out: np.ndarray | None = None
        if self.is_recurrent:
            h = inputs[INPUT_STATE].shape[1]
            if not isinstance(h, int):
                raise ModelError(f"{source}: {INPUT_STATE!r} must have a fixed width, got {h!r}")
            self.state_size = h
            self._state_in = np.zeros((1, h), dtype=np.float32)
            self._state_out = np.zeros((1, h), dtype=np.float32)
            self._binding.bind_cpu_input(INPUT_STATE, self._state_in)
            self._bind_out(OUTPUT_STATE, self._state_out)
        self._f_row = self.features[0]  # row views, made once (decide is on the hot path)
        self._e_row = self.exposure[0]
        # The public ``InferenceSession.run_with_iobinding`` wraps the C call with WebGPU graph
        # capture bookkeeping that a CPU session never uses; call the C method directly when
        # this onnxruntime exposes it (same call, same arguments: no run options).
        sess, iob = getattr(session, "_sess", None), getattr(self._binding, "_iobinding", None)
        if sess is not None and iob is not None and hasattr(sess, "run_with_iobinding"):
            self._run = partial(sess.run_with_iobinding, iob, None)
        else:
            self._run = partial(session.run_with_iobinding, self._binding)

    def _bind_out(self, name: str, buf: np.ndarray) -> None:
        self._binding.bind_output(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: str | Path, expect: LiveSpec | None = None, *, version: str | None = None) -> PolicyRunner:
        """Open an ONNX file, check its metadata against ``expect`` and smoke-test it."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return cls.from_bytes(path.read_bytes(), expect, source=str(path), version=version)

    @classmethod
    def from_bytes(
        cls, data: bytes, expect: LiveSpec | None = None, *, source: str = "<bytes>", version: str | None = None
    ) -> PolicyRunner:
        try:
            session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{source}: onnxruntime cannot load the model: {exc}") from None
        meta = PolicyMetadata.from_props(session.get_modelmeta().custom_metadata_map, source)
        if expect is not None:
            check_compatible(
                meta,
                feature_names=expect.feature_names,
                feature_spec_hash=expect.feature_spec_hash,
                instruments=expect.instruments,
                source=source,
            )
        runner = cls(session, meta, source, version)
        runner.verify()
        return runner

    @classmethod
    def load(
        cls,
        source: str | Path,
        expect: LiveSpec | None = None,
        *,
        tracking_uri: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> PolicyRunner:
        """Load from a file path or a registry URI (``models:/NAME@champion``, ``models:/NAME/3``)."""
        from serving.model_source import resolve_model

        resolved = resolve_model(str(source), tracking_uri=tracking_uri, cache_dir=cache_dir)
        runner = cls.from_path(resolved.path, expect, version=resolved.version)
        runner.source = str(source)
        return runner

    # -- inference -------------------------------------------------------------------------------
    def infer(self) -> np.ndarray:
        """Run on the current buffers; returns :attr:`target` ``[1, N]`` (a reused buffer)."""
        self._run()
        if self._state_in is not None:
            np.copyto(self._state_in, self._state_out)
        return self.target

    def decide(self, features: np.ndarray, exposure: np.ndarray) -> np.ndarray:
        """Copy ``features`` [F] and ``exposure`` [N] into the bound buffers and infer."""
        np.copyto(self._f_row, features, casting="same_kind")
        np.copyto(self._e_row, exposure, casting="same_kind")
        self._run()
        if self._state_in is not None:
            np.copyto(self._state_in, self._state_out)
        return self.target

    def reset_state(self) -> None:
        if self._state_in is not None:
            self._state_in.fill(0.0)

    def verify(self) -> None:
        """Smoke test: zero features and exposure must give finite outputs of the right shape."""
        saved_f, saved_e = self.features.copy(), self.exposure.copy()
        try:
            self.features.fill(0.0)
            self.exposure.fill(0.0)
            try:
                out = self.infer()
            except Exception as exc:
                raise ModelError(f"{self.source}: inference failed on a zero input: {exc}") from None
            if not np.isfinite(out).all():
                raise ModelError(f"{self.source}: non-finite target on a zero input: {out.tolist()}")
        finally:
            np.copyto(self.features, saved_f)
            np.copyto(self.exposure, saved_e)
            self.reset_state()
            self.target.fill(0.0)

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.metadata.instruments

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.metadata.feature_names

    def describe(self) -> dict[str, object]:
        """Identity of the loaded model, for logs and the journal."""
        m = self.metadata
        return {
            "source": self.source,
            "model_name": m.model_name,
            "version": self.version,
            "model_version": m.model_version,
            "feature_spec_hash": m.feature_spec_hash,
            "config_hash": m.config_hash,
            "recurrent": self.is_recurrent,
            "dispersion": self.dispersion is not None,
        }


def _check_width(node: object, expected: int, meta_key: str, source: str) -> None:
    shape = getattr(node, "shape", None)
    width = shape[1] if shape is not None and len(shape) == 2 else None
    if width != expected:
        raise ModelError(
            f"{source}: tensor {getattr(node, 'name', '?')!r} has shape {shape}; {meta_key} says width {expected}"
        )
