"""``serving`` section: the live loop's settings (``dea serve``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dea.config.base import StrictModel, duration_field
from dea.model_artifact import TrustPolicy
from dea.options.overlay_config import LiveOverlayConfig


_CREDENTIAL_KEYS = frozenset({"apikey", "secret", "password", "uid", "privatekey", "walletaddress", "token"})


class ServingConfig(StrictModel):
    """How the live allocator loop runs.

    ``fallback``: what the loop does when the model fails (an error or a NaN output): ``hold``
    the current exposure, ``derisk`` (current exposure x ``derisk_factor``) or ``flatten``; the
    risk engine then applies its rules as usual. Stale inputs are handled by the risk engine's
    ``risk.stale`` guard (the same rule as in the backtest); ``max_feature_age`` adds a loop-level
    guard that takes the fallback action when any input is older (None = risk guard only).
    """

    journal: str = Field(default="dea_journal.sqlite", description="SQLite state journal (relative to the cwd)")
    journal_sync: Literal["full", "normal", "off"] = Field(
        default="full", description="SQLite synchronous level: full survives power loss, normal survives a crash"
    )
    fallback: Literal["hold", "derisk", "flatten"] = "hold"
    derisk_factor: float = Field(default=0.5, ge=0, le=1)
    max_feature_age: str | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(
        default="127.0.0.1", min_length=1, description="address the Prometheus endpoint binds (0.0.0.0: all interfaces)"
    )
    testnet: bool = True
    secrets_file: str | None = None
    model_poll: str | None = Field(
        default="30s", description="how often a registry/file model source is checked for a new version (None: never)"
    )
    venue_symbols: dict[str, str] = Field(
        default_factory=dict, description="DEA symbol -> venue symbol for ccxt (e.g. BTCUSDT: BTC/USDT:USDT)"
    )
    venue_urls: dict[str, str] = Field(
        default_factory=dict,
        description="ccxt endpoint overrides (urls['api'] entries, e.g. fapiPrivate: https://gateway/fapi/v1): a "
                    "self-hosted gateway or a local fake venue; https/wss required except on loopback",
    )
    venue_config: dict[str, Any] = Field(
        default_factory=dict,
        description="extra ccxt constructor settings (e.g. options: {defaultType: swap}, rateLimit: 50); "
                    "credentials never go here (environment or serving.secrets_file)",
    )
    impact_k: float | None = Field(
        default=None, ge=0, description="paper fills: square-root impact k when costs.impact.k is null (estimated)"
    )
    book_levels: int = Field(default=200, ge=1, description="paper fills walk at most this many book levels")
    client_id_prefix: str = Field(default="dea", pattern=r"^[A-Za-z0-9_.:-]{1,8}$")
    tick: str = Field(default="1s", description="live feeds: how often a quiet feed still advances the clock")

    # verified models (dea.model_artifact): the SHA-256 of the ONNX bytes is checked before every load
    require_digest: bool = Field(
        default=True, description="refuse a model with no recorded SHA-256 (manifest beside the file or registry tag)"
    )
    require_signature: bool = Field(default=False, description="refuse a model without a valid Ed25519 signature")
    model_public_keys: tuple[str, ...] = Field(
        default=(), description="Ed25519 public keys (PEM or base64 of the 32 raw bytes) that may sign models"
    )
    # restarts and shutdown
    order_ttl: str | None = Field(
        default="5m", description="on restart, journaled orders older than this are cancelled, not re-sent (None: no limit)"
    )
    shutdown_orders: Literal["leave", "cancel"] = Field(
        default="leave", description="on SIGTERM/SIGINT: leave open orders at the venue or cancel them"
    )
    # single writer: the journal's lease
    lease_ttl: str = Field(default="15s", description="a writer that has not renewed its journal lease this long is gone")
    # audit trail
    journal_inputs: bool = Field(
        default=False, description="store each decision's model input vector in the journal (not only its hash)"
    )

    # options: a rolled put/call on one perpetual, on the paper option venue (serving.options_overlay)
    options_overlay: LiveOverlayConfig | None = Field(
        default=None, description="the option overlay of the backtest (dea options-overlay) run live on one perpetual; "
                                  "paper venue only",
    )

    _dur = duration_field("max_feature_age", "model_poll", "tick", "order_ttl", "lease_ttl")

    @model_validator(mode="after")
    def _no_credentials_in_venue_config(self) -> ServingConfig:
        bad = sorted(k for k in self.venue_config if k.lower() in _CREDENTIAL_KEYS)
        if bad:
            raise ValueError(f"serving.venue_config must not hold credentials ({bad}): use the environment "
                             "(DEA_<VENUE>_API_KEY / _API_SECRET) or serving.secrets_file")
        return self

    @model_validator(mode="after")
    def _signature_keys(self) -> ServingConfig:
        if self.require_signature and not self.model_public_keys:
            raise ValueError("serving.require_signature needs serving.model_public_keys (the keys that may sign)")
        return self

    def trust_policy(self) -> TrustPolicy:
        """What a model's bytes must satisfy before serving loads them."""
        return TrustPolicy(self.require_digest, self.require_signature, tuple(self.model_public_keys))
