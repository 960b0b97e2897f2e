"""The policy model contract (DESIGN.md, "The policy model contract"): names and metadata.

Why here, in ``dea``: the exporter (``training``), the live runner (``serving``) and the
backtester (``dea backtest --policy PATH.onnx``) must agree on tensor names and metadata keys,
and ``training`` and ``serving`` may not import each other. Pure stdlib, so serving can import it.

Tensors: inputs ``features`` float32 [B, F] (raw values in feature-spec order, scaling inside
the graph), ``exposure`` float32 [B, N], optional ``state_in`` [B, H]; outputs
``target_exposure`` [B, N], optional ``state_out`` [B, H] and ``dispersion`` [B, N].
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dea.errors import ModelError

INPUT_FEATURES = "features"
INPUT_EXPOSURE = "exposure"
INPUT_STATE = "state_in"
OUTPUT_TARGET = "target_exposure"
OUTPUT_STATE = "state_out"
OUTPUT_DISPERSION = "dispersion"

FORMAT_VERSION = "1"
META_PREFIX = "dea."

#: metadata key (without the ``dea.`` prefix) -> whether its value is JSON
META_FIELDS: dict[str, bool] = {
    "feature_names": True,
    "feature_spec_hash": False,
    "instruments": True,
    "exposure_caps": True,
    "model_name": False,
    "model_version": False,
    "train_window": False,
    "config_hash": False,
    "data_fingerprint": False,
    "format_version": False,
}
#: optional keys (absent in models exported before they existed): read when present
OPTIONAL_META_FIELDS: dict[str, bool] = {
    "instrument_terms": True,
}
#: the contract terms a runner compares: a model trained on a linear contract must not drive an
#: inverse one, a spot-bounded model a margin account, or a future of another expiry
TERM_KEYS: tuple[str, ...] = ("kind", "contract", "contract_size", "expiry", "lower", "upper")


@dataclass(frozen=True)
class PolicyMetadata:
    """The ``dea.*`` metadata properties stamped into every exported policy."""

    feature_names: tuple[str, ...]
    feature_spec_hash: str
    instruments: tuple[str, ...]
    exposure_caps: Any = field(default=None)  # float cap or {symbol: cap}
    model_name: str = ""
    model_version: str = ""
    train_window: str = ""  # "ISO-start/ISO-end"
    config_hash: str = ""
    data_fingerprint: str = ""
    format_version: str = FORMAT_VERSION
    #: {symbol: {kind, contract, contract_size, settlement, expiry, lower, upper}}; see
    #: :func:`dea.risk.engine.contract_terms`. None = not recorded (older export)
    instrument_terms: Any = field(default=None)

    def to_props(self) -> dict[str, str]:
        """Metadata as ONNX ``metadata_props`` (string -> string, ``dea.``-prefixed)."""
        out: dict[str, str] = {}
        for key, is_json in META_FIELDS.items():
            value = getattr(self, key)
            if is_json:
                value = json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)
            out[META_PREFIX + key] = str(value)
        for key in OPTIONAL_META_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[META_PREFIX + key] = json.dumps(value, sort_keys=True)
        return out

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "<model>") -> PolicyMetadata:
        """Parse ``metadata_props``; a missing or malformed key is a :class:`ModelError`."""
        values: dict[str, Any] = {}
        for key, is_json in META_FIELDS.items():
            full = META_PREFIX + key
            if full not in props:
                raise ModelError(f"{source}: metadata property {full!r} is missing (not a DEA policy export?)")
            raw = props[full]
            if is_json:
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ModelError(f"{source}: metadata {full!r} is not valid JSON: {exc}") from None
            values[key] = raw
        for key in OPTIONAL_META_FIELDS:
            full = META_PREFIX + key
            if full in props:
                try:
                    values[key] = json.loads(props[full])
                except json.JSONDecodeError as exc:
                    raise ModelError(f"{source}: metadata {full!r} is not valid JSON: {exc}") from None
        terms = values.get("instrument_terms")
        if terms is not None and not (isinstance(terms, dict) and all(isinstance(v, dict) for v in terms.values())):
            raise ModelError(f"{source}: metadata dea.instrument_terms must map symbol -> terms, got {terms!r}")
        for key in ("feature_names", "instruments"):
            v = values[key]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ModelError(f"{source}: metadata dea.{key} must be a JSON list of strings, got {v!r}")
            values[key] = tuple(v)
        if values["format_version"] != FORMAT_VERSION:
            raise ModelError(
                f"{source}: dea.format_version is {values['format_version']!r}; this DEA reads "
                f"format {FORMAT_VERSION!r}"
            )
        return cls(**values)

    def cap_for(self, symbol: str) -> float | None:
        """The exposure cap for one instrument (``None`` when the export recorded none)."""
        caps = self.exposure_caps
        if caps is None:
            return None
        if isinstance(caps, Mapping):
            v = caps.get(symbol)
            return None if v is None else float(v)
        return float(caps)


def check_compatible(
    meta: PolicyMetadata,
    *,
    feature_names: Sequence[str] | None = None,
    feature_spec_hash: str | None = None,
    instruments: Sequence[str] | None = None,
    instrument_terms: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "<model>",
) -> None:
    """Refuse a model whose feature spec or instruments differ from the live ones.

    The message names the first difference (which feature/instrument, at which position), so
    an operator can tell a re-ordered feature list from a different spec version.
    """
    problems: list[str] = []
    if feature_spec_hash is not None and meta.feature_spec_hash != feature_spec_hash:
        problems.append(
            f"feature_spec_hash differs: model {meta.feature_spec_hash!r} vs live {feature_spec_hash!r}"
        )
    if feature_names is not None:
        diff = _first_difference(meta.feature_names, tuple(feature_names))
        if diff:
            problems.append(f"feature names differ: {diff}")
    if instruments is not None:
        diff = _first_difference(meta.instruments, tuple(instruments))
        if diff:
            problems.append(f"instruments differ: {diff}")
    if instrument_terms is not None and meta.instrument_terms is not None:
        for sym, live in instrument_terms.items():
            mine = meta.instrument_terms.get(sym)
            if mine is None:
                continue
            diff = [f"{k} {mine.get(k)!r} vs live {live.get(k)!r}" for k in TERM_KEYS if mine.get(k) != live.get(k)]
            if diff:
                problems.append(f"instrument {sym} terms differ: " + ", ".join(diff))
    if problems:
        raise ModelError(f"{source}: model does not match the live spec: " + "; ".join(problems))


def _first_difference(model: tuple[str, ...], live: tuple[str, ...]) -> str:
    if model == live:
        return ""
    if len(model) != len(live):
        missing = [x for x in live if x not in model]
        extra = [x for x in model if x not in live]
        return (
            f"model has {len(model)}, live has {len(live)}"
            + (f"; live-only {missing[:5]}" if missing else "")
            + (f"; model-only {extra[:5]}" if extra else "")
        )
    for i, (a, b) in enumerate(zip(model, live, strict=True)):
        if a != b:
            return f"position {i}: model {a!r} vs live {b!r}"
    return ""  # pragma: no cover - unreachable: equal length and no differing position
