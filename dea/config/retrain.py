"""``retrain`` section: scheduled champion/challenger retraining and its promotion rule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel, duration_field


class RetrainConfig(StrictModel):
    """The challenger is trained on the newest ``train_window`` of data; both models are then
    evaluated on the same most recent ``eval_window`` (never seen by the challenger) with the
    experiment's costs and risk engine. Promotion needs ``challenger - champion >= margin`` on
    ``metric`` (sign flipped for ``minimize``), no hard risk-limit breach, drawdown within
    ``risk.drawdown.hard`` and, when ``stress_gate``, zero breaches in every stress scenario.
    """

    metric: str = "sharpe"
    direction: Literal["maximize", "minimize"] = "maximize"
    margin: float = Field(default=0.0, ge=0, description="required improvement, in metric units")
    train_window: str | None = Field(default=None, description="newest history to train on; None = all")
    eval_window: str = Field(default="30d", description="most recent out-of-sample window")
    gap: str = Field(default="0s", description="purge between the train and eval windows")
    tuned_config: str | None = Field(default=None, description="best-config YAML from dea tune")
    stress_gate: bool = True
    lock_file: str = "dea_retrain.lock"
    stale_lock_after: str = Field(default="12h", description="a lock older than this whose pid is gone is stale")
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    artifacts: str = Field(default="artifacts/retrain", description="folder for challenger ONNX files")

    _dur = duration_field("train_window", "eval_window", "gap", "stale_lock_after")
