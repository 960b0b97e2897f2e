"""API credentials for live venues: from the environment or a secrets file, never logged.

Lookup order for venue ``binanceusdm``: environment variables ``DEA_BINANCEUSDM_API_KEY``,
``DEA_BINANCEUSDM_API_SECRET`` (optional ``..._API_PASSWORD``), else the secrets file (YAML or
JSON mapping ``venue -> {apiKey, secret[, password]}``). The :class:`Credentials` object masks
its values in ``repr``/``str``, so a credential cannot leak into a log line or a traceback by
accident; the file must not be readable by other users (checked on POSIX).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dea.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    origin: str = ""

    def __repr__(self) -> str:
        return f"Credentials(origin={self.origin!r}, api_key='***', secret='***')"

    __str__ = __repr__

    def ccxt_config(self) -> dict[str, str]:
        """The keys ccxt expects (pass straight to the exchange constructor)."""
        cfg = {"apiKey": self.api_key, "secret": self.secret}
        if self.password:
            cfg["password"] = self.password
        return cfg


def _env_prefix(venue: str) -> str:
    return "DEA_" + "".join(c if c.isalnum() else "_" for c in venue.upper())


def load_credentials(
    venue: str, *, secrets_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials for ``venue``; raises :class:`ConfigError` saying where it looked (no values)."""
    env = os.environ if environ is None else environ
    prefix = _env_prefix(venue)
    key, secret = env.get(f"{prefix}_API_KEY"), env.get(f"{prefix}_API_SECRET")
    if key and secret:
        return Credentials(key, secret, env.get(f"{prefix}_API_PASSWORD"), origin=f"env {prefix}_API_*")
    if secrets_file is not None:
        path = Path(secrets_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"secrets file not found: {path}")
        if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"secrets file {path} is readable by other users; chmod 600 it")
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise ConfigError(f"secrets file {path} is not valid YAML/JSON") from None
        entry = data.get(venue) if isinstance(data, dict) else None
        if not isinstance(entry, dict) or not entry.get("apiKey") or not entry.get("secret"):
            raise ConfigError(f"secrets file {path} has no '{venue}: {{apiKey, secret}}' entry")
        return Credentials(str(entry["apiKey"]), str(entry["secret"]), entry.get("password"), origin=f"file {path}")
    raise ConfigError(
        f"no credentials for venue {venue!r}: set {prefix}_API_KEY and {prefix}_API_SECRET, or "
        "serving.secrets_file"
    )
