"""Fit one policy on one fold: scaler on the fit block, Lightning with early stopping.

Reproducibility: ``lightning.seed_everything(seed)`` before the module is built, a seeded
DataLoader generator, ``Trainer(deterministic=True)`` and single-process loading, so the same
config, data and seed give bit-identical weights and metrics.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from dea.config import ExperimentConfig
from dea.progress import format_duration, is_terminal
from training.datamodule import FoldDataModule, TrainingData
from training.lightning_module import PolicyLearner
from training.policies import Policy, build_policy, spec_from_config
from training.scaling import fit_fold_scaler
from training.splits import Fold


@dataclass
class FoldFit:
    """A trained policy and how its training went."""

    fold: Fold
    policy: Policy
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    best_epoch: int = -1
    best_val_loss: float = float("nan")  # of the monitored metric (training.monitor)
    steps: int = 0
    fit_seconds: float = 0.0
    n_windows: int = 0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.fit_seconds if self.fit_seconds > 0 else float("nan")


class BestWeights(Callback):
    """Keep the weights of the epoch with the lowest monitored value, in memory.

    EarlyStopping stops training but leaves the *last* weights in the module; the fold's model
    must be the one that validated best.
    """

    def __init__(self, monitor: str = "val_loss") -> None:
        self.monitor = monitor
        self.best = float("inf")
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        v = float(value)
        if np.isfinite(v) and v < self.best:
            self.best = v
            self.best_epoch = trainer.current_epoch
            self.state = copy.deepcopy(pl_module.state_dict())


class EpochHistory(Callback):
    """Collect the epoch-level metrics Lightning logged (for MLflow ``log_batch`` later)."""

    def __init__(self, on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.on_epoch = on_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row["epoch"] = float(trainer.current_epoch)
        self.rows.append(row)
        if self.on_epoch is not None:
            self.on_epoch(trainer.current_epoch, row)


log = logging.getLogger("dea.progress.fit")

#: Lightning's per-trainer banners (GPU/TPU available, the litlogger tip, "max_epochs reached")
_BANNER_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


#: model kinds fitted in closed form (no gradient descent, no ensemble: deterministic)
CLOSED_FORM = ("base", "forecast")


def metric_text(row: dict[str, float], keys: Sequence[str] = ("train_loss", "val_loss", "val_sharpe")) -> str:
    return " ".join(f"{k} {row[k]:.3f}" for k in keys if k in row)


def fit_summary(label: str, epochs: int, seconds: float, best: tuple[int, dict[str, float]] | None, monitor: str) -> str:
    """The one line a fit logs when it ends: epochs, time, and its best epoch (``(epoch,
    metrics)``, 0-based) or that no epoch had a finite ``monitor``."""
    took = format_duration(seconds)
    if best is None:
        return f"{label}: {epochs} epochs in {took}, no finite {monitor}"
    epoch, row = best
    return f"{label}: {epochs} epochs in {took}, best epoch {epoch + 1} ({metric_text(row)})"


class FitLines(Callback):
    """Training progress for a log: one line per fit (INFO) and one per epoch (DEBUG, shown by
    ``--verbose``) instead of Lightning's bar, which a file receives as ``\\r``-redrawn frames."""

    def __init__(self, label: str, max_epochs: int, monitor: str) -> None:
        self.label = label
        self.max_epochs = max_epochs
        self.monitor = monitor
        self.epochs = 0
        self.best: tuple[float, int, dict[str, float]] | None = None
        self._t0 = time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.epochs = trainer.current_epoch + 1
        value = row.get(self.monitor)
        if value is not None and np.isfinite(value) and (self.best is None or value < self.best[0]):
            self.best = (value, trainer.current_epoch, row)
        log.debug("%s: epoch %d/%d %s", self.label, self.epochs, self.max_epochs, metric_text(row))

    def summary(self) -> str:
        best = None if self.best is None else self.best[1:]
        return fit_summary(self.label, self.epochs, time.perf_counter() - self._t0, best, self.monitor)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log.info(self.summary())


@contextlib.contextmanager
def quiet_lightning_banners() -> Iterator[None]:
    """Hold Lightning's rank-zero info lines (repeated for every fold and seed, and saying nothing
    about the run) back to warnings while a trainer is built and fits. Kept only when someone
    asked for them by name: ``dea --verbose`` sets those loggers to DEBUG."""
    loggers = [logging.getLogger(n) for n in _BANNER_LOGGERS]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.level != logging.DEBUG:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before):
            lg.setLevel(level)


