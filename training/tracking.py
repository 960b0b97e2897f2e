"""MLflow tracking for ``dea train``: one parent run per invocation, one child run per fold.

Why a thin client wrapper and not the fluent ``mlflow.start_run`` API: the fluent API keeps the
active run in process-global state; a tuner running trials in threads, or a test training twice,
must not have runs leak into each other. :class:`Tracker` talks to one ``MlflowClient`` with
explicit run ids and batches everything through ``log_batch`` (STACK_NOTES: one call per batch
instead of one round trip per value, which matters against a server).

What the fluent API would add is added here the way MLflow itself does it: every run starts with
``mlflow.tracking.context.registry.resolve_tags`` (``mlflow.user``, ``mlflow.source.name`` and
``.type``, the git commit when the entry point is in a repository), then DEA's own source
(``dea train``), the commit of the checkout DEA runs from (``mlflow.source.git.commit``) and a
description (``mlflow.note.content``, the run page's text). Inputs are logged as MLflow
datasets (:meth:`Tracker.log_datasets`) whose digest is DEA's fingerprint, so the run page names
the data it was trained on.

Default store: ``sqlite:///<cwd>/mlflow.db`` (embedded, no server); ``mlflow ui
--backend-store-uri sqlite:///mlflow.db`` opens it.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from dea.errors import ConfigError

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_TAGS_PER_BATCH = 100
MAX_PARAM_LEN = 6000
PACKAGES = (
    "dea", "torch", "lightning", "numpy", "pandas", "scikit-learn", "skfolio", "mlflow", "onnx",
    "onnxruntime", "pyarrow", "numba", "scipy",
)


def default_tracking_uri(cwd: Path | None = None) -> str:
    """``sqlite:///<cwd>/mlflow.db``: the embedded store used when no URI is configured."""
    return f"sqlite:///{(cwd or Path.cwd()).resolve() / 'mlflow.db'}"


def ui_hint(uri: str) -> str:
    """The command that opens the MLflow UI on ``uri``."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested config dicts/lists into ``a.b.0.c -> str(value)`` (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                out.update(flatten(v, f"{name}.{i}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            out[name] = text[:MAX_PARAM_LEN]
    return out


#: the handful of settings a reader compares runs by (the whole config is the run's
#: config/config.resolved.yaml artifact); the tuned keys of ``tuning.space`` are added
KEY_PARAMS = (
    "model.kind", "model.hidden", "model.ensemble", "model.base.kind", "model.base.target_vol",
    "objective.loss", "objective.turnover_penalty", "training.lr", "training.weight_decay", "training.epochs",
    "training.batch_size", "training.seq_len", "training.seed", "training.splits.scheme", "training.splits.n_folds",
    "data.clock.step", "costs.fee_side", "costs.half_spread_bps", "costs.impact.model", "risk.max_gross",
)


def key_params(cfg: Any, n_features: int | None = None) -> dict[str, str]:
    """The run's MLflow params: :data:`KEY_PARAMS`, the tuned keys, the instruments and the
    number of features — not hundreds of flattened config leaves."""
    flat = flatten(cfg.to_dict())
    keys = list(KEY_PARAMS) + [k for k in cfg.tuning.space if k not in KEY_PARAMS]
    out = {k: flat[k] for k in keys if k in flat}
    out["instruments"] = ",".join(i.symbol for i in cfg.data.instruments)
    if n_features is not None:
        out["n_features"] = str(n_features)
    return out


def git_commit(repo: Path | None = None) -> str:
    """HEAD commit of the repository holding DEA (``+dirty`` if the tree has changes)."""
    where = repo or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


DIGEST_LEN = 36  # MLflow's dataset digest column


@dataclass(frozen=True)
class InputData:
    """One input of a run, as MLflow's Datasets panel shows it."""

    name: str
    fingerprint: str  # DEA's content fingerprint (SHA-256 hex)
    kind: str  # bars, funding, exogenous, panel, ...
    uri: str | None = None  # where it was read from (None: generated, e.g. the simulator)
    rows: int | None = None


