"""``model``, ``objective``, ``training`` and ``tuning`` sections (pure pydantic: no torch here)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dea.config.base import StrictModel, duration_field
from dea.errors import ConfigError
from dea.timeutil import parse_duration, parse_timestamp


class BaseConfig(StrictModel):
    """``model.base``: the causal allocation the learned part adjusts (:mod:`dea.allocation.base`).

    ``none`` = a plain policy. Lookbacks are durations on the decision clock ("30d"); the needed
    features (``rvol_cc`` over ``vol_lookback``, ``logret`` over ``momentum_lookback``,
    ``hrp_weight`` over ``hrp_lookback`` refitted every ``hrp_refit``) are added to the feature set
    automatically. ``target_vol`` (annualised) sizes ``vol_target``/``tsmom`` and the
    volatility-scaled adjustment; ``budget`` is the gross of ``equal_weight``/``inverse_vol``/``hrp``/
    ``buy_and_hold`` (``hold_weight``, re-bought every ``hold_rebalance``)
    and, for ``ridge``, the most the forecast may hold in vol-target units (``budget * tanh(f) * unit``;
    the forecast is the ridge of ``model.forecast_pooling`` / ``model.forecast_risk_aversion``,
    fitted in closed form on each fold's fit block and frozen before the adjustment trains).
    """

    kind: Literal["none", "equal_weight", "inverse_vol", "vol_target", "tsmom", "buy_and_hold", "hrp", "ridge"] = "none"
    vol_lookback: str = "30d"
    momentum_lookback: str = "30d"
    hrp_lookback: str = "90d"
    hrp_refit: str = "1d"
    hold_rebalance: str = Field(
        default="365d", description="buy_and_hold: the equal-value portfolio is re-bought every this long (UTC grid)"
    )
    target_vol: float = Field(default=0.3, gt=0, le=5)
    budget: float = Field(default=1.0, gt=0, le=10)

    _dur = duration_field("vol_lookback", "momentum_lookback", "hrp_lookback", "hrp_refit", "hold_rebalance")


class AdjustConfig(StrictModel):
    """``model.adjust``: how far the learned part may move the target away from the base.

    ``target = clip(base * (1 + max_scale * tanh(u)) + max_tilt * tanh(v) * unit)``, with ``unit``
    the exposure giving an instrument its 1/N share of ``base.target_vol`` (risk fixed by
    construction, as in Deep Momentum Networks). The output layer starts at exactly zero, so an
    untrained policy IS its base, and ``shrink`` (decoupled weight decay on that layer) pulls the
    adjustment back to zero: with no signal the policy converges to its base.
    With ``base.kind: none`` the target is ``max_tilt * tanh(v) * unit`` when ``vol_scaling`` is
    on (default), else the legacy ``cap * tanh(score)``.
    """

    max_scale: float = Field(default=0.5, ge=0, lt=1, description="scale of the base in [1 - s, 1 + s]")
    max_tilt: float = Field(default=0.5, ge=0, le=5, description="tilt in units of the vol-target exposure")
    shrink: float = Field(default=1.0, ge=0, description="weight decay of the adjustment's output layer")
    vol_scaling: bool = False


class ModelConfig(StrictModel):
    """``model``: the policy's architecture over its base (``kind: base`` = the base alone, untrained;
    ``forecast`` = a two-stage policy: a ridge forecast sized by a cost-aware mean-variance rule)."""

    kind: Literal["linear", "mlp", "shared", "gru", "tcn", "attention", "forecast", "base"] = "mlp"
    base: BaseConfig = Field(default_factory=BaseConfig)
    adjust: AdjustConfig = Field(default_factory=AdjustConfig)
    hidden: list[int] = Field(default_factory=lambda: [64, 64])
    dropout: float = Field(default=0.0, ge=0, lt=1)
    name: str = "dea-policy"
    exposure_scale: Literal["tanh"] = "tanh"
    ensemble: int = Field(
        default=3, ge=1, description="k seeds averaged into one exported graph; their spread is the dispersion output"
    )
    forecast_risk_aversion: float = Field(
        default=1.0, gt=0, description="forecast kind: exposure = forecast Sharpe / risk_aversion, in vol-target units"
    )
    forecast_pooling: Literal["pooled", "per_instrument"] = Field(
        default="pooled",
        description="forecast kind: one set of coefficients per feature stem shared by every instrument "
        "(pooled: N times the data per coefficient) or a separate regression per instrument on all columns",
    )
    partial_adjustment: bool = Field(
        default=True,
        description="trade a learned share of the way from the held towards the desired exposure each step",
    )
    initial_trade_rate: float = Field(
        default=0.1, gt=0, lt=1, description="starting share of the gap traded per step (learned from there)"
    )
    kernel_size: int = Field(
        default=4, ge=2, description="tcn: convolution kernel (dilations k**layer); attention: window length"
    )


class ObjectiveConfig(StrictModel):
    """What the policy maximises (see ``training/objective.py``; returns are net of costs).

    ``mean_variance``: annualised mean - risk_aversion/2 * annualised variance (its optimum has a
    natural size: exposure ~ Sigma^-1 mu / risk_aversion, whatever the bar length).
    ``sharpe`` / ``sortino``: annualised ratios, which do not depend on the size of the position;
    since the square-root impact makes small positions relatively cheaper, a pure ratio would
    drift towards ever smaller exposures, so ``target_vol`` pins the size with the penalty
    ``vol_penalty * (annualised vol / target_vol - 1)**2`` (``target_vol: null`` disables it).
    ``cvar``: mean - cvar_weight * CVaR_alpha (per step). ``turnover_penalty`` adds
    ``turnover_penalty * mean per-step sum |dw|`` to any loss.
    """

    loss: Literal["mean_variance", "sharpe", "sortino", "cvar"] = "sharpe"
    risk_aversion: float = Field(default=1.0, ge=0)
    cvar_alpha: float = Field(default=0.05, gt=0, lt=1)
    cvar_weight: float = Field(default=1.0, ge=0)
    turnover_penalty: float = Field(default=0.0, ge=0)
    target_vol: float | None = Field(default=0.3, gt=0, description="annualised; sharpe/sortino size anchor")
    vol_penalty: float = Field(default=1.0, ge=0)


def steps_of(value: int | str, step_ns: int | None, field: str) -> int:
    """Decision steps of ``value``: an int as is, a duration (``"30d"``) divided by the clock step
    ``step_ns`` and rounded up, so that a purge or embargo covers at least the time it names."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{field} must be a number of decision steps or a duration like '30d', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{field} must be >= 0 decision steps, got {value}")
        return value
    if step_ns is None:
        raise ConfigError(
            f"{field}={value!r} is a duration: the decision-clock step is needed to turn it into rows "
            "(pass clock= or step_ns=)"
        )
    if step_ns <= 0:
        raise ConfigError(f"{field}: the decision-clock step must be positive, got {step_ns} ns")
    ns = parse_duration(value)
    if ns < 0:
        raise ConfigError(f"{field} must be a non-negative duration, got {value!r}")
    return -(-ns // int(step_ns))


class SplitConfig(StrictModel):
    scheme: Literal["expanding", "sliding"] = "expanding"
    n_folds: int = Field(default=4, ge=1)
    train_min: float = Field(default=0.4, gt=0, lt=1, description="share of history in the first train")
    val_share: float = Field(default=0.15, gt=0, lt=1, description="share of each train part for validation")
    purge: int | str = Field(
        default=0,
        description="purged before each evaluation block: decision steps, or a duration ('30d', '12h') "
        "rounded up to whole steps of the decision clock",
    )
    embargo: int | str = Field(
        default=0, description="embargoed after each evaluation block: decision steps or a duration, like purge"
    )

    @field_validator("purge", "embargo", mode="before")
    @classmethod
    def _steps_or_duration(cls, v: Any, info: Any) -> int | str:
        try:
            steps_of(v, 1, info.field_name)  # any positive step checks the value; the clock's comes later
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    def steps(self, name: Literal["purge", "embargo"], step_ns: int | None) -> int:
        """``purge`` or ``embargo`` in decision steps: an int as is, a duration divided by the clock
        step ``step_ns`` and rounded up (a purge covers at least the time it names)."""
        return steps_of(getattr(self, name), step_ns, f"training.splits.{name}")

    def gap_steps(self, step_ns: int | None = None) -> int:
        """Rows between a training part and the evaluation block after it (purge + embargo)."""
        return self.steps("purge", step_ns) + self.steps("embargo", step_ns)


class TrainingConfig(StrictModel):
    seed: int = 0
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=32, ge=1)
    seq_len: int = Field(default=64, ge=2)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    trade_rate_lr_scale: float = Field(
        default=25.0,
        gt=0,
        description="learning-rate multiplier of the per-instrument trade-rate logits: one scalar each, "
        "which must be able to travel from slow (0.05) to fast (0.9) trading within a few epochs",
    )
    patience: int = Field(default=5, ge=1)
    min_epochs: int = Field(
        default=3, ge=0, description="epochs trained before early stopping may stop (noise cannot end a fit at epoch 0)"
    )
    monitor: Literal["val_loss", "val_loss_smooth"] = Field(
        default="val_loss_smooth",
        description="early stopping and best-weights metric; 'val_loss_smooth' = exponential average over "
        "epochs (half weight on the latest), steadier when the validation block is short and returns noisy",
    )
    burn_in: int | None = Field(
        default=None,
        ge=0,
        description="rows rolled before each training window without scoring them, so the window starts "
        "from the exposure (and state) the policy itself would hold (None = seq_len // 2)",
    )
    seq_stride: int | None = Field(
        default=None,
        ge=1,
        description="rows between training window starts (None = fit rows // 100, within [1, seq_len // 4]: "
        "short daily histories get densely overlapping windows, long intraday ones a thinner grid)",
    )
    gradient_clip: float | None = Field(default=1.0, gt=0)
    num_threads: int = Field(
        default=1,
        ge=1,
        description="threads of each compute pool of a training process: torch intra- and inter-op, numba, OpenMP/BLAS. "
        "1 by default: DEA's policies are small enough that a second thread buys nothing (an hourly fit took 22.8 s "
        "on one thread, 21.9 s on two), while two 2-thread trainings on 2 cores spin-wait on each other (OpenMP) and "
        "ran 10x slower each; cores are used by fitting folds and members in parallel (training.workers)",
    )
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto",
        description="processes that fit the walk-forward's folds, candidates and ensemble members in parallel, each "
        "with training.num_threads threads. auto: as many as the cores allow (cores // num_threads, at most one per "
        "fit) once the data has 10,000 usable rows, else 1 (starting a process, ~5 s of imports, pays only for "
        "fits that take longer); 1 = every fit in this process. Results are the same either way",
    )
    deterministic: bool = True
    progress_bar: bool = True
    final_refit: bool = Field(
        default=True,
        description="train the exported model on all data (latest block for validation); false = export the last fold's",
    )
    export_onnx: bool = Field(
        default=True, description="export the final policy to ONNX (parity-gated) and register it when tracking"
    )
    warm_start_steps: int | None = Field(
        default=None, ge=0, description="recurrent policies: rows rolled before each test block to warm the state (None = seq_len)"
    )
    splits: SplitConfig = Field(default_factory=SplitConfig)
    test_start: str | None = Field(
        default=None,
        description="ISO date/time (UTC) where out-of-sample begins: the walk-forward test blocks split "
        "[test_start, end) into n_folds blocks and train only before each (splits.train_min is then unused); "
        "None = the test blocks follow the first train_min share of the history",
    )
    trainer: dict[str, Any] = Field(
        default_factory=dict, description="extra lightning.Trainer options (devices, strategy, ...)"
    )
    baselines: list[str] = Field(
        default_factory=lambda: ["buy_and_hold", "equal_weight", "inverse_vol", "tsmom", "hrp", "ridge", "hgb"]
    )
    candidates: list[dict[str, Any]] | None = Field(
        default=None,
        description="nested selection: config overrides (dotted keys) tried per fold and chosen on the fold's "
        "validation block only; {} = the configured model, {'model.kind': 'base'} = the base alone. None = "
        "automatic: the configured model, the two-stage forecast policy (when the policy is volatility-sized) "
        "and the base alone (when there is one)",
    )
    selection_rule: Literal["one_se", "best"] = Field(
        default="one_se",
        description="nested selection on the validation blocks' net Sharpe: 'best' takes the highest; 'one_se' "
        "(the one-standard-error rule) the simplest candidate within one standard error of the best's Sharpe "
        "difference, so that noise on a short validation block does not buy complexity",
    )
    low_vol_share: float = Field(
        default=0.5, ge=0, le=1, description="flag a policy whose out-of-sample vol is below this share of its target"
    )

    @field_validator("test_start", mode="before")
    @classmethod
    def _iso_test_start(cls, v: Any) -> str | None:
        if isinstance(v, (datetime.date, datetime.datetime)):  # unquoted YAML dates
            v = v.isoformat()
        if v is not None:
            try:
                parse_timestamp(v)
            except ConfigError as exc:
                raise ValueError(f"test_start must be an ISO date or date-time (UTC), e.g. '2024-01-01': {exc}") from None
        return v

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, v: list[str]) -> list[str]:
        from dea.backtest.config import BASELINE_NAMES

        known = (*BASELINE_NAMES, "ridge", "hgb")
        unknown = [b for b in v if b not in known]
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; known: {list(known)}")
        if len(set(v)) != len(v):
            raise ValueError(f"baselines listed twice: {v}")
        return v

    @property
    def burn_in_steps(self) -> int:
        """Unscored rows before each training window (``burn_in``, default ``seq_len // 2``)."""
        return self.seq_len // 2 if self.burn_in is None else self.burn_in

    @property
    def window_steps(self) -> int:
        """Rows of one training window: burn-in plus scored steps."""
        return self.burn_in_steps + self.seq_len


class SearchParam(StrictModel):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "SearchParam":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical search parameter needs 'choices'")
        elif self.low is None or self.high is None or self.high < self.low:
            raise ValueError(f"{self.type} search parameter needs low <= high")
        return self


class TuningConfig(StrictModel):
    metric: str = "sharpe"
    direction: Literal["maximize", "minimize"] = "maximize"
    space: dict[str, SearchParam] = Field(default_factory=dict, description="dotted config key -> range")
    storage: str | None = None
    study: str = "dea-study"
    pruner: Literal["median", "none"] = "median"
    seed: int = 0
