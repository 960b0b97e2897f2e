"""Export a trained torch policy to a single-file ONNX model, behind a parity gate.

Why ONNX and not a pickle: the live loop must load a model with numpy + onnxruntime only, from a
file whose content cannot execute code, and must be able to tell from the file alone which
feature spec and instruments it was trained for (the ``dea.*`` metadata, see
:mod:`dea.onnx_contract`).

The parity gate runs the *written file* in onnxruntime against the torch module on the
validation inputs; a difference above ``tolerance`` (default 1e-5) raises :class:`ExportError`
and leaves no file behind, so a model that would trade differently from the one that was
evaluated can never be registered.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dea.errors import ExportError
from dea.onnx_contract import (
    INPUT_EXPOSURE,
    INPUT_FEATURES,
    INPUT_STATE,
    OUTPUT_DISPERSION,
    OUTPUT_STATE,
    OUTPUT_TARGET,
    PolicyMetadata,
)

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ExportReport:
    """What the exporter wrote and how closely onnxruntime reproduced torch."""

    path: Path
    metadata: PolicyMetadata
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    max_abs_diff: float
    n_validation: int


def export_policy(
    module: Any,
    *,
    feature_names: Sequence[str],
    feature_spec_hash: str,
    instruments: Sequence[str],
    exposure_caps: float | Mapping[str, float] | None,
    model_name: str,
    model_version: str | int,
    train_window: str | tuple[str, str],
    config_hash: str,
    data_fingerprint: str,
    example_inputs: Sequence[Any],
    validation_inputs: Sequence[Any],
    path: str | Path,
    tolerance: float = PARITY_TOLERANCE,
) -> Path:
    """Export ``module`` to ``path`` (one ONNX file) and return the path.

    ``module``: a torch ``nn.Module`` with ``forward(features [B,F], exposure [B,N]) -> target``
    (optionally ``(target, dispersion)``) or, recurrent, ``forward(features, exposure, state_in)
    -> (target, state_out)`` (optionally ``(target, state_out, dispersion)``): one step of a
    GRU cell, hidden state in and out. Scaling must be inside the module (raw features in).
    ``example_inputs`` / ``validation_inputs``: tuples of 2 (or 3 for recurrent) float arrays or
    tensors with the same trailing shapes; validation is the parity-gate set (use the real
    validation split). ``train_window``: ``"start/end"`` ISO strings or a (start, end) pair.

    Raises :class:`ExportError` if the shapes disagree with the names, the export fails, or
    torch and onnxruntime differ by more than ``tolerance`` (then no file is left at ``path``).
    """
    return export_policy_report(
        module,
        feature_names=feature_names,
        feature_spec_hash=feature_spec_hash,
        instruments=instruments,
        exposure_caps=exposure_caps,
        model_name=model_name,
        model_version=model_version,
        train_window=train_window,
        config_hash=config_hash,
        data_fingerprint=data_fingerprint,
        example_inputs=example_inputs,
        validation_inputs=validation_inputs,
        path=path,
        tolerance=tolerance,
    ).path


def export_policy_report(
    module: Any,
    *,
    feature_names: Sequence[str],
    feature_spec_hash: str,
    instruments: Sequence[str],
    exposure_caps: float | Mapping[str, float] | None,
    model_name: str,
    model_version: str | int,
    train_window: str | tuple[str, str],
    config_hash: str,
    data_fingerprint: str,
    example_inputs: Sequence[Any],
    validation_inputs: Sequence[Any],
    path: str | Path,
    tolerance: float = PARITY_TOLERANCE,
    instrument_terms: Mapping[str, Mapping[str, Any]] | None = None,
) -> ExportReport:
    """:func:`export_policy`, returning the full :class:`ExportReport` (parity figure included).
    ``instrument_terms``: the contracts the model was trained for (``dea.instrument_terms``), so a
    runner refuses it on other contracts."""
    import torch

    path = Path(path)
    if isinstance(train_window, (tuple, list)):
        train_window = f"{train_window[0]}/{train_window[1]}"
    meta = PolicyMetadata(
        feature_names=tuple(str(n) for n in feature_names),
        feature_spec_hash=str(feature_spec_hash),
        instruments=tuple(str(s) for s in instruments),
        exposure_caps=dict(exposure_caps) if isinstance(exposure_caps, Mapping) else exposure_caps,
        model_name=str(model_name),
        model_version=str(model_version),
        train_window=str(train_window),
        config_hash=str(config_hash),
        data_fingerprint=str(data_fingerprint),
        instrument_terms=None if instrument_terms is None else {str(k): dict(v) for k, v in instrument_terms.items()},
    )
    example = _as_tensors(example_inputs, "example_inputs")
    validation = _as_tensors(validation_inputs, "validation_inputs")
    _check_inputs(example, meta, "example_inputs")
    _check_inputs(validation, meta, "validation_inputs")
    if len(validation) != len(example):
        raise ExportError(
            f"validation_inputs has {len(validation)} tensors but example_inputs has {len(example)}"
        )

    module.eval()
    with torch.inference_mode():
        reference = _as_tuple(module(*example))
    input_names = [INPUT_FEATURES, INPUT_EXPOSURE] + ([INPUT_STATE] if len(example) == 3 else [])
    output_names = _output_names(reference, recurrent=len(example) == 3, meta=meta)

    model_proto = _export_proto(module, example, input_names, output_names)
    import onnx

    onnx.helper.set_model_props(model_proto, meta.to_props())
    try:
        onnx.checker.check_model(model_proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported graph for {model_name!r} fails the ONNX checker: {exc}") from None

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model_proto.SerializeToString())
        max_diff = parity_gate(module, tmp, validation, input_names, output_names, tolerance)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_model_manifest(path, meta)
    log.info(
        "exported %s (run %s) to %s (parity max |diff| %.3g on %d rows)",
        model_name, model_version, path, max_diff, int(validation[0].shape[0]),
    )
    return ExportReport(
        path=path,
        metadata=meta,
        input_names=tuple(input_names),
        output_names=tuple(output_names),
        max_abs_diff=max_diff,
        n_validation=int(validation[0].shape[0]),
    )


def write_model_manifest(path: str | Path, meta: PolicyMetadata) -> Any:
    """(Re)write ``<path>.manifest.json``: the SHA-256 of the file's final bytes, the git commit,
    and an Ed25519 signature when ``DEA_MODEL_SIGNING_KEY`` / ``DEA_MODEL_SIGNING_KEY_FILE`` is
    set. Call after every write to the file (the exporter does; so does metadata stamping)."""
    from dea.model_artifact import git_commit, signing_key_from_env, write_manifest

    key = signing_key_from_env()
    manifest = write_manifest(path, model_name=meta.model_name, model_version=meta.model_version,
                              git_commit=git_commit(Path(__file__).parent), signing_key=key)
    # DEBUG: a file is stamped again after each metadata write; its final digest is in the
    # registration line and dea train's summary, not one line per intermediate state
    log.debug("model %s: sha256 %s%s", path, manifest.sha256, " (signed)" if key is not None else "")
    return manifest


def parity_gate(
    module: Any,
    onnx_path: Path,
    inputs: Sequence[Any],
    input_names: Sequence[str],
    output_names: Sequence[str],
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Max |torch - onnxruntime| over every output on ``inputs``; raise if above ``tolerance``."""
    import onnxruntime as ort
    import torch

    tensors = _as_tensors(inputs, "validation_inputs")
    with torch.inference_mode():
        expected = [t.detach().cpu().numpy() for t in _as_tuple(module(*tensors))]
    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run(list(output_names), {n: t.numpy() for n, t in zip(input_names, tensors, strict=True)})
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot run the exported model: {exc}") from None
    worst = 0.0
    for name, e, g in zip(output_names, expected, got, strict=True):
        if e.shape != g.shape:
            raise ExportError(f"parity gate: output {name!r} shape torch {e.shape} vs onnxruntime {g.shape}")
        if not (np.isfinite(e).all() and np.isfinite(g).all()):
            raise ExportError(
                f"parity gate: output {name!r} has non-finite values on the validation inputs "
                f"(torch {int((~np.isfinite(e)).sum())}, onnxruntime {int((~np.isfinite(g)).sum())})"
            )
        diff = float(np.max(np.abs(e.astype(np.float64) - g.astype(np.float64)))) if e.size else 0.0
        if diff > tolerance:
            row = int(np.unravel_index(np.argmax(np.abs(e - g)), e.shape)[0])
            raise ExportError(
                f"parity gate failed: output {name!r} differs by {diff:.3g} > {tolerance:g} between "
                f"torch and onnxruntime (worst at validation row {row}); the model was not exported"
            )
        worst = max(worst, diff)
    return worst


