"""The experiment config: one YAML file describing everything a run does.

``load_config`` reads YAML, applies ``--set key=value`` overrides, validates with frozen
pydantic models that reject unknown keys, and remembers the file's folder so relative data paths
resolve the same way whatever the working directory. ``config_hash`` is the SHA-256 of the
canonical JSON of the resolved config (DESIGN.md), stamped into every model DEA exports.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from dea.backtest.config import BacktestConfig, CostsConfig
from dea.config.accounts import AccountsConfig, resolve_accounts
from dea.config.base import StrictModel
from dea.config.drift import DriftConfig
from dea.config.learning import ModelConfig, ObjectiveConfig, TrainingConfig, TuningConfig
from dea.config.retrain import RetrainConfig
from dea.config.serving import ServingConfig
from dea.config.stress import StressConfig
from dea.config.tracking import TrackingConfig
from dea.data.config import DataConfig
from dea.errors import ConfigError
from dea.timeutil import parse_duration
from dea.features.config import FeaturesConfig
from dea.guards.config import GuardsConfig
from dea.risk.config import RiskConfig
from dea.execution.config import ExecutionConfig  # noqa: I001 - kept apart from the block above (merges)


class ExperimentConfig(StrictModel):
    name: str = "experiment"
    data: DataConfig
    features: FeaturesConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    stress: StressConfig = Field(default_factory=StressConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _no_option_instruments(self) -> "ExperimentConfig":
        """Options are not linear exposures: the policy, the backtest kernels, the live loop and
        the paper venue hold spot, perpetuals and futures only, so an option among
        ``data.instruments`` is refused here, when any command (``serve`` included) loads the
        config, instead of deep inside the first component that meets it."""
        opts = [i.symbol for i in self.data.instruments if i.kind == "option"]
        if opts:
            raise ValueError(
                f"data.instruments {opts} are options; training, the backtest, serve and the paper venue trade "
                "spot, perpetuals and futures only. Option positions go through the options overlay "
                "(dea options-overlay CONFIG) and their greeks through risk.greeks budgets "
                "(RiskEngine.check_option_order / apply(option_greeks=...))"
            )
        return self

    @model_validator(mode="after")
    def _accounts_resolve(self) -> "ExperimentConfig":
        """Every instrument has one account whose collateral it can settle in (checked at load)."""
        try:
            resolve_accounts(self.data.instruments, self.accounts)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        symbols = set(self.data.symbols)
        for inst in self.data.instruments:
            if inst.roll_to is not None and inst.roll_to not in symbols:
                raise ValueError(f"instrument {inst.symbol!r} rolls to {inst.roll_to!r}, not one of {sorted(symbols)}")
        return self

    @model_validator(mode="after")
    def _base_features(self) -> "ExperimentConfig":
        """Add the features the base allocation (and the vol-scaled adjustment) reads, if absent,
        so ``model.base`` works without the user listing them (the resolved config shows them)."""
        m = self.model
        uses_vol = m.base.kind != "none" or m.adjust.vol_scaling
        if not uses_vol:
            return self
        from dea.allocation.base import required_features
        from dea.features.config import FeatureItem

        vol_rows, mom_rows = self.base_rows
        have = {(f.name, tuple(sorted(f.params.items())), f.instruments is None) for f in self.features.set}
        extra = []
        for item in required_features(m.base.kind, vol_rows, mom_rows, self.hrp_rows, m.base.hrp_refit,
                                      m.base.hold_rebalance):
            key = (item["name"], tuple(sorted(item["params"].items())), True)
            if key not in have:
                extra.append(FeatureItem(**item))
        if extra:
            feats = self.features.model_copy(update={"set": [*self.features.set, *extra]})
            object.__setattr__(self, "features", feats)
        return self

    @property
    def base_rows(self) -> tuple[int, int]:
        """(volatility window, momentum horizon) of ``model.base`` in decision rows."""
        step = parse_duration(self.data.clock.step)
        b = self.model.base
        return (max(2, int(round(parse_duration(b.vol_lookback) / step))),
                max(2, int(round(parse_duration(b.momentum_lookback) / step))))

    @property
    def hrp_rows(self) -> int:
        """``model.base.hrp_lookback`` in decision rows (the ``hrp_weight`` feature's window, >= 3)."""
        return max(3, int(round(parse_duration(self.model.base.hrp_lookback) / parse_duration(self.data.clock.step))))

    @property
    def base_dir(self) -> Path:
        """Folder that relative data paths resolve against (the config file's folder)."""
        return self._base_dir

    def resolve_path(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self._base_dir / p).resolve()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> "ExperimentConfig":
        """Return a new validated config with dotted-key overrides applied."""
        raw = self.to_dict()
        apply_overrides(raw, overrides)
        return validate_config(raw, self._base_dir)


def _parse_value(text: str) -> Any:
    """Parse an override value as a YAML scalar/list; dates stay ISO strings (configs hold text)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (datetime.date, datetime.datetime)):
        return text.strip()
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> None:
    """Apply ``a.b.c=value`` overrides in place (values parsed as YAML scalars/lists)."""
    items = overrides.items() if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        parsed = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key.path=value")
            key, value = item.split("=", 1)
            parsed.append((key.strip(), _parse_value(value)))
        items = parsed
    for key, value in items:
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError) as exc:
                    raise ConfigError(f"override {key!r}: {'.'.join(parts[: i + 1])} is not a list index") from exc
            else:
                if part not in node or not isinstance(node[part], (dict, list)):
                    node[part] = {}
                node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key (not a field of this section)")
        else:
            got = repr(err.get("input"))
            # a whole-config check's input is the whole config: the message names what is wrong
            shown = "" if loc == "<root>" or len(got) > 300 else f" (got {got})"
            lines.append(f"  {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], base_dir: Path | None = None, source: str = "<dict>") -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    cfg._base_dir = (base_dir or Path.cwd()).resolve()
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, override and validate an experiment YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    from dea.execution.calibration import merge_cost_fragment  # costs calibrated from fills

    merge_cost_fragment(raw, path.parent)
    if overrides:
        apply_overrides(raw, overrides)
    return validate_config(raw, path.parent, str(path))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(cfg: ExperimentConfig) -> str:
    """SHA-256 of the canonical JSON of the resolved config."""
    return hashlib.sha256(canonical_json(cfg.to_dict()).encode()).hexdigest()
