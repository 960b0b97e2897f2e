"""The shared shell of every policy: input scaling, base allocation, bounded adjustment,
exposure bounds and gross projection.

Subclasses implement only their body (scaled features, exposure, state -> scores, state); this
base turns scores into bounded target exposures the same way for every architecture, so the risk
semantics (per-instrument bounds, gross cap) cannot drift between model kinds.

Three output modes (``PolicySpec.mode``):

* ``base``: ``desired = base * (1 + max_scale * tanh(u)) + max_tilt * tanh(v) * unit`` — the
  causal base allocation of :mod:`dea.allocation.base` (computed in this graph from raw feature
  columns, so training, backtest and the exported ONNX model share it) times a learned scale,
  plus a learned tilt in volatility units;
* ``vol``: ``desired = max_tilt * tanh(v) * unit`` (no base; risk fixed by construction as in
  Deep Momentum Networks: a signal in [-1, 1] times target vol over ex-ante vol);
* ``legacy``: ``desired = cap * tanh(score)``.

``unit[i] = target_vol / (N * sigma_annual[i])``. In ``base`` and ``vol`` modes the output layer
starts at exactly zero, so an untrained policy is its base (or flat), never a random bet.
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
    lower: tuple[float, ...] | None = None  # per-instrument lower bound (None = -caps; 0 = long-only)
    base: dict[str, Any] = field(default_factory=dict)  # kind, vol_window, momentum_horizon, target_vol, budget,
    # hrp_window, hrp_refit, hold_rebalance
    adjust: dict[str, Any] = field(default_factory=dict)  # max_scale, max_tilt, vol_scaling
    periods_per_year: float = 1.0

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
        if self.lower is not None:
            if len(self.lower) != len(self.caps):
                raise ModelError(f"policy spec: {len(self.lower)} lower bounds for {len(self.caps)} instruments")
            bad = [s for s, lo, c in zip(self.instruments, self.lower, self.caps) if not (-c <= lo <= c)]
            if bad:
                raise ModelError(f"policy spec: lower bounds of {bad} must lie in [-cap, cap]")
        kind = self.base.get("kind", "none")
        from dea.allocation.base import BASE_KINDS

        if kind not in BASE_KINDS:
            raise ModelError(f"policy spec: base kind {kind!r} unknown; known {list(BASE_KINDS)}")
        if self.mode != "legacy" and not (self.periods_per_year > 0):
            raise ModelError("policy spec: periods_per_year must be > 0 for a volatility-scaled policy")

    @property
    def base_kind(self) -> str:
        return str(self.base.get("kind", "none"))

    @property
    def mode(self) -> str:
        """``base`` | ``vol`` | ``legacy`` (see the module docstring)."""
        if self.base_kind != "none":
            return "base"
        return "vol" if self.adjust.get("vol_scaling", False) else "legacy"

    @property
    def scores_per_instrument(self) -> int:
        """Scores the body emits per instrument: (tilt, scale) over a base, else one."""
        return 2 if self.mode == "base" else 1

    @property
    def lower_bounds(self) -> tuple[float, ...]:
        return tuple(-c for c in self.caps) if self.lower is None else tuple(self.lower)

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
        if d["lower"] is not None:
            d["lower"] = list(d["lower"])
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
                lower=None if d.get("lower") is None else tuple(float(v) for v in d["lower"]),
                base=dict(d.get("base", {})),
                adjust=dict(d.get("adjust", {})),
                periods_per_year=float(d.get("periods_per_year", 1.0)),
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
        self.register_buffer("lower", torch.tensor(spec.lower_bounds, dtype=torch.float32))
        self.mode = spec.mode
        self.n_scores = spec.scores_per_instrument * spec.n_instruments
        self.base_kind = spec.base_kind
        self.target_vol = float(spec.base.get("target_vol", 0.3))
        self.budget = float(spec.base.get("budget", 1.0))
        self.max_scale = float(spec.adjust.get("max_scale", 0.5))
        self.max_tilt = float(spec.adjust.get("max_tilt", 0.5))
        self.periods_per_year = float(spec.periods_per_year)
        if self.mode != "legacy":
            from dea.allocation.base import base_columns

            cols = base_columns(spec.feature_names, spec.instruments, spec.base_kind if self.mode == "base" else "none",
                                int(spec.base.get("vol_window", 30)), int(spec.base.get("momentum_horizon", 30)),
                                int(spec.base.get("hrp_window", 60)), str(spec.base.get("hrp_refit", "1d")),
                                str(spec.base.get("hold_rebalance", "365d")))
            self.register_buffer("sigma_idx", torch.as_tensor(cols.sigma, dtype=torch.long), persistent=False)
            mom = cols.momentum if cols.momentum is not None else cols.sigma
            self.register_buffer("momentum_idx", torch.as_tensor(mom, dtype=torch.long), persistent=False)
            hrp = cols.hrp if cols.hrp is not None else cols.sigma
            self.register_buffer("hrp_idx", torch.as_tensor(hrp, dtype=torch.long), persistent=False)
            hold = cols.hold if cols.hold is not None else cols.sigma
            self.register_buffer("hold_idx", torch.as_tensor(hold, dtype=torch.long), persistent=False)
        if self.base_kind == "ridge":
            # the frozen ridge forecast of the base (buffers: saved and exported, never trained);
            # zero until training.forecast_policy.fit_ridge_base fits it on a fold's fit block
            self.register_buffer("ridge_weight", torch.zeros(spec.n_instruments, spec.n_features))
            self.register_buffer("ridge_bias", torch.zeros(spec.n_instruments))
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

    def base_exposure(self, features: Tensor) -> Tensor:
        """The base allocation [B, N] from raw features (zero for a plain policy)."""
        if self.mode != "base":
            return features.new_zeros(features.shape[0], self.n_instruments)
        from dea.allocation.base import base_weights

        sigma = features[:, self.sigma_idx]
        mom = features[:, self.momentum_idx] if self.base_kind == "tsmom" else None
        hrp = features[:, self.hrp_idx] if self.base_kind == "hrp" else None
        hold = features[:, self.hold_idx] if self.base_kind == "buy_and_hold" else None
        fc = self.ridge_forecast(features) if self.base_kind == "ridge" else None
        return base_weights(torch, self.base_kind, sigma, mom, self.lower, self.caps, target_vol=self.target_vol,
                            periods_per_year=self.periods_per_year, budget=self.budget, hrp=hrp, forecast=fc,
                            hold=hold)

    def ridge_forecast(self, features: Tensor) -> Tensor:
        """The ``ridge`` base's sized forecast [B, N]: a fixed linear layer over the scaled features
        (numpy twin: :func:`dea.allocation.base.linear_forecast`)."""
        return self.scale_features(features) @ self.ridge_weight.T + self.ridge_bias

    def desired(self, scores: Tensor, features: Tensor | None) -> Tensor:
        """Scores [B, n_scores] -> the exposure aimed at, inside [lower, caps] (module docstring)."""
        if self.mode == "legacy":
            return torch.maximum(self.caps * torch.tanh(scores), self.lower)
        if features is None:
            raise ModelError(f"a {self.mode}-mode policy needs the raw features to size its target")
        from dea.allocation.base import clip_between, vol_unit

        n = self.n_instruments
        sigma = features[:, self.sigma_idx]
        unit = vol_unit(torch, sigma, n, self.target_vol, self.periods_per_year)
        aim = self.max_tilt * torch.tanh(scores[:, :n]) * unit
        if self.mode == "base":
            aim = aim + self.base_exposure(features) * (1.0 + self.max_scale * torch.tanh(scores[:, n : 2 * n]))
        return clip_between(torch, aim, self.lower, self.caps)

    def bound(self, scores: Tensor, exposure: Tensor | None = None, features: Tensor | None = None) -> Tensor:
        """Scores -> bounded target exposure.

        ``desired`` (see :meth:`desired`); with partial adjustment (Garleanu & Pedersen 2013:
        under trading costs the optimal policy trades a fixed share of the way from the current
        position towards an aim) ``target = held + rate * (desired - held)``, ``held`` being
        ``exposure`` clipped to the bounds and ``rate`` a learned per-instrument share in (0, 1);
        then the differentiable gross-leverage projection.
        """
        target = self.desired(scores, features)
        if self.partial_adjustment and exposure is not None:
            held = torch.maximum(torch.minimum(exposure, self.caps), self.lower)
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


def output_head(n_in: int, spec: PolicySpec, n_out: int | None = None) -> nn.Linear:
    """The scores layer. Exactly zero in ``base``/``vol`` modes (an untrained policy is its base);
    near zero (std 0.01) in the legacy mode, whose tanh(0) = 0 target would otherwise never move."""
    head = nn.Linear(n_in, spec.scores_per_instrument * spec.n_instruments if n_out is None else n_out)
    if spec.mode == "legacy":
        nn.init.normal_(head.weight, std=0.01)
    else:
        nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


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
