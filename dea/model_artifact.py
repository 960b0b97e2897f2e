"""A model artefact's identity: the SHA-256 of its bytes, a sidecar manifest, an optional signature.

Why: an ONNX file is just bytes on a disk or in an artefact store; weights x50, negated weights,
one flipped bit or a spoofed ``dea.model_version`` all load and trade. The exporter records the
digest of the *final* bytes (after any metadata stamping) in ``<model>.manifest.json`` and the
registry tags the model version with it; serving recomputes the digest of the very bytes it hands
to onnxruntime and refuses a mismatch. A digest proves integrity, not origin: with an Ed25519
key (``cryptography``; private key at export from ``DEA_MODEL_SIGNING_KEY`` or the file named by
``DEA_MODEL_SIGNING_KEY_FILE``, public keys in ``serving.model_public_keys``) the manifest also
carries a signature over the digest and ``serving.require_signature`` refuses unsigned models.

Here in ``dea`` because training writes and serving checks the same format, and neither may import
the other. stdlib only; ``cryptography`` is imported when a key is actually used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dea.errors import ModelError

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
#: what a signature signs: a domain-separated digest, so a signature cannot be replayed elsewhere
SIGNED_PREFIX = b"dea-model-sha256:"
ENV_SIGNING_KEY = "DEA_MODEL_SIGNING_KEY"
ENV_SIGNING_KEY_FILE = "DEA_MODEL_SIGNING_KEY_FILE"
#: registry model-version tags
TAG_SHA256 = "dea.sha256"
TAG_SIGNATURE = "dea.signature"
TAG_GIT_COMMIT = "dea.git_commit"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_path(model_path: str | Path) -> Path:
    """``policy.onnx`` -> ``policy.onnx.manifest.json`` (beside the model)."""
    p = Path(model_path)
    return p.with_name(p.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class ModelManifest:
    """What the exporter vouches for: the digest and size of the final bytes, and who made them."""

    sha256: str
    size: int
    model_name: str = ""
    model_version: str = ""
    git_commit: str | None = None
    created_ns: int = 0
    signature: str | None = None  # base64 Ed25519 signature over SIGNED_PREFIX + sha256 (hex)
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> ModelManifest:
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{source}: model manifest is not valid UTF-8 JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{source}: model manifest must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelError(f"{source}: model manifest has unknown keys {unknown}")
        if data.get("format") != MANIFEST_FORMAT:
            raise ModelError(f"{source}: manifest format {data.get('format')!r}; this DEA reads {MANIFEST_FORMAT}")
        sha = data.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ModelError(f"{source}: manifest sha256 must be 64 lowercase hex digits, got {sha!r}")
        if not isinstance(data.get("size"), int):
            raise ModelError(f"{source}: manifest size must be an integer, got {data.get('size')!r}")
        return cls(**data)


def read_manifest(model_path: str | Path) -> ModelManifest | None:
    """The sidecar manifest of ``model_path`` (None when there is none)."""
    side = manifest_path(model_path)
    if not side.is_file():
        return None
    return ModelManifest.from_json(side.read_bytes(), str(side))


def write_manifest(
    model_path: str | Path,
    *,
    model_name: str = "",
    model_version: str = "",
    git_commit: str | None = None,
    signing_key: Any = None,
) -> ModelManifest:
    """Hash the file as it is now and write its manifest atomically (signed when a key is given).

    Call this after the *last* write to the model file (export, then metadata stamping)."""
    path = Path(model_path)
    data = path.read_bytes()
    sha = sha256_hex(data)
    manifest = ModelManifest(
        sha256=sha, size=len(data), model_name=model_name, model_version=model_version, git_commit=git_commit,
        created_ns=time.time_ns(), signature=None if signing_key is None else sign_digest(signing_key, sha),
    )
    side = manifest_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{side.name}.", dir=side.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(manifest.to_json())
        os.replace(tmp, side)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


# -- signatures -------------------------------------------------------------------------------------
def _signed_bytes(sha256: str) -> bytes:
    return SIGNED_PREFIX + sha256.encode("ascii")


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - cryptography is a pinned dependency
        raise ModelError("model signatures need the 'cryptography' package") from exc
    return ed25519


def _parse_key(text: str | bytes, source: str, *, private: bool) -> Any:
    """An Ed25519 key, private (PKCS8 PEM) or public (SubjectPublicKeyInfo PEM), or the base64 of
    its 32 raw bytes; anything else is a :class:`ModelError` naming ``source``."""
    ed = _ed25519()
    from cryptography.hazmat.primitives import serialization

    kind, cls = ("private", ed.Ed25519PrivateKey) if private else ("public", ed.Ed25519PublicKey)
    raw = text.encode() if isinstance(text, str) else text
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            key = (serialization.load_pem_private_key(raw, password=None) if private
                   else serialization.load_pem_public_key(raw))
            if not isinstance(key, cls):
                raise ModelError(f"{source}: {'signing' if private else 'public'} key is not an Ed25519 key")
            return key
        decoded = base64.b64decode(raw.strip(), validate=True)
        return cls.from_private_bytes(decoded) if private else cls.from_public_bytes(decoded)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{source}: not an Ed25519 {kind} key (PEM or base64 of 32 bytes): {exc}") from None


def parse_private_key(text: str | bytes, source: str) -> Any:
    """An Ed25519 private key: PEM (PKCS8) or the base64 of its 32 raw bytes."""
    return _parse_key(text, source, private=True)


def parse_public_key(text: str, source: str) -> Any:
    """An Ed25519 public key: PEM (SubjectPublicKeyInfo) or the base64 of its 32 raw bytes."""
    return _parse_key(text, source, private=False)


def signing_key_from_env(env: Mapping[str, str] | None = None) -> Any:
    """The export signing key from ``DEA_MODEL_SIGNING_KEY`` (the key itself) or
    ``DEA_MODEL_SIGNING_KEY_FILE`` (a secrets file holding it); None when neither is set."""
    env = os.environ if env is None else env
    if env.get(ENV_SIGNING_KEY):
        return parse_private_key(env[ENV_SIGNING_KEY], f"${ENV_SIGNING_KEY}")
    if env.get(ENV_SIGNING_KEY_FILE):
        path = Path(env[ENV_SIGNING_KEY_FILE]).expanduser()
        if not path.is_file():
            raise ModelError(f"${ENV_SIGNING_KEY_FILE}: signing key file {path} not found")
        return parse_private_key(path.read_bytes(), str(path))
    return None


def sign_digest(private_key: Any, sha256: str) -> str:
    return base64.b64encode(private_key.sign(_signed_bytes(sha256))).decode("ascii")


def signature_valid(public_keys: Sequence[Any], sha256: str, signature: str) -> bool:
    """True when any of ``public_keys`` verifies ``signature`` over the digest."""
    from cryptography.exceptions import InvalidSignature

    try:
        sig = base64.b64decode(signature, validate=True)
    except Exception:
        return False
    for key in public_keys:
        try:
            key.verify(sig, _signed_bytes(sha256))
            return True
        except InvalidSignature:
            continue
    return False


# -- verification -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrustPolicy:
    """What serving demands of a model's bytes before onnxruntime sees them.

    ``require_digest``: refuse a model with no recorded digest (no manifest, no registry tag);
    ``require_signature``: refuse one without a valid signature by one of ``public_keys``.
    """

    require_digest: bool = True
    require_signature: bool = False
    public_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.require_signature and not self.public_keys:
            raise ModelError("serving.require_signature is set but serving.model_public_keys is empty")


#: accept a model without a recorded digest (tools that only inspect a model); a digest that is
#: recorded is still checked
LAX = TrustPolicy(require_digest=False)


def verify_model_bytes(
    data: bytes,
    source: str,
    trust: TrustPolicy,
    *,
    manifest: ModelManifest | None = None,
    expected_sha256: str | None = None,
    signature: str | None = None,
) -> str:
    """Check ``data`` against its recorded digest (manifest and/or registry tag) and signature.

    Returns the digest; raises :class:`ModelError` naming the mismatch."""
    sha = sha256_hex(data)
    recorded: list[tuple[str, str]] = []
    if manifest is not None:
        recorded.append(("manifest", manifest.sha256))
    if expected_sha256 is not None:
        recorded.append(("registry tag", expected_sha256))
    for what, want in recorded:
        if want != sha:
            size = f" ({len(data)} bytes, recorded {manifest.size})" if manifest is not None and what == "manifest" else ""
            raise ModelError(f"{source}: SHA-256 {sha} does not match the {what} ({want}){size}: the model file was "
                             "modified after export; refusing to load it")
    if not recorded and trust.require_digest:
        raise ModelError(f"{source}: no recorded SHA-256 (no {MANIFEST_SUFFIX} beside it, no {TAG_SHA256} registry "
                         "tag); re-export it with DEA, or set serving.require_digest: false to serve unverified models")
    sig = signature if signature is not None else (manifest.signature if manifest is not None else None)
    if trust.public_keys and (sig is not None or trust.require_signature):
        keys = [parse_public_key(k, "serving.model_public_keys") for k in trust.public_keys]
        if sig is None:
            raise ModelError(f"{source}: unsigned model and serving.require_signature is set")
        if not signature_valid(keys, sha, sig):
            raise ModelError(f"{source}: the signature does not verify with any of serving.model_public_keys")
    elif trust.require_signature:  # pragma: no cover - TrustPolicy refuses this combination
        raise ModelError(f"{source}: serving.require_signature needs serving.model_public_keys")
    return sha


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The git commit of the working tree that produced an artefact (None outside a checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


__all__ = [
    "ENV_SIGNING_KEY", "ENV_SIGNING_KEY_FILE", "LAX", "MANIFEST_SUFFIX", "TAG_GIT_COMMIT", "TAG_SHA256", "TAG_SIGNATURE",
    "ModelManifest", "TrustPolicy", "git_commit", "manifest_path", "parse_private_key", "parse_public_key",
    "read_manifest", "sha256_hex", "sign_digest", "signature_valid", "signing_key_from_env", "verify_model_bytes",
    "write_manifest",
]
