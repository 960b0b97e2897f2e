"""``dea tune``: hyperparameter search with Optuna over purged walk-forward folds.

What a trial does: the experiment config with the trial's values at the dotted keys of
``tuning.space`` is trained fold by fold exactly as ``dea train`` does (:func:`training.fit.
fit_fold`, scaler on each fold's fit rows, purge and embargo from ``training.splits``), each
fold's policy is rolled over its test block, and the stitched out-of-sample exposures go
through the backtester with the risk engine (:func:`training.evaluation.evaluate_strategy`).
The trial's value is ``tuning.metric`` of that out-of-sample backtest.

Pruning: optuna-integration's ``PyTorchLightningPruningCallback`` watches the walk-forward
validation curve — ``val_sharpe`` (or ``val_loss`` when minimising), reported at step
``fold * epochs + epoch`` so the pruner compares trials fold by fold, epoch by epoch.

Scale-out: every worker — a ``--jobs`` process here, or a ``dea tune`` on another machine —
opens the same study in shared storage (SQLite on one machine, PostgreSQL across machines;
the study stops at ``--trials`` finished trials in total, whoever runs them). RDB storage runs
with a heartbeat, so the trial of a worker that dies is marked failed and retried once.

Tracking: one MLflow parent run per study (its id is kept in the study, so workers on other
machines log under the same parent), one child run per trial. The best configuration is
written as a ready-to-train YAML; the summary gives the best trial's deflated Sharpe ratio with
the number of trials tried, because the best of 200 backtests is not one backtest.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dea.config.experiment import ExperimentConfig, apply_overrides, canonical_json, load_config, validate_config
from dea.config.learning import SearchParam
from dea.errors import ConfigError
from dea.progress import Progress

log = logging.getLogger(__name__)

PARENT_ATTR = "dea.mlflow_parent_run_id"
METRICS_ATTR = "dea.metrics"
#: trial user attribute holding the trial's MLflow run id (the dashboard shows it beside the trial)
RUN_ATTR = "mlflow_run_id"
#: sections whose change requires rebuilding the data (features, costs) for a trial
DATA_SECTIONS = ("data", "features", "costs")


# ------------------------------------------------------------------------------------ storage
def storage_url(url: str | None, out_dir: Path) -> str:
    """The Optuna storage URL to use: ``url`` (PostgreSQL URLs get the installed psycopg 3
    driver) or ``sqlite:///<out_dir>/optuna.db``."""
    if not url:
        out_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(out_dir / 'optuna.db').resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg2  # noqa: F401  (SQLAlchemy's default PostgreSQL driver)
        except ImportError:
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str) -> Any:
    """RDB storage with a heartbeat: a crashed worker's running trial fails and is retried.

    ``RetryHeartbeatStaleTrialCallback`` is Optuna's current name (``RetryFailedTrialCallback``
    is deprecated since 4.9); both it and ``heartbeat_interval`` are flagged experimental, which
    says nothing to a user, so that warning is held back here."""
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith("sqlite"):
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(
                url,
                heartbeat_interval=30,
                grace_period=120,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                engine_kwargs={"pool_pre_ping": True},
            )
    except Exception as exc:  # SQLAlchemy / driver errors: say which storage and why
        raise ConfigError(f"cannot open Optuna storage {_redact(url)}: {type(exc).__name__}: {exc}") from None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def open_study(cfg: ExperimentConfig, storage: str, study: str, seed_offset: int = 0) -> Any:
    """Create or join the study (TPE seeded with ``tuning.seed + seed_offset``; median pruner or
    none). Workers need different offsets, or their random start-up trials would coincide."""
    import optuna

    tc = cfg.tuning
    sampler = optuna.samplers.TPESampler(seed=tc.seed + seed_offset, multivariate=True, constant_liar=True)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, cfg.training.epochs // 3))
        if tc.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    st = optuna.create_study(
        storage=open_storage(storage),
        study_name=study,
        direction=tc.direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if st.metric_names != [tc.metric]:  # the dashboard and plots then say "sharpe", not "Objective 0"
        import warnings

        with warnings.catch_warnings():  # "experimental since 3.2": stable in practice, noise to a user
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            st.set_metric_names([tc.metric])
    return st


# ------------------------------------------------------------------------------------ search space
def suggest(trial: Any, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """Ask ``trial`` for a value of every dotted key of the search space."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "categorical":
            out[key] = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            out[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            out[key] = trial.suggest_float(key, float(p.low), float(p.high), step=p.step, log=p.log)
    return out


def check_space(cfg: ExperimentConfig) -> None:
    """Refuse an empty space or keys that are not config fields (checked on the space's midpoint)."""
    space = cfg.tuning.space
    if not space:
        raise ConfigError("tuning.space is empty: declare at least one dotted config key with a range")
    probe = {}
    for key, p in space.items():
        if p.type == "categorical":
            probe[key] = p.choices[0]
        elif p.type == "int":
            probe[key] = int(p.low)
        else:
            probe[key] = float(p.low)
    try:
        cfg.with_overrides(probe)
    except ConfigError as exc:
        raise ConfigError(f"tuning.space does not fit the config: {exc}") from None


# ------------------------------------------------------------------------------------ pruning
class _EpochAt:
    """Stands in for the LightningModule in the pruning callback: only ``current_epoch`` is read."""

    def __init__(self, epoch: int) -> None:
        self.current_epoch = epoch


def pruning_callback(trial: Any, monitor: str, step_offset: int) -> Any:
    """optuna-integration's Lightning pruning callback, reporting at ``step_offset + epoch``."""
    from optuna_integration import PyTorchLightningPruningCallback

    class WalkForwardPruning(PyTorchLightningPruningCallback):
        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            super().on_validation_end(trainer, _EpochAt(step_offset + pl_module.current_epoch))

    return WalkForwardPruning(trial, monitor=monitor)


# ------------------------------------------------------------------------------------ objective
def spawn_safe(cfg: ExperimentConfig) -> ExperimentConfig:
    """``training.trainer.strategy: ddp`` re-launches the *whole command* in its other ranks,
    which inside a tuning worker would start extra trials; ``ddp_spawn`` starts the ranks from
    the trial itself (optuna-integration's pruning callback supports it with RDB storage)."""
    strategy = cfg.training.trainer.get("strategy")
    if strategy == "ddp":
        log.info("tuning: training.trainer.strategy ddp -> ddp_spawn (ranks start inside the trial)")
        return cfg.with_overrides({"training.trainer.strategy": "ddp_spawn"})
    return cfg



@dataclass
class TrialOutcome:
    value: float
    metrics: dict[str, float]  # dea.metrics of the out-of-sample span (sharpe, skew, kurtosis, n_periods, ...)


def _data_key(cfg: ExperimentConfig) -> str:
    d = cfg.to_dict()
    return canonical_json({k: d.get(k) for k in DATA_SECTIONS})


def walk_forward_value(cfg: ExperimentConfig, prepared: Any, trial: Any | None = None) -> TrialOutcome:
    """Train every walk-forward fold of ``cfg`` and score the stitched out-of-sample backtest."""
    import optuna

    from training.evaluation import evaluate_strategy, stitch
    from training.fit import fit_fold
    from training.pipeline import _warm_state
    from training.rollout_eval import run_block
    from training.splits import walk_forward_folds

    tc = cfg.training
    data = prepared.data
    folds = walk_forward_folds(data.usable, tc.splits, min_fit=tc.seq_len, clock=data.market.clock, test_start=tc.test_start)
    monitor = "val_sharpe" if cfg.tuning.direction == "maximize" else "val_loss"
    warm = tc.warm_start_steps if tc.warm_start_steps is not None else tc.seq_len
    blocks = []
    for fold in folds:
        callbacks = [pruning_callback(trial, monitor, fold.index * tc.epochs)] if trial is not None else []
        fit = fit_fold(cfg, data, fold, extra_callbacks=callbacks)
        for cb in callbacks:
            cb.check_pruned()  # DDP: the pruning decision is read back from the storage
        state0 = _warm_state(fit.policy, prepared, fold, warm)
        roll = run_block(fit.policy, data, *fold.test, state0=state0, record_state=False)
        blocks.append((fold.test[0], fold.test[1], roll.exposures))
    start, stop = blocks[0][0], blocks[-1][1]  # test blocks of consecutive folds are adjacent
    targets = stitch(data.market.returns.shape, blocks)
    res = evaluate_strategy(cfg, prepared.market, targets, start, stop, "policy")
    metrics = {k: float(v) for k, v in res.metrics.items() if isinstance(v, (int, float))}
    value = metrics.get(cfg.tuning.metric)
    if value is None:
        raise ConfigError(f"tuning.metric {cfg.tuning.metric!r} is not an evaluation metric; known: {sorted(metrics)}")
    if not math.isfinite(value):
        raise optuna.TrialPruned(f"{cfg.tuning.metric} is {value}")
    return TrialOutcome(value, metrics)


class Objective:
    """The Optuna objective for one worker (data prepared once per distinct data config)."""

    def __init__(self, cfg: ExperimentConfig, tracker: Any, parent_run: str) -> None:
        self.cfg = cfg
        self.tracker = tracker
        self.parent_run = parent_run
        self.started: list[int] = []  # trial numbers this worker began (to fail them if stopped)
        self._prepared: dict[str, Any] = {}

    def prepared(self, cfg: ExperimentConfig) -> Any:
        from training.prepare import prepare_data

        key = _data_key(cfg)
        if key not in self._prepared:
            self._prepared.clear()  # keep one at a time: data can be large
            self._prepared[key] = prepare_data(cfg)
        return self._prepared[key]

    def __call__(self, trial: Any) -> float:
        import optuna

        self.started.append(trial.number)
        trial.set_user_attr("dea.worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(trial, self.cfg.tuning.space)
        cfg = spawn_safe(self.cfg.with_overrides(params))
        run = self.tracker.start_run(
            f"trial-{trial.number}",
            parent_id=self.parent_run,
            tags={"dea.trial": str(trial.number), "optuna.study_name": trial.study.study_name},
            description=f"Optuna trial #{trial.number} of study {trial.study.study_name!r}: "
            + ", ".join(f"{k}={v}" for k, v in params.items()),
            source="dea tune",
        )
        if run:
            trial.set_user_attr(RUN_ATTR, run)
        self.tracker.log_params(run, params)
        t0 = time.perf_counter()
        try:
            out = walk_forward_value(cfg, self.prepared(cfg), trial)
        except optuna.TrialPruned:
            self.tracker.set_tags(run, {"dea.trial_state": "PRUNED"})
            self.tracker.end_run(run, "KILLED")
            raise
        except BaseException:
            self.tracker.set_tags(run, {"dea.trial_state": "FAIL"})
            self.tracker.end_run(run, "FAILED")
            raise
        trial.set_user_attr(METRICS_ATTR, {k: v for k, v in out.metrics.items() if math.isfinite(v)})
        self.tracker.log_metrics(run, {**out.metrics, "trial_seconds": time.perf_counter() - t0})
        self.tracker.set_tags(run, {"dea.trial_state": "COMPLETE"})
        self.tracker.end_run(run)
        return out.value


# ------------------------------------------------------------------------------------ workers
def parent_run_id(study: Any, tracker: Any, cfg: ExperimentConfig, storage: str) -> str:
    """The study's MLflow parent run, created by the first worker and shared through the study."""
    existing = study.user_attrs.get(PARENT_ATTR)
    if existing or not tracker.enabled:
        return existing or ""
    run = tracker.start_run(
        f"tune-{study.study_name}",
        tags={"dea.study": study.study_name, "optuna.study_name": study.study_name, "dea.storage": _redact(storage)},
        description=f"Optuna study {study.study_name!r} of experiment {cfg.name!r}: {cfg.tuning.direction} "
        f"{cfg.tuning.metric} of the out-of-sample walk-forward backtest over "
        + ", ".join(cfg.tuning.space) + ". One child run per trial.",
        source="dea tune",
    )
    tracker.log_params(run, {f"space.{k}": json.dumps(v.model_dump()) for k, v in cfg.tuning.space.items()})
    study.set_user_attr(PARENT_ATTR, run)
    time.sleep(0.2)  # two workers starting together: the last writer wins, the other follows it
    winner = study.user_attrs.get(PARENT_ATTR, run)
    if winner != run:
        tracker.client.delete_run(run)
    return winner


@dataclass(frozen=True)
class WorkerArgs:
    config: str
    overrides: tuple[str, ...]
    storage: str
    study: str
    trials: int
    tracking_uri: str | None
    seed_offset: int = 0
    verbosity: int = 0  # dea.cli.output level, re-applied in spawned worker processes
    log_format: str = "text"  # and its --log-format


def run_worker(args: WorkerArgs) -> int:
    """One worker: join the study and run trials until ``args.trials`` have finished in total."""
    import optuna
    import torch
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from training.tracking import Tracker

    # Optuna's own per-trial INFO lines are replaced by the progress lines below (with time left)
    optuna.logging.set_verbosity(optuna.logging.DEBUG if args.verbosity > 0 else optuna.logging.WARNING)
    cfg = load_config(args.config, list(args.overrides))
    torch.set_num_threads(cfg.training.num_threads)
    # seed: the job index here, plus the trials already in the study (a worker joining later
    # from another machine samples differently from the first one)
    existing = len(open_study(cfg, args.storage, args.study).get_trials(deepcopy=False))
    study = open_study(cfg, args.storage, args.study, seed_offset=args.seed_offset + existing)
    tracker = Tracker(args.tracking_uri or cfg.tracking.uri, cfg.tracking.experiment, enabled=cfg.tracking.enabled)
    parent = parent_run_id(study, tracker, cfg, args.storage)
    stop = MaxTrialsCallback(args.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    before = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in before)
    progress = Progress(f"tuning {args.study}", total=max(0, args.trials - finished), unit="trial")
    objective = Objective(cfg, tracker, parent)
    try:
        study.optimize(objective, n_trials=args.trials, callbacks=[stop, TrialLines(progress, cfg.tuning.metric)],
                       catch=(ValueError,), gc_after_trial=True)
    except BaseException:
        # a stop signal (dea's CommandInterrupted is a BaseException) unwinds past Optuna, which
        # only marks a trial failed for Exception and KeyboardInterrupt: without this the
        # interrupted trial would stay RUNNING for ever in the shared study
        fail_running(study, objective.started)
        raise
    finally:
        progress.close()
    return len(study.get_trials(deepcopy=False)) - len(before)


class TrialLines:
    """Optuna callback: one progress line per finished trial (its value and the best so far)."""

    def __init__(self, progress: Progress, metric: str) -> None:
        self.progress = progress
        self.metric = metric

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        if trial.state == TrialState.COMPLETE:
            what = f"trial #{trial.number} {self.metric} {trial.value:.3f}"
            try:
                best = study.best_trial
                what += f", best #{best.number} {best.value:.3f}"
            except ValueError:  # no complete trial yet in a multi-worker study
                pass
        else:
            what = f"trial #{trial.number} {trial.state.name.lower()}"
        self.progress.advance(detail=what)


def fail_running(study: Any, numbers: Sequence[int]) -> list[int]:
    """Mark this worker's trials that are still RUNNING as FAIL; return their numbers."""
    from optuna.trial import TrialState

    failed = []
    by_number = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for n in numbers:
        if n in by_number:
            study.tell(n, state=TrialState.FAIL)
            failed.append(n)
    return failed


def _worker_entry(args: WorkerArgs) -> int:  # top-level for multiprocessing's spawn
    from dea.cli.output import configure_logging

    configure_logging(args.verbosity, format=args.log_format)  # a spawned process starts with no logging set up
    return run_worker(args)


# ------------------------------------------------------------------------------------ summary
@dataclass
class TuneSummary:
    study: str
    storage: str
    direction: str
    metric: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best_number: int | None
    best_value: float
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    deflated_sharpe: float = float("nan")
    best_config: Path | None = None
    parent_run: str = ""
    overrides: tuple[str, ...] = ()

    def format(self) -> str:
        lines = [
            f"study {self.study!r} ({_redact(self.storage)}): {self.n_complete} complete, {self.n_pruned} pruned, "
            f"{self.n_failed} failed",
        ]
        if self.best_number is None:
            lines.append("no completed trial")
            return "\n".join(lines)
        lines.append(f"best trial #{self.best_number}: {self.metric} = {self.best_value:.4f} ({self.direction})")
        for k, v in self.best_params.items():
            lines.append(f"  {k} = {v}")
        n = self.n_complete + self.n_pruned
        lines.append(
            f"deflated Sharpe ratio of the best trial, given {n} trial{'' if n == 1 else 's'}: {self.deflated_sharpe:.3f} "
            "(probability that its true Sharpe beats the best of as many unskilled trials)"
        )
        shown = ("sharpe", "annual_return", "annual_vol", "max_drawdown", "sortino", "turnover")
        others = ", ".join(f"{k} {self.best_metrics[k]:.4g}" for k in shown if k in self.best_metrics and k != self.metric)
        if others:
            lines.append(f"  out of sample: {others}")
        if self.best_config:
            sets = "".join(f" --set {o}" for o in self.overrides)
            lines.append(f"best config: {self.best_config}  (dea train --config {self.best_config}{sets})")
        lines.append(dashboard_hint(self.storage))
        return "\n".join(lines)


def deflated_sharpe_of_best(trials: Sequence[Any], best: Any, n_trials: int) -> float:
    """Deflated Sharpe ratio of the best trial: its out-of-sample Sharpe against the expected
    maximum of ``n_trials`` unskilled trials, with the variance of the Sharpes the study saw."""
    from dea.metrics.sharpe import deflated_sharpe_ratio

    m = best.user_attrs.get(METRICS_ATTR, {})
    sharpes = [t.user_attrs.get(METRICS_ATTR, {}).get("sharpe") for t in trials]
    sharpes = [float(x) for x in sharpes if x is not None and math.isfinite(x)]
    ppy = float(m.get("periods_per_year", float("nan")))
    if "sharpe" not in m or not math.isfinite(ppy) or len(sharpes) < 1:
        return float("nan")
    var = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    return float(
        deflated_sharpe_ratio(
            float(m["sharpe"]) / math.sqrt(ppy),
            n_trials=max(1, n_trials),
            trials_sharpe_variance=var / ppy,
            n_obs=int(m.get("n_periods", 0)),
            skew=float(m.get("skew", 0.0)),
            kurtosis=float(m.get("kurtosis", 3.0)),
        )
    )


def summarise(study: Any, cfg: ExperimentConfig, storage: str) -> TuneSummary:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    s = TuneSummary(
        study=study.study_name,
        storage=storage,
        direction=cfg.tuning.direction,
        metric=cfg.tuning.metric,
        n_complete=states.count(TrialState.COMPLETE),
        n_pruned=states.count(TrialState.PRUNED),
        n_failed=states.count(TrialState.FAIL),
        best_number=None,
        best_value=float("nan"),
        parent_run=study.user_attrs.get(PARENT_ATTR, ""),
    )
    if s.n_complete == 0:
        return s
    best = study.best_trial
    s.best_number, s.best_value, s.best_params = best.number, float(best.value), dict(best.params)
    s.best_metrics = dict(best.user_attrs.get(METRICS_ATTR, {}))
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    s.deflated_sharpe = deflated_sharpe_of_best(done, best, s.n_complete + s.n_pruned)
    return s


# ------------------------------------------------------------------------------------ best config
def _rebase(value: str, src_dir: Path, dst_dir: Path) -> str:
    """A relative path written against ``src_dir``, re-expressed against ``dst_dir`` (still
    relative, so the checkout can move); absolute and ``~`` paths are left as written."""
    p = Path(value)
    if p.is_absolute() or value.startswith("~"):
        return value
    return Path(os.path.relpath((src_dir / p).resolve(), dst_dir.resolve())).as_posix()


def _path_fields(raw: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(mapping, key) of every file path in a raw config that resolves against its folder."""
    out: list[tuple[dict[str, Any], str]] = []
    data = raw.get("data") or {}
    if isinstance(data.get("store"), str):
        out.append((data, "store"))
    for src in data.get("sources") or []:
        if isinstance(src.get("path"), str) and src.get("format") != "sim":
            out.append((src, "path"))
    for extra in (raw.get("stress") or {}).get("extra") or []:
        if isinstance(extra, dict) and isinstance(extra.get("source"), str):
            out.append((extra, "source"))
    for section, key in (("retrain", "tuned_config"), ("serving", "secrets_file"), ("execution", "cost_fragment")):
        sec = raw.get(section) or {}
        if isinstance(sec.get(key), str):
            out.append((sec, key))
    return out


def best_config_yaml(
    config_path: Path,
    overrides: Sequence[str],
    params: Mapping[str, Any],
    out_dir: Path | None = None,
) -> str:
    """The base config plus the best trial's values — what ``dea train --config best.yaml`` runs.

    Not baked in: the ``--set`` overrides of the tuning command (listed in the header, with the
    command that repeats them: they were a choice for the search, e.g. fewer epochs, not part of
    the experiment). Paths stay relative as the user wrote them, re-expressed against the folder
    ``best.yaml`` is written to (``out_dir``, default the config's own folder) so they name the same
    files; absolute paths stay absolute. Validated before it is returned.
    """
    config_path = Path(config_path)
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8-sig"))
    apply_overrides(raw, dict(params))
    src_dir = config_path.resolve().parent
    dst_dir = Path(out_dir).resolve() if out_dir is not None else src_dir
    if dst_dir != src_dir:
        for mapping, key in _path_fields(raw):
            mapping[key] = _rebase(mapping[key], src_dir, dst_dir)
    validate_config(raw, dst_dir, f"best config for {config_path}")
    head = [f"# written by dea tune: {config_path} plus the best trial's values:"]
    head += [f"#   {k}: {v}" for k, v in params.items()]
    if overrides:
        head.append("# the tuning run also had these --set overrides, not written here:")
        head += [f"#   --set {o}" for o in overrides]
    if dst_dir != src_dir:
        head.append(f"# relative paths are relative to this file's folder (they name the files {config_path.name} names)")
    return "\n".join(head) + "\n" + yaml.safe_dump(raw, sort_keys=False)


def dashboard_hint(storage: str) -> str:
    """How to open the study in optuna-dashboard (and how to install it when it is missing)."""
    import importlib.util

    line = f"dashboard: optuna-dashboard {_redact(storage)}"
    if importlib.util.find_spec("optuna_dashboard") is None:
        line += "  (install it with: pip install -e '.[dashboard]')"
    return line


# ------------------------------------------------------------------------------------ entry point
def tune(
    config: str | Path,
    *,
    trials: int,
    storage: str | None = None,
    study: str | None = None,
    jobs: int = 1,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    verbosity: int = 0,
    log_format: str = "text",
) -> TuneSummary:
    """Run (or join) a study with ``jobs`` local worker processes; return the study's summary.

    The summary covers every trial of the study, including those other machines ran.
    """
    if trials < 1 or jobs < 1:
        raise ConfigError(f"--trials ({trials}) and --jobs ({jobs}) must be >= 1")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.DEBUG if verbosity > 0 else optuna.logging.WARNING)
    config = Path(config)
    cfg = load_config(config, list(overrides))
    check_space(cfg)
    name = study or cfg.tuning.study
    out = Path(out_dir) if out_dir is not None else Path("runs") / f"tune-{name}"
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage or cfg.tuning.storage, out)
    # create the study, the MLflow store and the parent run here, once: workers starting
    # together would otherwise race on the SQLite schema migrations
    from training.tracking import Tracker

    st = open_study(cfg, url, name)
    parent_run_id(st, Tracker(tracking_uri or cfg.tracking.uri, cfg.tracking.experiment, enabled=cfg.tracking.enabled), cfg, url)
    args = WorkerArgs(str(config.resolve()), tuple(overrides), url, name, trials, tracking_uri, verbosity=verbosity,
                      log_format=log_format)
    log.info("tuning: study %r, %d trial%s over %s; %s", name, trials, "" if trials == 1 else "s",
             ", ".join(cfg.tuning.space), dashboard_hint(url))
    if jobs == 1:
        run_worker(args)
    else:
        ctx = mp.get_context("spawn")  # fork would share torch/MLflow state between workers
        with ctx.Pool(jobs) as pool:
            pool.map(_worker_entry, [dataclasses.replace(args, seed_offset=k) for k in range(jobs)])
    summary = summarise(st, cfg, url)
    summary.overrides = tuple(overrides)
    if summary.best_number is not None:
        path = out / "best.yaml"
        path.write_text(best_config_yaml(config, overrides, summary.best_params, out_dir=out))
        summary.best_config = path
        _log_summary(cfg, tracking_uri, summary)
    (out / "summary.txt").write_text(summary.format() + "\n")
    return summary


def _log_summary(cfg: ExperimentConfig, tracking_uri: str | None, s: TuneSummary) -> None:
    """Best trial, its deflated Sharpe and the best YAML on the study's parent run."""
    if not (cfg.tracking.enabled and s.parent_run):
        return
    from training.tracking import Tracker

    tr = Tracker(tracking_uri or cfg.tracking.uri, cfg.tracking.experiment)
    tr.log_metrics(
        s.parent_run,
        {"best_value": s.best_value, "deflated_sharpe": s.deflated_sharpe, "n_trials": s.n_complete + s.n_pruned,
         "n_pruned": s.n_pruned, "n_failed": s.n_failed},
    )
    tr.set_tags(s.parent_run, {"dea.best_trial": s.best_number, **{f"best.{k}": v for k, v in s.best_params.items()}})
    if s.best_config is not None:
        tr.log_artifact(s.parent_run, s.best_config, "tuning")


__all__ = [
    "Objective",
    "TuneSummary",
    "WorkerArgs",
    "best_config_yaml",
    "dashboard_hint",
    "fail_running",
    "check_space",
    "open_study",
    "pruning_callback",
    "run_worker",
    "storage_url",
    "suggest",
    "summarise",
    "tune",
    "walk_forward_value",
]
