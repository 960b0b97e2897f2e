"""Where a model comes from: a local ONNX file or the MLflow registry.

Registry URIs (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/...``) are resolved with
MLflow imported lazily: a serving host needs only ``mlflow-skinny`` and a tracking server over
HTTP, and a loop serving a plain file never imports MLflow at all. An alias is first resolved
to a version number, then that exact version is downloaded, so a promotion that lands mid-download
cannot mix two versions; downloads are cached per (name, version).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dea.errors import ModelError

REGISTRY_PREFIXES = ("models:/", "runs:/")


@dataclass(frozen=True)
class ResolvedModel:
    """A model source resolved to a local file."""

    uri: str
    path: Path
    version: str | None  # registry version when it came from the registry
    sha256: str | None = None  # the registry version's dea.sha256 tag (checked against the bytes)
    signature: str | None = None  # the registry version's dea.signature tag


@dataclass(frozen=True)
class RegistryRef:
    name: str
    alias: str | None
    version: str | None


def is_registry_uri(source: str) -> bool:
    return source.startswith(REGISTRY_PREFIXES)


def parse_models_uri(uri: str) -> RegistryRef:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> :class:`RegistryRef`."""
    if not uri.startswith("models:/"):
        raise ModelError(f"not a registry model URI: {uri!r} (expected models:/NAME@ALIAS or models:/NAME/VERSION)")
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if name and alias:
            return RegistryRef(name, alias, None)
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return RegistryRef(name, None, version)
    raise ModelError(f"cannot parse registry URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")


def registry_version(name: str, alias: str, *, tracking_uri: str | None = None) -> str:
    """The version number ``alias`` points at now (lazy MLflow import)."""
    client = _client(tracking_uri)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception as exc:  # MlflowException or a transport error
        raise ModelError(f"registry: cannot resolve models:/{name}@{alias}: {exc}") from None


def resolve_model(source: str, *, tracking_uri: str | None = None, cache_dir: str | Path | None = None) -> ResolvedModel:
    """Turn a path or registry URI into a local ONNX file."""
    if not is_registry_uri(source):
        path = Path(source[len("file://") :] if source.startswith("file://") else source).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return ResolvedModel(source, path, None)
    version: str | None = None
    download_uri = source
    ref: RegistryRef | None = None
    if source.startswith("models:/"):
        ref = parse_models_uri(source)
        version = ref.version or registry_version(ref.name, ref.alias or "", tracking_uri=tracking_uri)
        download_uri = f"models:/{ref.name}/{version}"
        target = _cache_root(cache_dir) / _safe(ref.name) / version
    else:
        target = Path(tempfile.mkdtemp(prefix="dea-model-"))
    onnx_file = _find_onnx(target) if target.is_dir() else None
    if onnx_file is None:
        # download beside the cache entry, then rename: a crash mid-download leaves no half entry
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        mlflow = _mlflow()
        try:
            artifact_uri = download_uri
            if ref is not None:  # the version's artifact location, resolved against *this* registry
                artifact_uri = _client(tracking_uri).get_model_version_download_uri(ref.name, version)
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=str(staging), tracking_uri=tracking_uri
                )
            )
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelError(f"registry: cannot download {download_uri}: {exc}") from None
        if _find_onnx(local) is None:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelError(f"registry: {download_uri} contains no .onnx file (is it a DEA policy export?)")
        try:
            os.replace(staging, target)
        except OSError:  # another process cached it first, or target is a non-empty leftover
            if _find_onnx(target) is None:
                shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
            else:
                shutil.rmtree(staging, ignore_errors=True)
        onnx_file = _find_onnx(target)
        assert onnx_file is not None
    sha = sig = None
    if ref is not None:
        sha, sig = version_digest(ref.name, str(version), tracking_uri=tracking_uri)
    return ResolvedModel(source, onnx_file, version, sha, sig)


def version_digest(name: str, version: str, *, tracking_uri: str | None = None) -> tuple[str | None, str | None]:
    """The ``dea.sha256`` and ``dea.signature`` tags of a registry version (None where absent).

    Read at every resolve, not cached with the download: the cached bytes are re-verified
    against the registry's record each time they are loaded."""
    from dea.model_artifact import TAG_SHA256, TAG_SIGNATURE

    try:
        tags = dict(_client(tracking_uri).get_model_version(name, version).tags or {})
    except Exception as exc:
        raise ModelError(f"registry: cannot read the tags of models:/{name}/{version}: {exc}") from None
    return tags.get(TAG_SHA256), tags.get(TAG_SIGNATURE)


def _find_onnx(folder: Path) -> Path | None:
    files = sorted(folder.rglob("*.onnx"))
    return files[0] if files else None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "dea-model-cache"


def _mlflow():  # noqa: ANN202 - module
    try:
        import mlflow  # mlflow-skinny is enough
        import mlflow.artifacts  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            "loading from the MLflow registry needs mlflow-skinny: pip install 'dea[registry]'"
        ) from exc
    return mlflow


def _client(tracking_uri: str | None):  # noqa: ANN202
    mlflow = _mlflow()
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
