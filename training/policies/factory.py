"""Build, save and load policies (JSON spec + tensor state dict; never a pickled module)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dea.errors import ModelError
from dea.risk.engine import contract_terms
from training.policies.base import Policy, PolicySpec
from training.policies.feedforward import BasePolicy, ForecastPolicy, LinearPolicy, MLPPolicy, SharedPolicy
from training.policies.recurrent import AttentionPolicy, GRUPolicy, TCNPolicy

if TYPE_CHECKING:  # pragma: no cover
    from dea.config import ExperimentConfig

POLICY_KINDS: dict[str, type[Policy]] = {
    "base": BasePolicy,
    "forecast": ForecastPolicy,
    "linear": LinearPolicy,
    "mlp": MLPPolicy,
    "shared": SharedPolicy,
    "gru": GRUPolicy,
    "tcn": TCNPolicy,
    "attention": AttentionPolicy,
}

SPEC_FILE = "policy_spec.json"
STATE_FILE = "policy_state.pt"


def build_policy(spec: PolicySpec) -> Policy:
    """Instantiate the module for ``spec.kind`` (weights freshly initialised)."""
    try:
        cls = POLICY_KINDS[spec.kind]
    except KeyError:
        raise ModelError(f"unknown policy kind {spec.kind!r}; known: {sorted(POLICY_KINDS)}") from None
    try:
        return cls(spec)
    except ValueError as exc:
        raise ModelError(f"policy {spec.kind!r}: {exc}") from None


def exposure_caps(cfg: "ExperimentConfig") -> tuple[float, ...]:
    """Per-instrument |w| caps: the upper bounds of :func:`~dea.risk.engine.exposure_bounds`
    (``risk.max_exposure``, and at most 1 for spot in a cash account), as the risk engine reads them."""
    from dea.errors import RiskError
    from dea.risk.engine import exposure_bounds

    try:
        _, upper = exposure_bounds(cfg.data.instruments, cfg.accounts, cfg.risk)
    except RiskError as exc:
        raise ModelError(str(exc)) from None
    return tuple(float(c) for c in upper)


def lower_bounds(cfg: "ExperimentConfig", caps: Sequence[float]) -> tuple[float, ...]:
    """Per-instrument lower exposure bound from the risk engine's
    :func:`~dea.risk.engine.exposure_bounds` (0 for spot without a margin account), never below
    ``-cap``."""
    from dea.risk.engine import exposure_bounds

    lower, _ = exposure_bounds(cfg.data.instruments, cfg.accounts, cfg.risk)
    return tuple(max(float(lo), -float(c)) for lo, c in zip(lower, caps))


def spec_from_config(cfg: "ExperimentConfig", feature_names: Sequence[str]) -> PolicySpec:
    """Policy spec from the experiment's ``model`` and ``risk`` sections and the feature order.

    The gross cap is :func:`~dea.risk.engine.gross_limit` (``min(risk.max_gross, risk.max_leverage)``
    and the account limits: 1 for unlevered spot): the policy never proposes what the risk engine
    would have to cut. Spot instruments are long-only (:func:`lower_bounds`).
    """
    from dea.risk.engine import gross_limit
    from dea.timeutil import NS_PER_YEAR, parse_duration

    m = cfg.model
    caps = exposure_caps(cfg)
    vol_rows, mom_rows = cfg.base_rows
    ppy = cfg.backtest.periods_per_year or NS_PER_YEAR / parse_duration(cfg.data.clock.step)
    return PolicySpec(
        kind=m.kind,
        feature_names=tuple(feature_names),
        instruments=tuple(cfg.data.symbols),
        caps=caps,
        max_gross=gross_limit(cfg.risk, cfg.data.instruments, cfg.accounts),
        hidden=tuple(m.hidden),
        dropout=float(m.dropout),
        clip=cfg.features.scaling.clip if cfg.features.scaling.method != "none" else None,
        kernel_size=int(m.kernel_size),
        partial_adjustment=bool(m.partial_adjustment),
        initial_trade_rate=float(m.initial_trade_rate),
        lower=lower_bounds(cfg, caps),
        base={"kind": m.base.kind, "vol_window": vol_rows, "momentum_horizon": mom_rows,
              "target_vol": m.base.target_vol, "budget": m.base.budget,
              "hrp_window": cfg.hrp_rows, "hrp_refit": m.base.hrp_refit, "hold_rebalance": m.base.hold_rebalance},
        adjust={"max_scale": m.adjust.max_scale, "max_tilt": m.adjust.max_tilt,
                "vol_scaling": m.adjust.vol_scaling},
        periods_per_year=float(ppy),
        extra={"instrument_terms": contract_terms(cfg.data.instruments, cfg.accounts, cfg.risk)},
    )


def save_policy(policy: Policy, folder: str | Path) -> dict[str, Path]:
    """Write ``policy_spec.json`` and ``policy_state.pt`` (tensors only) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, state_path = folder / SPEC_FILE, folder / STATE_FILE
    spec_path.write_text(json.dumps(policy.spec.to_dict(), indent=2, sort_keys=True))
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    torch.save(state, state_path)
    return {"spec": spec_path, "state": state_path}


def load_policy(folder: str | Path) -> Policy:
    """Rebuild a policy saved by :func:`save_policy` (``torch.load(weights_only=True)``)."""
    folder = Path(folder)
    spec_path, state_path = folder / SPEC_FILE, folder / STATE_FILE
    for p in (spec_path, state_path):
        if not p.is_file():
            raise ModelError(f"policy folder {folder}: missing {p.name}")
    try:
        spec = PolicySpec.from_dict(json.loads(spec_path.read_text()))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{spec_path}: not valid JSON: {exc}") from None
    policy = build_policy(spec)
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    try:
        policy.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{state_path}: weights do not match spec {spec.kind!r}: {exc}") from None
    policy.eval()
    return policy
