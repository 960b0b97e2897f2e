"""Model artefacts identified by the SHA-256 of their bytes, optionally signed with Ed25519.

Why: the live loop must never trade with a file that is not the one that was exported and
evaluated. A model's identity is the digest of its ONNX bytes (DESIGN.md, "models"): the exporter
writes it into a sidecar manifest next to the file (``policy.onnx.manifest.json``), the registry
copies it onto the model version as the tag ``dea.sha256``, and serving checks it on the very
bytes it hands to onnxruntime, before every load and hot swap. A digest alone catches accidents
and tampering in transit; a signature (Ed25519, the ``cryptography`` package, imported lazily)
also proves who exported the file, with the private key kept out of the repository (environment
or secrets file) and only the public key in the serving config.

stdlib at import (``cryptography`` only when a key is used), so ``training`` and ``serving`` can
both import it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dea.errors import ConfigError, ModelError

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
#: registry model-version tags
TAG_SHA256 = "dea.sha256"
TAG_SIGNATURE = "dea.signature"
#: environment variable holding the exporter's Ed25519 private key (PEM, or base64/hex of 32 bytes)
SIGNING_KEY_ENV = "DEA_MODEL_SIGNING_KEY"
#: key of the private key in a secrets file (YAML/JSON mapping)
SIGNING_KEY_FIELD = "model_signing_key"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_path(model_path: str | Path) -> Path:
    """``policy.onnx`` -> ``policy.onnx.manifest.json`` (beside the file, moved with it)."""
    p = Path(model_path)
    return p.with_name(p.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class ModelIdentity:
    """What a model is claimed to be: its digest and, optionally, a signature over the digest."""

    sha256: str
    signature: str | None = None  # base64 Ed25519 signature of the ASCII hex digest
    origin: str = ""  # where the claim came from (manifest path, registry version)

    def to_manifest(self, *, file_name: str, size: int, model_name: str = "", model_version: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"format": MANIFEST_FORMAT, "file": file_name, "size": size, "sha256": self.sha256,
                               "model_name": model_name, "model_version": model_version}
        if self.signature is not None:
            out["signature"] = self.signature
            out["signature_alg"] = "ed25519"
        return out


def read_manifest(model_path: str | Path) -> ModelIdentity | None:
    """The sidecar manifest of ``model_path``; None when there is none. A manifest that does not
    parse is a :class:`ModelError` (a broken claim is not the same as no claim)."""
    path = manifest_path(model_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model manifest is unreadable: {exc}") from None
    digest = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(digest, str) or len(digest) != 64:
        raise ModelError(f"{path}: model manifest has no valid 'sha256' (64 hex digits)")
    sig = data.get("signature")
    if sig is not None and not isinstance(sig, str):
        raise ModelError(f"{path}: model manifest 'signature' must be a base64 string")
    return ModelIdentity(digest.lower(), sig, origin=str(path))


def write_manifest(
    model_path: str | Path, *, signing_key: Any | None = None, model_name: str = "", model_version: str = ""
) -> ModelIdentity:
    """Digest (and sign, when a key is given) the file's bytes and write its manifest atomically."""
    path = Path(model_path)
    data = path.read_bytes()
    digest = sha256_hex(data)
    sig = sign_digest(digest, signing_key) if signing_key is not None else None
    ident = ModelIdentity(digest, sig, origin=str(manifest_path(path)))
    body = json.dumps(ident.to_manifest(file_name=path.name, size=len(data), model_name=model_name,
                                        model_version=model_version), indent=1, sort_keys=True)
    target = manifest_path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, target)
    return ident


# -- keys ---------------------------------------------------------------------------------------
def _key_bytes(text: str, what: str) -> bytes:
    """Raw 32 key bytes from base64 or hex text."""
    s = text.strip()
    try:
        raw = bytes.fromhex(s) if len(s) == 64 else base64.b64decode(s, validate=True)
    except ValueError:
        raise ConfigError(f"{what}: not PEM, base64 or hex key text") from None
    if len(raw) != 32:
        raise ConfigError(f"{what}: an Ed25519 key is 32 bytes, got {len(raw)}")
    return raw