def _export_proto(module: Any, example: tuple[Any, ...], input_names: list[str], output_names: list[str]) -> Any:
    import torch

    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example,
                None,
                dynamo=True,
                external_data=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as exc:  # torch.export raises many types; name the cause
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from None
    proto = program.model_proto
    got_in = [i.name for i in proto.graph.input]
    got_out = [o.name for o in proto.graph.output]
    if got_in != input_names or got_out != output_names:
        raise ExportError(f"exported graph has inputs {got_in} / outputs {got_out}; expected {input_names} / {output_names}")
    return proto


def _as_tensors(values: Sequence[Any], what: str) -> tuple[Any, ...]:
    import torch

    if not isinstance(values, (tuple, list)) or len(values) not in (2, 3):
        raise ExportError(f"{what} must be a tuple (features, exposure[, state_in]), got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        t = v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
        if t.ndim != 2:
            raise ExportError(f"{what}[{i}] must be 2-D [batch, width], got shape {tuple(t.shape)}")
        out.append(t.detach().to(torch.float32).cpu())
    if len({int(t.shape[0]) for t in out}) != 1:
        raise ExportError(f"{what}: batch sizes differ {[tuple(t.shape) for t in out]}")
    return tuple(out)


def _check_inputs(tensors: tuple[Any, ...], meta: PolicyMetadata, what: str) -> None:
    f, n = int(tensors[0].shape[1]), int(tensors[1].shape[1])
    if f != len(meta.feature_names):
        raise ExportError(f"{what}: features have width {f} but {len(meta.feature_names)} feature names were given")
    if n != len(meta.instruments):
        raise ExportError(f"{what}: exposure has width {n} but {len(meta.instruments)} instruments were given")


def _as_tuple(out: Any) -> tuple[Any, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _output_names(reference: tuple[Any, ...], *, recurrent: bool, meta: PolicyMetadata) -> list[str]:
    n = len(meta.instruments)
    names = [OUTPUT_TARGET] + ([OUTPUT_STATE] if recurrent else [])
    if len(reference) == len(names) + 1:
        names.append(OUTPUT_DISPERSION)
    if len(reference) != len(names):
        raise ExportError(
            f"module returns {len(reference)} outputs; expected {names} (+ optional {OUTPUT_DISPERSION!r})"
        )
    for name, t in zip(names, reference, strict=True):
        if name != OUTPUT_STATE and (t.ndim != 2 or int(t.shape[1]) != n):
            raise ExportError(f"output {name!r} has shape {tuple(t.shape)}; expected [batch, {n}]")
    return names


# -- export bundle: what a training run keeps so that ``dea export --run`` can redo the export --

BUNDLE_DIR = "export_bundle"
BUNDLE_META = "export_meta.json"
BUNDLE_VALIDATION = "validation_inputs.npz"


def trained_policy_inputs(policy: Any, validation_inputs: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Complete validation inputs for a policy: recurrent policies get realistic states.

    ``validation_inputs`` is ``(features, exposure)`` (time-ordered rows) or already includes
    ``state_in``. For a recurrent policy without states, the policy is stepped through the rows
    in order and each row gets the state it would have live, so the parity gate checks the
    states the model will actually see rather than zeros.
    """
    arrays = [np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float32) for v in validation_inputs]
    if not getattr(policy, "is_recurrent", False) or len(arrays) == 3:
        return tuple(arrays)
    import torch

    f, e = arrays
    states = np.zeros((f.shape[0], int(policy.state_size)), dtype=np.float32)
    state = policy.initial_state(1)
    policy.eval()
    with torch.inference_mode():
        for i in range(f.shape[0]):
            states[i] = state[0].numpy()
            _, state = policy(torch.from_numpy(f[i : i + 1]), torch.from_numpy(e[i : i + 1]), state)
    return (f, e, states)


def export_trained_policy(
    policy: Any,
    *,
    feature_spec_hash: str,
    train_window: str | tuple[str, str],
    config_hash: str,
    data_fingerprint: str,
    validation_inputs: Sequence[Any],
    path: str | Path,
    model_name: str,
    model_version: str | int,
) -> ExportReport:
    """:func:`export_policy_report` for a :class:`training.policies.Policy`: feature names,
    instruments and caps come from the policy's own attributes (so they cannot disagree)."""
    inputs = trained_policy_inputs(policy, validation_inputs)
    n_example = min(2, int(inputs[0].shape[0]))
    if n_example == 0:
        raise ExportError("validation_inputs is empty: the parity gate needs validation rows")
    return export_policy_report(
        policy,
        feature_names=policy.feature_names,
        feature_spec_hash=feature_spec_hash,
        instruments=policy.instruments,
        exposure_caps=policy.exposure_caps,
        model_name=model_name,
        model_version=model_version,
        train_window=train_window,
        config_hash=config_hash,
        data_fingerprint=data_fingerprint,
        example_inputs=tuple(a[:n_example] for a in inputs),
        validation_inputs=inputs,
        path=path,
        instrument_terms=getattr(policy, "spec", None) and policy.spec.extra.get("instrument_terms"),
    )


def save_export_bundle(
    folder: str | Path,
    policy: Any,
    *,
    feature_spec_hash: str,
    train_window: str | tuple[str, str],
    config_hash: str,
    data_fingerprint: str,
    validation_inputs: Sequence[Any],
    model_name: str,
) -> Path:
    """Write what a later re-export needs: the policy (JSON spec + tensor state dict, no pickle),
    the metadata, and the validation inputs (``.npz`` read back with ``allow_pickle=False``)."""
    import json

    from training.policies import save_policy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_policy(policy, folder)
    if isinstance(train_window, (tuple, list)):
        train_window = f"{train_window[0]}/{train_window[1]}"
    meta = {
        "feature_spec_hash": str(feature_spec_hash),
        "train_window": str(train_window),
        "config_hash": str(config_hash),
        "data_fingerprint": str(data_fingerprint),
        "model_name": str(model_name),
    }
    (folder / BUNDLE_META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    arrays = trained_policy_inputs(policy, validation_inputs)
    names = ("features", "exposure", "state_in")[: len(arrays)]
    np.savez(folder / BUNDLE_VALIDATION, **dict(zip(names, arrays, strict=True)))
    return folder


def export_from_bundle(folder: str | Path, path: str | Path, *, model_version: str | int) -> ExportReport:
    """Rebuild the policy saved by :func:`save_export_bundle` and export it (parity-gated)."""
    import json

    from training.policies import load_policy

    folder = Path(folder)
    meta_path, val_path = folder / BUNDLE_META, folder / BUNDLE_VALIDATION
    for p in (meta_path, val_path):
        if not p.is_file():
            raise ExportError(f"export bundle {folder}: missing {p.name} (was the run trained by `dea train`?)")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(val_path, allow_pickle=False) as npz:
            inputs = tuple(npz[k] for k in ("features", "exposure", "state_in") if k in npz.files)
    except (ValueError, OSError, KeyError) as exc:
        raise ExportError(f"export bundle {folder}: unreadable: {exc}") from None
    policy = load_policy(folder)
    return export_trained_policy(
        policy,
        feature_spec_hash=meta["feature_spec_hash"],
        train_window=meta["train_window"],
        config_hash=meta["config_hash"],
        data_fingerprint=meta["data_fingerprint"],
        validation_inputs=inputs,
        path=path,
        model_name=meta["model_name"],
        model_version=model_version,
    )
