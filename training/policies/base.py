"""The shared shell of every policy: input scaling, exposure bounds and gross projection.

Subclasses implement only ``body`` (scaled features, exposure, state -> scores, state); this base
turns scores into bounded target exposures the same way for every architecture, so the risk
semantics (per-instrument caps, gross cap) cannot drift between model kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dea.errors import ModelError

_EPS = 1e-12


@dataclass(frozen=True)
class PolicySpec:
    """Everything needed to rebuild a policy module (JSON-serialisable via ``to_dict``)."""

    kind: str
    feature_names: tuple[str, ...]
    instruments: tuple[str, ...]
    caps: tuple[float, ...]
    max_gross: float
    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.0
    clip: float | None = 5.0
    kernel_size: int = 4
    partial_adjustment: bool = True
    initial_trade_rate: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.feature_names:
            raise ModelError("policy spec: feature_names is empty")
        if not self.instruments:
            raise ModelError("policy spec: instruments is empty")
        if len(self.caps) != len(self.instruments):
            raise ModelError(
                f"policy spec: {len(self.caps)} caps for {len(self.instruments)} instruments {list(self.instruments)}"
            )
        if any(not (c >= 0 and np.isfinite(c)) for c in self.caps):
            raise ModelError(f"policy spec: every exposure cap must be finite and >= 0, got {list(self.caps)}")
        if not 0.0 < self.initial_trade_rate < 1.0:
            raise ModelError(f"policy spec: initial_trade_rate must be in (0, 1), got {self.initial_trade_rate}")
        if not (self.max_gross > 0 and np.isfinite(self.max_gross)):
            raise ModelError(f"policy spec: max_gross must be finite and > 0, got {self.max_gross}")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_instruments(self) -> int:
        return len(self.instruments)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("feature_names", "instruments", "caps", "hidden"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PolicySpec":
        try:
            return cls(
                kind=str(d["kind"]),
                feature_names=tuple(d["feature_names"]),
                instruments=tuple(d["instruments"]),
                caps=tuple(float(c) for c in d["caps"]),
                max_gross=float(d["max_gross"]),
                hidden=tuple(int(h) for h in d.get("hidden", (64, 64))),
                dropout=float(d.get("dropout", 0.0)),
                clip=None if d.get("clip") is None else float(d["clip"]),
                kernel_size=int(d.get("kernel_size", 4)),
                partial_adjustment=bool(d.get("partial_adjustment", False)),
                initial_trade_rate=float(d.get("initial_trade_rate", 0.1)),
                extra=dict(d.get("extra", {})),
            )
        except KeyError as exc:
            raise ModelError(f"policy spec is missing field {exc.args[0]!r}") from None


class Policy(nn.Module):
    """Base policy: scaling buffers, caps, gross projection and metadata attributes."""

    is_recurrent: bool = False

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.kind = spec.kind
        self.feature_names = tuple(spec.feature_names)
        self.instruments = tuple(spec.instruments)
        self.n_features = spec.n_features
        self.n_instruments = spec.n_instruments
        self.max_gross = float(spec.max_gross)
        self.clip = spec.clip
        self.register_buffer("center", torch.zeros(spec.n_features))
        self.register_buffer("scale", torch.ones(spec.n_features))
        self.register_buffer("caps", torch.tensor(spec.caps, dtype=torch.float32))
        self.partial_adjustment = bool(spec.partial_adjustment)
        if self.partial_adjustment:
            rate = float(spec.initial_trade_rate)
            self.trade_logit = nn.Parameter(torch.full((spec.n_instruments,), float(np.log(rate / (1 - rate)))))

    # -- metadata -----------------------------------------------------------------------------
    @property
    def exposure_caps(self) -> dict[str, float]:
        return {s: float(c) for s, c in zip(self.instruments, self.spec.caps)}

    @property
    def state_size(self) -> int:
        return 0

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """All-zero state ``[batch, H]`` (``H == 0`` for feed-forward policies)."""
        return torch.zeros(batch, self.state_size, device=device if device is not None else self.center.device)

    # -- scaling ------------------------------------------------------------------------------
    def set_scaler(self, center: Sequence[float] | np.ndarray, scale: Sequence[float] | np.ndarray) -> None:
        """Bake a training-window scaler into the module (``z = (x - center) / scale``)."""
        c = np.asarray(center, dtype=np.float64).reshape(-1)
        s = np.asarray(scale, dtype=np.float64).reshape(-1)
        if c.shape != (self.n_features,) or s.shape != (self.n_features,):
            raise ModelError(
                f"scaler has {c.size} centers / {s.size} scales for {self.n_features} features"
            )
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(s)) and np.all(s > 0)):
            bad = [self.feature_names[i] for i in np.flatnonzero(~(np.isfinite(c) & np.isfinite(s) & (s > 0)))]
            raise ModelError(f"scaler has non-finite center or non-positive scale for features {bad[:10]}")
        self.center.copy_(torch.as_tensor(c, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(s, dtype=torch.float32))

    def scale_features(self, features: Tensor) -> Tensor:
        z = (features - self.center) / self.scale
        if self.clip is not None:
            z = torch.clamp(z, -self.clip, self.clip)
        return z

    # -- bounding -----------------------------------------------------------------------------
    @property
    def trade_rate(self) -> Tensor:
        """Per-instrument share of the gap to the desired exposure closed each step (1 = all)."""
        if not self.partial_adjustment:
            return torch.ones_like(self.caps)
        return torch.sigmoid(self.trade_logit)

    def bound(self, scores: Tensor, exposure: Tensor | None = None) -> Tensor:
        """Scores -> bounded target exposure.

        ``desired = caps * tanh(scores)``; with partial adjustment (Garleanu & Pedersen 2013:
        under trading costs the optimal policy trades a fixed share of the way from the current
        position towards an aim) ``target = held + rate * (desired - held)``, ``held`` being
        ``exposure`` clipped to the caps and ``rate`` a learned per-instrument share in (0, 1);
        then the differentiable gross-leverage projection.
        """
        target = self.caps * torch.tanh(scores)
        if self.partial_adjustment and exposure is not None:
            held = torch.maximum(torch.minimum(exposure, self.caps), -self.caps)
            target = held + self.trade_rate * (target - held)
        gross = target.abs().sum(dim=-1, keepdim=True)
        factor = torch.clamp(self.max_gross / (gross + _EPS), max=1.0)
        return target * factor

    # -- stepping -----------------------------------------------------------------------------
    def step(self, features: Tensor, exposure: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One decision step with a uniform signature for feed-forward and recurrent policies."""
        if self.is_recurrent:
            if state is None:
                state = self.initial_state(features.shape[0], features.device)
            return self(features, exposure, state)
        return self(features, exposure), None

    def extra_repr(self) -> str:
        return f"kind={self.kind}, F={self.n_features}, N={self.n_instruments}, H={self.state_size}"


def mlp_layers(n_in: int, widths: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    """A stack of Linear+SiLU(+Dropout) layers; returns the stack and its output width."""
    layers: list[nn.Module] = []
    width = n_in
    for h in widths:
        layers.append(nn.Linear(width, int(h)))
        layers.append(nn.SiLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    return nn.Sequential(*layers), width