def load_private_key(text: str, what: str = "signing key") -> Any:
    """An Ed25519 private key from PEM (PKCS#8) or base64/hex of the 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except ValueError as exc:
            raise ConfigError(f"{what}: cannot read the PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{what}: the PEM key is {type(key).__name__}, not Ed25519")
        return key
    return Ed25519PrivateKey.from_private_bytes(_key_bytes(text, what))


def load_public_key(text: str, what: str = "serving.model_public_key") -> Any:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64/hex of the 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise ConfigError(f"{what}: cannot read the PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{what}: the PEM key is {type(key).__name__}, not Ed25519")
        return key
    return Ed25519PublicKey.from_public_bytes(_key_bytes(text, what))


def public_key_text(private_key: Any) -> str:
    """The base64 raw public key of a private key (what goes into ``serving.model_public_key``)."""
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign_digest(digest: str, private_key: Any) -> str:
    return base64.b64encode(private_key.sign(digest.encode("ascii"))).decode()


def read_secrets_file(path: str | Path) -> dict[str, Any]:
    """A YAML/JSON secrets mapping; refused when other users can read it (POSIX)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"secrets file not found: {p}")
    if os.name == "posix" and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secrets file {p} is readable by other users; chmod 600 it")
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigError(f"secrets file {p} is not valid YAML/JSON") from None
    return data if isinstance(data, dict) else {}


def signing_key_from(environ: Mapping[str, str] | None = None, secrets_file: str | Path | None = None) -> Any | None:
    """The exporter's private key: ``$DEA_MODEL_SIGNING_KEY``, else ``model_signing_key`` in the
    secrets file, else None (the export is digested but not signed)."""
    env = os.environ if environ is None else environ
    text = env.get(SIGNING_KEY_ENV)
    if text:
        return load_private_key(text, f"${SIGNING_KEY_ENV}")
    if secrets_file is not None:
        value = read_secrets_file(secrets_file).get(SIGNING_KEY_FIELD)
        if value:
            return load_private_key(str(value), f"{secrets_file}: {SIGNING_KEY_FIELD}")
    return None


# -- verification -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrustPolicy:
    """What serving demands of a model before it may trade (``serving.require_*``)."""

    public_key: str | None = None
    require_digest: bool = False
    require_signature: bool = False

    @classmethod
    def from_serving(cls, serving: Any) -> TrustPolicy:
        return cls(getattr(serving, "model_public_key", None), bool(getattr(serving, "require_digest", False)),
                   bool(getattr(serving, "require_signature", False)))


def verify_model_bytes(
    data: bytes, claims: list[ModelIdentity], trust: TrustPolicy | None, source: str
) -> str:
    """Check ``data`` against every claim (manifest, registry tag); returns the digest.

    Refuses (:class:`ModelError`, naming the claim) a digest that differs, a signature that does
    not verify, no claim when ``require_digest``, no signature when ``require_signature``.
    """
    trust = trust or TrustPolicy()
    digest = sha256_hex(data)
    for c in claims:
        if c.sha256.lower() != digest:
            raise ModelError(
                f"{source}: SHA-256 {digest[:16]}… differs from {c.origin}'s {c.sha256[:16]}…: the file was "
                "changed after export; refusing to load it"
            )
    if (trust.require_digest or trust.require_signature) and not claims:
        raise ModelError(f"{source}: no manifest or registry digest to verify it against "
                         "(serving.require_digest / require_signature)")
    signed = [c for c in claims if c.signature]
    if signed and trust.public_key:
        key = load_public_key(trust.public_key)
        from cryptography.exceptions import InvalidSignature

        for c in signed:
            try:
                key.verify(base64.b64decode(c.signature or ""), digest.encode("ascii"))
            except (InvalidSignature, ValueError):
                raise ModelError(f"{source}: the Ed25519 signature in {c.origin} does not verify with "
                                 "serving.model_public_key; refusing to load it") from None
    if trust.require_signature:
        if not trust.public_key:
            raise ConfigError("serving.require_signature is true but serving.model_public_key is not set")
        if not signed:
            raise ModelError(f"{source}: unsigned model (no signature in its manifest or registry tags) and "
                             "serving.require_signature is true")
    return digest


__all__ = [
    "MANIFEST_SUFFIX",
    "ModelIdentity",
    "SIGNING_KEY_ENV",
    "TAG_SHA256",
    "TAG_SIGNATURE",
    "TrustPolicy",
    "load_private_key",
    "load_public_key",
    "manifest_path",
    "public_key_text",
    "read_manifest",
    "read_secrets_file",
    "sha256_hex",
    "sign_digest",
    "signing_key_from",
    "verify_model_bytes",
    "write_manifest",
]
