"""Log exported policies to MLflow and manage the ``challenger`` / ``champion`` aliases.

Why aliases: the live loop loads ``models:/NAME@champion`` and never a version number, so
promoting a model is one atomic alias move that a running loop picks up by hot swap, and a
freshly trained model (``challenger``) can never trade by accident.

The ONNX file is logged as-is (``save_as_external_data=False``: one file), with an explicit
tensor signature and input example; its ``dea.*`` metadata are copied onto the registered
version as tags so the registry UI shows which feature spec a version needs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dea.errors import ModelError
from dea.model_artifact import TAG_GIT_COMMIT, TAG_SHA256, TAG_SIGNATURE
from dea.onnx_contract import PolicyMetadata

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
ARTIFACT_NAME = "policy"
#: what a serving host needs to run the logged model (the pyfunc flavour's requirements)
SERVING_REQUIREMENTS = ["onnx>=1.16", "onnxruntime>=1.18", "numpy>=2.0"]


@dataclass(frozen=True)
class RegisteredPolicy:
    """One registered model version."""

    name: str
    version: str
    model_uri: str  # models:/NAME/VERSION
    logged_model_uri: str  # models:/m-<id>
    run_id: str | None
    alias: str | None


@contextlib.contextmanager
def tracking(uri: str | None) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for the duration of the block, then restore it exactly
(tracking and registry URIs, the active experiment and their environment variables).

    ``mlflow.set_registry_uri`` also exports ``MLFLOW_REGISTRY_URI`` (and the tracking setter its
    variable), so restoring with the setters would leave an *explicit* registry URI behind and a
    later client built with another tracking URI would silently read the wrong registry. The
    previous module state and environment are therefore restored as they were.
    """
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils

    if uri is None:
        yield
        return
    previous = mlflow.get_tracking_uri()
    previous_explicit_registry = registry_utils._registry_uri
    # an experiment made active inside the block (set_experiment) belongs to this store: left
    # active, a later start_run(run_id=...) against another store refuses the run as foreign (and
    # the other way round: one made active before the block is not this store's)
    previous_experiment = fluent._active_experiment_id
    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
    previous_env = {k: os.environ.get(k) for k in env_keys}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # an experiment made active before the block names another store's experiment: not this one's
    fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        registry_utils._registry_uri = previous_explicit_registry
        fluent._active_experiment_id = previous_experiment
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_metadata(onnx_path: str | Path) -> PolicyMetadata:
    """The ``dea.*`` metadata of an exported file (via onnxruntime, no graph load into torch)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{onnx_path}: cannot open as ONNX: {exc}") from None
    return PolicyMetadata.from_props(sess.get_modelmeta().custom_metadata_map, str(onnx_path))


def artifact_tags(onnx_path: Path) -> dict[str, str]:
    """Registry tags naming the artefact: ``dea.sha256`` of its bytes, ``dea.git_commit`` and, when
    the manifest carries one, ``dea.signature``. The manifest beside the file (written at export)
    must match the bytes: a file modified after export is never registered."""
    from dea.model_artifact import LAX, git_commit, read_manifest, verify_model_bytes

    manifest = read_manifest(onnx_path)
    sha = verify_model_bytes(onnx_path.read_bytes(), str(onnx_path), LAX, manifest=manifest)
    commit = (manifest.git_commit if manifest is not None else None) or git_commit(Path(__file__).parent)
    tags = {TAG_SHA256: sha, TAG_GIT_COMMIT: commit or "unknown"}
    if manifest is not None and manifest.signature:
        tags[TAG_SIGNATURE] = manifest.signature
    return tags


def _signature_and_example(onnx_path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    import onnxruntime as ort
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def spec(node: Any) -> Any:
        width = node.shape[1]
        return TensorSpec(np.dtype(np.float32), (-1, int(width)), node.name)

    signature = ModelSignature(
        inputs=Schema([spec(i) for i in sess.get_inputs()]),
        outputs=Schema([spec(o) for o in sess.get_outputs()]),
    )
    example = {i.name: np.zeros((1, int(i.shape[1])), dtype=np.float32) for i in sess.get_inputs()}
    return signature, example


#: what ``mlflow.register_model`` prints itself (not through logging): DEA logs one line instead
_MLFLOW_REGISTRATION_NOTES = re.compile(
    r"^(Successfully registered model '.*'\.|Registered model '.*' already exists\. Creating a new version of this model\.\.\."
    r"|Created version '\d+' of model '.*'\.)$"
)


class _DropLines(io.TextIOBase):
    """A text stream that passes every line on to ``target`` except those ``pattern`` matches."""

    def __init__(self, target: Any, pattern: re.Pattern[str]) -> None:
        self.target, self.pattern, self._partial = target, pattern, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if not self.pattern.match(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._partial:
            if not self.pattern.match(self._partial):
                self.target.write(self._partial)
            self._partial = ""
        self.target.flush()


@contextlib.contextmanager
def _without_mlflow_registration_notes() -> Iterator[None]:
    """Drop the two lines ``mlflow.register_model`` prints to stderr ("Successfully registered
    model ...", "Created version ...": a second and third wording of DEA's own line). Everything
    else written meanwhile, MLflow's warnings included, goes through unchanged; the prints are
    matched by their text because MLflow offers no switch for them short of silencing its whole
    logging stream (warnings too)."""
    import sys

    filtered = _DropLines(sys.stderr, _MLFLOW_REGISTRATION_NOTES)
    try:
        with contextlib.redirect_stderr(filtered):
            yield
    finally:
        filtered.flush()


def register_policy(
    onnx_path: str | Path,
    *,
    registered_model: str,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_id: str | None = None,
    alias: str | None = CHALLENGER,
) -> RegisteredPolicy:
    """Log ``onnx_path`` to MLflow, register it under ``registered_model`` and set ``alias``.

    Logged into run ``run_id`` when given (e.g. the training run), else into the active run,
    else into a new run of ``experiment``. Returns the new version; raises :class:`ModelError`
    if the file is not a DEA policy export (no ``dea.*`` metadata).
    """
    import mlflow
    import mlflow.onnx
    import onnx

    onnx_path = Path(onnx_path)
    meta = read_metadata(onnx_path)
    signature, example = _signature_and_example(onnx_path)
    identity = artifact_tags(onnx_path)
    model = onnx.load(str(onnx_path))
    if model.SerializeToString() != onnx_path.read_bytes():  # MLflow stores the re-serialised proto
        raise ModelError(f"{onnx_path}: the ONNX bytes do not survive a protobuf round trip; the registered "
                         "artefact would not match the recorded SHA-256")
    with tracking(tracking_uri):
        if experiment is not None and run_id is None and mlflow.active_run() is None:
            mlflow.set_experiment(experiment)
        run_cm = (
            mlflow.start_run(run_id=run_id)
            if run_id is not None or mlflow.active_run() is None
            else contextlib.nullcontext(mlflow.active_run())
        )
        with run_cm as run:
            info = mlflow.onnx.log_model(
                model,
                name=ARTIFACT_NAME,
                signature=signature,
                input_example=example,
                pip_requirements=SERVING_REQUIREMENTS,
                save_as_external_data=False,
                onnx_execution_providers=["CPUExecutionProvider"],
                metadata={"dea": meta.to_props()},
            )
            active_run_id = run.info.run_id
        with _without_mlflow_registration_notes():
            version = mlflow.register_model(
                info.model_uri,
                registered_model,
                tags={**{k: v[:5000] for k, v in meta.to_props().items()}, **identity},
            )
        client = mlflow.MlflowClient()
        if alias:
            client.set_registered_model_alias(registered_model, alias, str(version.version))
    log.info("registered model %s version %s%s (sha256 %s, run %s)", registered_model, version.version,
             f" @{alias}" if alias else "", identity[TAG_SHA256][:12], active_run_id)
    return RegisteredPolicy(
        name=registered_model,
        version=str(version.version),
        model_uri=f"models:/{registered_model}/{version.version}",
        logged_model_uri=info.model_uri,
        run_id=active_run_id,
        alias=alias,
    )


def promote(name: str, version: str | int, *, tracking_uri: str | None = None, alias: str = CHAMPION) -> RegisteredPolicy:
    """Move ``alias`` (default ``champion``) of model ``name`` to ``version``.

    Raises :class:`ModelError` naming the model/version when it does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with tracking(tracking_uri):
        client = mlflow.MlflowClient()
        try:
            mv = client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise ModelError(f"cannot promote {name!r} version {version}: {exc.message}") from None
        client.set_registered_model_alias(name, alias, str(mv.version))
    log.info("promoted %s version %s to @%s", name, mv.version, alias)
    return RegisteredPolicy(
        name=name,
        version=str(mv.version),
        model_uri=f"models:/{name}/{mv.version}",
        logged_model_uri=str(mv.source),
        run_id=mv.run_id,
        alias=alias,
    )


def alias_version(name: str, alias: str, *, tracking_uri: str | None = None) -> str:
    """The version number an alias points at (raises :class:`ModelError` if unset)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tracking(tracking_uri):
        try:
            return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            raise ModelError(f"model {name!r} has no alias @{alias}: {exc.message}") from None


@dataclass(frozen=True)
class ExportedModel:
    """An exported ONNX file and, when tracking is on, its registered version."""

    report: Any  # training.export.ExportReport
    registered: RegisteredPolicy | None

    @property
    def path(self) -> Path:
        return self.report.path


def export_and_register(
    policy: Any,
    *,
    feature_spec_hash: str,
    train_window: str | tuple[str, str],
    config_hash: str,
    data_fingerprint: str,
    validation_inputs: Any,
    out_dir: str | Path,
    registered_model: str,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_id: str | None = None,
    register: bool = True,
    alias: str | None = CHALLENGER,
) -> ExportedModel:
    """What ``dea train`` calls at the end: export (parity-gated), keep a re-export bundle in
    the run, log + register the ONNX model with alias ``challenger``.

    ``policy``: a :class:`training.policies.Policy` (feature names, instruments and caps are read
    from it). ``validation_inputs``: ``(features [B,F], exposure [B,N])`` time-ordered validation
    rows (recurrent states are derived). ``run_id``: the training run (default: the active run,
    else a new run in ``experiment``). With ``register=False`` only the file is written.
    The file's ``dea.model_version`` is ``run-<run_id>``; the registry version number is
    assigned at registration (returned in ``.registered.version``).
    """
    import tempfile

    from training.export import BUNDLE_DIR, export_trained_policy, save_export_bundle

    out_dir = Path(out_dir)
    if register:
        import mlflow

        with tracking(tracking_uri):
            if run_id is None and mlflow.active_run() is not None:
                run_id = mlflow.active_run().info.run_id
            elif run_id is None:  # open the run now so the file can name it
                if experiment is not None:
                    mlflow.set_experiment(experiment)
                with mlflow.start_run() as run:
                    run_id = run.info.run_id
    version_label = f"run-{run_id}" if run_id else "local"
    report = export_trained_policy(
        policy,
        feature_spec_hash=feature_spec_hash,
        train_window=train_window,
        config_hash=config_hash,
        data_fingerprint=data_fingerprint,
        validation_inputs=validation_inputs,
        path=out_dir / "policy.onnx",
        model_name=registered_model,
        model_version=version_label,
    )
    if not register:
        return ExportedModel(report, None)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="dea-bundle-") as tmp:
        bundle = save_export_bundle(
            Path(tmp) / BUNDLE_DIR,
            policy,
            feature_spec_hash=feature_spec_hash,
            train_window=train_window,
            config_hash=config_hash,
            data_fingerprint=data_fingerprint,
            validation_inputs=validation_inputs,
            model_name=registered_model,
        )
        with tracking(tracking_uri):
            client = mlflow.MlflowClient()
            client.log_artifacts(run_id, str(bundle), BUNDLE_DIR)
    registered = register_policy(
        report.path, registered_model=registered_model, tracking_uri=tracking_uri, run_id=run_id, alias=alias
    )
    return ExportedModel(report, registered)


def export_run(
    run_id: str,
    *,
    registered_model: str | None = None,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    alias: str | None = CHALLENGER,
) -> ExportedModel:
    """``dea export --run RUN_ID``: re-export an earlier training run's policy and register it.

    Uses the run's ``export_bundle`` artifact when it has one (written by
    :func:`export_and_register`). Otherwise it rebuilds the inputs from what ``dea train`` logs:
    ``config/config.resolved.yaml`` and ``model/policy`` (the policy's JSON spec and tensors);
    the data are prepared again from the config (:func:`training.prepare.prepare_data`) and the
    parity gate runs on the last usable rows. The model is registered under ``registered_model``
    (default: the config's ``tracking.registered_model``, or the bundle's name).
    """
    import json
    import tempfile

    import mlflow

    from training.export import BUNDLE_DIR, BUNDLE_META, export_from_bundle

    tmp = Path(tempfile.mkdtemp(prefix="dea-export-run-"))
    out = Path(out_dir) if out_dir is not None else tmp / "onnx"
    with tracking(tracking_uri):
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BUNDLE_DIR, dst_path=str(tmp / "b"))
            )
            bundle_error = None
        except Exception as exc:  # no bundle: fall back to the training run's own artifacts
            local, bundle_error = None, exc
    if local is not None and (local / BUNDLE_META).is_file():
        name = registered_model or json.loads((local / BUNDLE_META).read_text())["model_name"]
        report = export_from_bundle(local, out / "policy.onnx", model_version=f"run-{run_id}")
    else:
        name, report = _export_from_training_run(run_id, tracking_uri, out / "policy.onnx", tmp, registered_model, bundle_error)
    registered = register_policy(report.path, registered_model=name, tracking_uri=tracking_uri, run_id=run_id, alias=alias)
    return ExportedModel(report, registered)


def _export_from_training_run(
    run_id: str, tracking_uri: str | None, path: Path, tmp: Path, registered_model: str | None, bundle_error: Exception | None
) -> tuple[str, Any]:
    import yaml

    import mlflow
    from dea.config.experiment import config_hash, validate_config
    from dea.timeutil import iso
    from training.export import export_trained_policy
    from training.policies import load_policy

    with tracking(tracking_uri):
        try:
            cfg_file = Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="config/config.resolved.yaml", dst_path=str(tmp / "cfg")))
            policy_dir = Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="model/policy", dst_path=str(tmp / "policy")))
        except Exception as exc:
            raise ModelError(
                f"run {run_id}: cannot read its 'export_bundle' artifact ({bundle_error}) nor its "
                f"'config/config.resolved.yaml' + 'model/policy' artifacts (was it trained by `dea train`?): {exc}"
            ) from None
        train_window = _registered_train_window(run_id)
        run_tags = mlflow.MlflowClient().get_run(run_id).data.tags
    # relative data paths resolve against the training config's folder when the run recorded it
    base = Path(run_tags.get("dea.config_dir", "") or Path.cwd())
    cfg = validate_config(yaml.safe_load(cfg_file.read_text()), base, str(cfg_file))
    from training.prepare import prepare_data

    prepared = prepare_data(cfg)
    policy = load_policy(policy_dir)
    usable = np.flatnonzero(prepared.data.usable)
    if len(usable) == 0:
        raise ModelError(f"run {run_id}: the re-prepared data has no usable row for the parity gate")
    rows = usable[-2048:]
    features = prepared.data.features[rows]
    exposure = np.zeros((len(rows), len(policy.instruments)), dtype=np.float32)
    clock = prepared.market.clock
    window = train_window or (iso(int(clock[usable[0]])), iso(int(clock[usable[-1]])))
    name = registered_model or cfg.tracking.registered_model
    report = export_trained_policy(
        policy,
        feature_spec_hash=prepared.feature_spec_hash,
        train_window=window,
        config_hash=config_hash(cfg),
        data_fingerprint=prepared.data_fingerprint,
        validation_inputs=(features, exposure),
        path=path,
        model_name=name,
        model_version=f"run-{run_id}",
    )
    return name, report


def _registered_train_window(run_id: str) -> str | None:
    """The training window stamped on a version this run registered before (None if none)."""
    import mlflow

    try:
        for mv in mlflow.MlflowClient().search_model_versions(f"run_id='{run_id}'"):
            window = (mv.tags or {}).get("dea.train_window")
            if window:
                return str(window)
    except Exception:  # noqa: BLE001 - the window is informative; fall back to the data's span
        return None
    return None


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ExportedModel",
    "RegisteredPolicy",
    "export_and_register",
    "export_run",
    "alias_version",
    "promote",
    "read_metadata",
    "register_policy",
]
