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

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

# The clip ufunc itself: ``np.clip`` is a Python-level wrapper that dispatches to it, costing
# ~3-4 µs per call against ~0.6 µs for the ufunc -- most of the runner's overhead above
# onnxruntime on a one-instrument model. Same function, same results (NaN stays NaN); numpy 1.x
# keeps it in ``numpy.core.umath``.
_umath = getattr(getattr(np, "_core", None), "umath", None) or np.core.umath
_clip = getattr(_umath, "clip", None) or np.clip

from dea.errors import ModelError
from dea.model_artifact import LAX, TrustPolicy, read_manifest, sha256_hex, verify_model_bytes
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
    instrument_terms: Mapping[str, Mapping[str, Any]] | None = None  # dea.risk.engine.contract_terms

    @classmethod
    def of(
        cls,
        feature_names: Sequence[str] | None = None,
        feature_spec_hash: str | None = None,
        instruments: Sequence[str] | None = None,
        instrument_terms: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> LiveSpec:
        return cls(
            None if feature_names is None else tuple(feature_names),
            feature_spec_hash,
            None if instruments is None else tuple(instruments),
            instrument_terms,
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
    ``state_in`` after each step); :meth:`reset_state` zeroes it. :attr:`steps` counts the steps
    the state has advanced (an audit trail: which decisions ran the model) and
    :meth:`state_digest` names the state, so a journal can record the state each decision saw.
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
        #: SHA-256 of the model bytes (set by the constructors that read them)
        self.sha256: str | None = None
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
        #: model steps that advanced the hidden state (recurrent models; reset_state does not reset it)
        self.steps = 0
        self._caps = _caps_of(metadata, source)
        self._neg_caps = None if self._caps is None else -self._caps  # negated once, not per call
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
    def from_path(
        cls,
        path: str | Path,
        expect: LiveSpec | None = None,
        *,
        version: str | None = None,
        trust: TrustPolicy = LAX,
        expected_sha256: str | None = None,
        signature: str | None = None,
    ) -> PolicyRunner:
        """Open an ONNX file, verify its bytes, check its metadata against ``expect``, smoke-test it.

        The bytes are read once, checked against the sidecar manifest (always, when there is one)
        and ``expected_sha256`` (a registry tag), then handed to onnxruntime: what is verified is
        exactly what runs. ``trust`` says whether a digest / signature is required (default: a
        recorded digest is checked, a missing one tolerated -- tools; serving passes its policy).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        data = path.read_bytes()
        sha = verify_model_bytes(data, str(path), trust, manifest=read_manifest(path),
                                 expected_sha256=expected_sha256, signature=signature)
        return cls.from_bytes(data, expect, source=str(path), version=version, sha256=sha)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        expect: LiveSpec | None = None,
        *,
        source: str = "<bytes>",
        version: str | None = None,
        sha256: str | None = None,
    ) -> PolicyRunner:
        try:
            session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{source}: onnxruntime cannot load the model: {exc}") from None
        try:
            props = session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError as exc:  # a flipped byte in a metadata string
            raise ModelError(f"{source}: model metadata is not valid UTF-8 ({exc}); the file is corrupt") from None
        meta = PolicyMetadata.from_props(props, source)
        if expect is not None:
            check_compatible(
                meta,
                feature_names=expect.feature_names,
                feature_spec_hash=expect.feature_spec_hash,
                instruments=expect.instruments,
                instrument_terms=expect.instrument_terms,
                source=source,
            )
        runner = cls(session, meta, source, version)
        runner.sha256 = sha256 if sha256 is not None else sha256_hex(data)
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
        trust: TrustPolicy = LAX,
    ) -> PolicyRunner:
        """Load from a file path or a registry URI (``models:/NAME@champion``, ``models:/NAME/3``),
        verifying the bytes under ``trust`` (the registry version's ``dea.sha256`` tag and/or the
        manifest beside the file)."""
        from serving.model_source import resolve_model

        resolved = resolve_model(str(source), tracking_uri=tracking_uri, cache_dir=cache_dir)
        runner = cls.from_path(resolved.path, expect, version=resolved.version, trust=trust,
                               expected_sha256=resolved.sha256, signature=resolved.signature)
        runner.source = str(source)
        return runner

    # -- inference -------------------------------------------------------------------------------
    def infer(self) -> np.ndarray:
        """Run on the current buffers; returns :attr:`target` ``[1, N]`` (a reused buffer)."""
        self._run()
        if self._caps is not None:
            _clip(self.target, self._neg_caps, self._caps, out=self.target)
        if self._state_in is not None:
            np.copyto(self._state_in, self._state_out)
            self.steps += 1
        return self.target

    def decide(self, features: np.ndarray, exposure: np.ndarray) -> np.ndarray:
        """Copy ``features`` [F] and ``exposure`` [N] into the bound buffers and infer."""
        np.copyto(self._f_row, features, casting="same_kind")
        np.copyto(self._e_row, exposure, casting="same_kind")
        self._run()
        if self._caps is not None:  # the model's own caps (dea.exposure_caps); NaN stays NaN
            _clip(self.target, self._neg_caps, self._caps, out=self.target)
        if self._state_in is not None:
            np.copyto(self._state_in, self._state_out)
            self.steps += 1
        return self.target

    def reset_state(self) -> None:
        if self._state_in is not None:
            self._state_in.fill(0.0)

    def state_digest(self) -> str | None:
        """SHA-256 of the hidden state the next step will see (None: not recurrent).

        Journaled with each decision of a recurrent model, so ``dea audit`` and a restarting or
        standby loop can replay the state from the journaled inputs and prove it is the same."""
        if self._state_in is None:
            return None
        return hashlib.sha256(np.ascontiguousarray(self._state_in, dtype=np.float32).tobytes()).hexdigest()

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
            "sha256": self.sha256,
            "model_version": m.model_version,
            "feature_spec_hash": m.feature_spec_hash,
            "config_hash": m.config_hash,
            "recurrent": self.is_recurrent,
            "dispersion": self.dispersion is not None,
        }


def _caps_of(meta: PolicyMetadata, source: str) -> np.ndarray | None:
    """``dea.exposure_caps`` as a per-instrument bound on |target| (None: the export set none).

    Enforced by the runner, so a model never emits more than it was trained and evaluated with;
    the risk engine's own limits apply on top."""
    if meta.exposure_caps is None:
        return None
    caps = []
    for sym in meta.instruments:
        try:
            c = meta.cap_for(sym)
        except (TypeError, ValueError):
            raise ModelError(f"{source}: dea.exposure_caps {meta.exposure_caps!r} is not a number or "
                             "{symbol: number}") from None
        caps.append(np.inf if c is None else c)
    arr = np.asarray(caps, dtype=np.float32)
    if not (arr >= 0).all():  # NaN or negative
        raise ModelError(f"{source}: dea.exposure_caps must be >= 0 per instrument, got {meta.exposure_caps!r}")
    return arr.reshape(1, -1)


def _check_width(node: object, expected: int, meta_key: str, source: str) -> None:
    shape = getattr(node, "shape", None)
    width = shape[1] if shape is not None and len(shape) == 2 else None
    if width != expected:
        raise ModelError(
            f"{source}: tensor {getattr(node, 'name', '?')!r} has shape {shape}; {meta_key} says width {expected}"
        )