def live_bar_wanted(progress_bar: bool) -> bool:
    """Lightning's live bar only on a terminal (it writes to stdout) and when progress is shown."""
    return progress_bar and is_terminal(sys.stdout) and logging.getLogger("dea.progress").isEnabledFor(logging.INFO)


def fold_policy(cfg: ExperimentConfig, data: TrainingData, fold: Fold) -> Policy:
    """A fresh policy for ``fold`` before any training: the fit block's scaler baked in and, for
    ``model.base.kind: ridge``, its base forecast fitted in closed form on the fit block (frozen)."""
    fit_rows = fold.rows("fit")
    scaler = fit_fold_scaler(data.features, fit_rows[data.usable[fit_rows]], cfg.features.scaling, data.feature_names)
    policy = build_policy(spec_from_config(cfg, data.feature_names))
    policy.set_scaler(scaler.center, scaler.scale)
    if policy.base_kind == "ridge":
        from training.forecast_policy import fit_ridge_base

        fit_ridge_base(policy, cfg, data, fold)
    return policy


def fit_fold(
    cfg: ExperimentConfig,
    data: TrainingData,
    fold: Fold,
    *,
    seed: int | None = None,
    extra_callbacks: Sequence[Callback] = (),
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    label: str | None = None,
) -> FoldFit:
    """Train a fresh policy on ``fold`` and return it with its best validation weights.

    ``label`` names the fit in progress lines (default ``fold <i> seed <s>``)."""
    tc = cfg.training
    seed = tc.seed + fold.index if seed is None else seed
    torch.set_num_threads(tc.num_threads)
    L.seed_everything(seed, workers=True, verbose=False)

    policy = fold_policy(cfg, data, fold)
    if cfg.model.kind in CLOSED_FORM:
        # no gradient descent: the base alone has nothing to learn; the forecast policy is fitted in
        # closed form (ridge) and its trade rate chosen on the validation block
        t0 = time.perf_counter()
        history: list[dict[str, float]] = []
        if cfg.model.kind == "forecast":
            from training.forecast_policy import fit_forecast_policy

            history = fit_forecast_policy(policy, cfg, data, fold)
        policy.eval()
        return FoldFit(fold=fold, policy=policy, history=history, best_epoch=0, best_val_loss=float("nan"),
                       steps=0, fit_seconds=time.perf_counter() - t0, n_windows=0)

    stride = tc.seq_stride or max(1, min(tc.seq_len // 4, (fold.fit[1] - fold.fit[0]) // 100))
    burn_in = tc.burn_in_steps
    dm = FoldDataModule(
        data, fold, seq_len=tc.seq_len, stride=stride, batch_size=tc.batch_size, seed=seed, burn_in=burn_in
    )
    learner = PolicyLearner(
        policy,
        fee=data.market.fee,
        objective=cfg.objective,
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        periods_per_year=data.market.periods_per_year,
        burn_in=burn_in,
        trade_rate_lr_scale=tc.trade_rate_lr_scale,
        head_weight_decay=cfg.model.adjust.shrink if policy.mode != "legacy" else None,
    )
    best = BestWeights(tc.monitor)
    history = EpochHistory(on_epoch)
    callbacks: list[Callback] = [EarlyStopping(monitor=tc.monitor, patience=tc.patience, mode="min"), best, history]
    callbacks.extend(extra_callbacks)
    live = live_bar_wanted(tc.progress_bar) if "enable_progress_bar" not in tc.trainer else bool(tc.trainer["enable_progress_bar"])
    if not live:
        callbacks.append(FitLines(label or f"fold {fold.index} seed {seed}", tc.epochs, tc.monitor))
    trainer_opts: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": tc.epochs,
        "min_epochs": min(tc.min_epochs, tc.epochs),
        "deterministic": tc.deterministic,
        "enable_checkpointing": False,
        "logger": False,
        "enable_model_summary": False,
        "enable_progress_bar": live,
        "num_sanity_val_steps": 0,
        "gradient_clip_val": tc.gradient_clip,
    }
    trainer_opts.update(tc.trainer)
    t0 = time.perf_counter()
    with quiet_lightning_banners(), warnings.catch_warnings():
        # lightning 2.6 + torch 2.13: a deprecation inside lightning's own pytree helper
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer = L.Trainer(callbacks=callbacks, **trainer_opts)
        trainer.fit(learner, datamodule=dm)
    elapsed = time.perf_counter() - t0
    if best.state is not None:
        learner.load_state_dict(best.state)
    policy.eval()
    return FoldFit(
        fold=fold,
        policy=policy,
        history=history.rows,
        best_epoch=best.best_epoch,
        best_val_loss=best.best,
        steps=int(trainer.global_step),
        fit_seconds=elapsed,
        n_windows=dm.n_windows,
    )