def run_context_tags(
    tags: Mapping[str, Any] | None = None,
    *,
    parent_id: str | None = None,
    description: str | None = None,
    source: str | None = None,
) -> dict[str, str]:
    """The tags ``mlflow.start_run`` would set (MLflow's context registry: user, source, git)
    with DEA's source and commit on top, then the caller's tags."""
    from mlflow.tracking.context.registry import resolve_tags

    out = dict(resolve_tags({}))
    commit = git_commit()
    if commit != "unknown":
        out["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
        out["dea.git_dirty"] = str(commit.endswith("+dirty")).lower()
    if source:
        out["mlflow.source.name"] = source
        out["mlflow.source.type"] = "LOCAL"
    if parent_id:
        out["mlflow.parentRunId"] = parent_id
    if description:
        out["mlflow.note.content"] = description
    out.update({k: str(v)[:MAX_PARAM_LEN] for k, v in (tags or {}).items()})
    return out


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k] = f
    return out


class Tracker:
    """Explicit-run-id MLflow logging; every method is a no-op when ``enabled`` is False."""

    def __init__(self, uri: str | None, experiment: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.uri = uri or default_tracking_uri()
        self.experiment = experiment
        self._client = None
        self._experiment_id: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def _experiment(self) -> str:
        if self._experiment_id is None:
            try:
                exp = self.client.get_experiment_by_name(self.experiment)
                self._experiment_id = (
                    exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
                )
            except Exception as exc:  # MLflow raises MlflowException and driver errors
                raise ConfigError(f"MLflow tracking store {self.uri!r} is not usable: {exc}") from None
        return self._experiment_id

    def start_run(
        self,
        name: str,
        *,
        parent_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        source: str | None = None,
    ) -> str:
        """Create a run with MLflow's context tags (user, source, git commit) plus ``tags``;
        ``description`` becomes the run page's note, ``source`` (e.g. ``dea train``) its source."""
        if not self.enabled:
            return ""
        run = self.client.create_run(
            self._experiment(), run_name=name, tags=run_context_tags(tags, parent_id=parent_id, description=description,
                                                                     source=source)
        )
        return run.info.run_id

    def set_description(self, run_id: str, text: str) -> None:
        """The run page's description (``mlflow.note.content``, Markdown)."""
        self.set_tags(run_id, {"mlflow.note.content": text})

    def log_datasets(self, run_id: str, datasets: Iterable[InputData], context: str = "training") -> None:
        """Log inputs as MLflow datasets (the run page's Datasets panel): name, digest (DEA's
        fingerprint, shortened to MLflow's 36-character column; the full one is a tag), source."""
        if not (self.enabled and run_id):
            return
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.sources import CodeDatasetSource, LocalArtifactDatasetSource
        from mlflow.entities import DatasetInput, InputTag

        inputs = []
        for d in datasets:
            src = (LocalArtifactDatasetSource(d.uri) if d.uri
                   else CodeDatasetSource({"mlflow.source.name": f"dea {d.kind}"}))
            ds = MetaDataset(source=src, name=d.name, digest=d.fingerprint[:DIGEST_LEN])
            tags = [InputTag("mlflow.data.context", context), InputTag("dea.fingerprint", d.fingerprint),
                    InputTag("dea.kind", d.kind)]
            if d.rows is not None:
                tags.append(InputTag("dea.rows", str(d.rows)))
            inputs.append(DatasetInput(ds._to_mlflow_entity(), tags))
        if inputs:
            self.client.log_inputs(run_id, datasets=inputs)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        if self.enabled and run_id:
            self.client.set_terminated(run_id, status=status)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        if not (self.enabled and run_id):
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[i : i + MAX_PARAMS_PER_BATCH], synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        if not (self.enabled and run_id):
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:MAX_PARAM_LEN]) for k, v in tags.items()]
        for i in range(0, len(items), MAX_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=items[i : i + MAX_TAGS_PER_BATCH], synchronous=True)

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
        self.log_metric_rows(run_id, [(step, metrics)])

    def log_metric_rows(self, run_id: str, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        """Log many (step, {key: value}) rows in as few ``log_batch`` calls as possible."""
        if not (self.enabled and run_id):
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for step, m in rows for k, v in _finite(m).items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=items[i : i + MAX_METRICS_PER_BATCH], synchronous=True)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if not (self.enabled and run_id):
            return
        if Path(path).is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        if self.enabled and run_id:
            self.client.log_text(run_id, text, artifact_file)
