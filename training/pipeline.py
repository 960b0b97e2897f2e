"""``dea train`` end to end: data -> walk-forward training -> out-of-sample evaluation against
baselines -> final model -> ONNX export and registry -> MLflow.

Flow of :func:`train`:

1. :func:`training.prepare.prepare_data`: panel, features (missing-data policy applied), the
   backtester's market arrays and the objective's aligned arrays.
2. :func:`training.splits.walk_forward_folds`: purged, embargoed walk-forward folds.
3. Per fold (one MLflow child run each): :func:`training.fit.fit_fold` (scaler on the fit rows
   only, Lightning with early stopping), then the policy is rolled over the fold's test block as
   it would trade (exposure fed back, state carried; recurrent state warmed on the rows before
   the block, never on the block itself).
4. Baselines on the same test blocks: ridge / gradient-boosting forecasts fitted on each fold's
   training part, and the classical allocators of :mod:`dea.backtest`.
5. Every strategy's stitched out-of-sample targets go through the backtester with the risk
   engine; metrics on the out-of-sample span; deflated Sharpe; tearsheet.
6. The deployable model (refit on all data, or the last fold's) is exported to ONNX behind the
   parity gate and registered as ``challenger``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dea.config.experiment import ExperimentConfig, config_hash
from dea.data.coverage import coverage_report
from dea.progress import Progress, track
from dea.timeutil import iso
from training.evaluation import StrategyResult, compare, evaluate_strategy, stitch
from training.fit import CLOSED_FORM, FoldFit, fit_fold
from training.fit_bank import FitBank, FitTask, fit_members, resolve_workers, run_fits
from training.policies import Policy, save_policy
from training.prepare import PreparedData, prepare_data
from training.rollout_eval import BlockRollout, run_block
from training.candidates import (
    Candidate,
    Selection,
    block_net_returns,
    resolve_candidates,
    select,
    selection_pbo,
)
from training.splits import Fold, final_fold, walk_forward_folds
from training.tracking import InputData, Tracker, git_commit, key_params, package_versions, ui_hint

log = logging.getLogger(__name__)

POLICY = "policy"


@dataclass
class FoldResult:
    """One fold: its trained policy (an ensemble when ``model.ensemble > 1``), the training
    history of each member and the out-of-sample rollout."""

    fold: Fold
    fit: FoldFit  # the first member's
    rollout: BlockRollout
    policy: Any  # Policy or training.ensemble.PolicyEnsemble
    member_fits: list[FoldFit] = field(default_factory=list)
    run_id: str = ""
    policy_dir: Path | None = None
    candidate: str = "configured"  # the candidate nested selection chose for this fold
    val_scores: dict[str, float] = field(default_factory=dict)  # validation Sharpe per candidate
    standalone: dict[str, float] = field(default_factory=dict)  # this fold's test block backtested from flat


@dataclass(frozen=True)
class ExportInfo:
    """What the exported model is: which candidate, and whether it saw the test rows."""

    candidate: str
    refit: bool  # refit on all data (training.final_refit) or the last fold's model
    saw_test_rows: bool
    fit: tuple[int, int]
    val: tuple[int, int]


@dataclass
class TrainResult:
    """What :func:`train` produced. ``metrics`` maps strategy -> metric -> value (out of sample);
    the policy is under ``"policy"``."""

    run_id: str
    tracking_uri: str
    config_hash: str
    data_fingerprint: str
    feature_spec_hash: str
    folds: list[FoldResult]
    strategies: dict[str, StrategyResult]
    oos_start: int
    oos_stop: int
    clock: np.ndarray
    final_policy: Any  # Policy or PolicyEnsemble
    out_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)
    registered: Any = None  # training.registry.RegisteredPolicy when registration ran
    timings: dict[str, float] = field(default_factory=dict)
    #: the walk-forward's fitting: ``fit_workers`` (processes), ``fit_steps`` (optimizer steps of
    #: every candidate and member) and ``fit_seconds`` (their own seconds, summed)
    fit_stats: dict[str, float] = field(default_factory=dict)
    significance: dict[str, Any] = field(default_factory=dict)  # strategy -> Sharpe difference vs the policy
    exported: "ExportInfo | None" = None
    notes: list[str] = field(default_factory=list)  # quality flags (low volatility, ...)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return {name: dict(s.metrics) for name, s in self.strategies.items()}

    @property
    def oos_exposures(self) -> np.ndarray:
        """The policy's target exposures on the out-of-sample rows [oos_stop - oos_start, N]."""
        return self.strategies[POLICY].targets[self.oos_start : self.oos_stop]

    @property
    def policies(self) -> list[Any]:
        return [f.policy for f in self.folds]

    @property
    def ui_command(self) -> str:
        return ui_hint(self.tracking_uri)


# ------------------------------------------------------------------------------------ helpers
def fit_policy(
    cfg: ExperimentConfig,
    prepared: PreparedData,
    fold: Fold,
    seed: int,
    on_epoch: Callable[[str, int, dict[str, float]], None] | None = None,
    label: str | None = None,
    bank: FitBank | None = None,
) -> tuple[Any, list[FoldFit]]:
    """Train the fold's policy: one member, or ``model.ensemble`` members from spread seeds
    wrapped in a :class:`training.ensemble.PolicyEnsemble` (mean target + dispersion).
    ``on_epoch(prefix, epoch, metrics)`` is called after every epoch (prefix ``""`` or
    ``"member<i>_"``). ``label`` names the fits in progress lines (default ``fold <i>``).
    A member ``bank`` holds (trained ahead on worker processes) is taken from it, and its epochs
    are passed to ``on_epoch`` then."""
    fits = []
    for m in fit_members(cfg, seed, label or f"fold {fold.index}"):
        hook = None if on_epoch is None else (lambda epoch, row, p=m.prefix: on_epoch(p, epoch, row))
        fit = bank.take(cfg, fold, m.seed) if bank is not None else None
        if fit is None:
            fit = fit_fold(cfg, prepared.data, fold, seed=m.seed, on_epoch=hook, label=m.label)
        elif hook is not None:
            for row in fit.history:
                hook(int(row["epoch"]), row)
        fits.append(fit)
    if len(fits) == 1:
        return fits[0].policy, fits
    from training.ensemble import PolicyEnsemble

    return PolicyEnsemble([f.policy for f in fits]), fits


def _fit_label(fold: Fold, c: Candidate, candidates: Sequence[Candidate]) -> str:
    return f"fold {fold.index}" + (f" [{c.label}]" if len(candidates) > 1 else "")


def fits_ahead(cfg: ExperimentConfig, prepared: PreparedData, plan: Sequence[tuple[ExperimentConfig, Fold, int, str]],
               name: str) -> FitBank | None:
    """Train the gradient-descent fits of ``plan`` (``(config, fold, seed, label)`` per policy)
    on ``training.workers`` processes; ``None`` when that resolves to one process (the fits
    then run in turn, in this process, with their live progress)."""
    tc = cfg.training
    tasks = [FitTask(c, prepared.data, fold, m) for c, fold, seed, label in plan if c.model.kind not in CLOSED_FORM
             for m in fit_members(c, seed, label)]
    workers = resolve_workers(tc.workers, usable_rows=int(prepared.data.usable.sum()), n_fits=len(tasks),
                              num_threads=tc.num_threads)
    if workers < 2:
        return None
    return run_fits(tasks, workers, num_threads=tc.num_threads, name=name)


#: a baseline's metrics logged to MLflow (the full table is the run's report/metrics.csv)
HEADLINE_METRICS = ("sharpe", "annual_return", "annual_vol", "max_drawdown", "turnover")


def input_datasets(cfg: ExperimentConfig, prepared: PreparedData) -> list[InputData]:
    """Every configured source (its content fingerprint, where it was read from) and the panel
    they were aligned into (the fingerprint the ONNX model carries), as MLflow datasets."""
    from dea.data.sources import source_fingerprint

    out = [
        InputData(src.name, source_fingerprint(src, cfg.base_dir), src.kind,
                  uri=None if src.format == "sim" else str(cfg.resolve_path(src.path)))
        for src in cfg.data.sources
    ]
    out.append(InputData(f"{cfg.name}-panel", prepared.data_fingerprint, "panel", rows=len(prepared.panel)))
    return out


def _plan_text(cfg: ExperimentConfig, prepared: PreparedData, folds: Sequence[Fold]) -> str:
    """The run description's first part: what is trained on what."""
    clock = prepared.data.market.clock
    return (f"**{cfg.name}**: {_fold_plan(cfg, resolve_candidates(cfg))}, on "
            f"{', '.join(prepared.panel.instruments)}, {len(prepared.data.feature_names)} features, "
            f"{len(clock)} decisions {iso(int(clock[0]))[:10]} .. {iso(int(clock[-1]))[:10]}, "
            f"{len(folds)} purged walk-forward folds; objective {cfg.objective.loss}.")


def _result_text(strategies: dict[str, StrategyResult], start: int, stop: int, clock: np.ndarray,
                 onnx_path: Path | None, registered: Any) -> str:
    """The run description's second part: how it did out of sample, and what was exported."""
    m = strategies[POLICY].metrics

    def fmt(d: dict[str, Any], k: str, pct: bool = False) -> str:
        v = d.get(k, float("nan"))
        return f"{v:.1%}" if pct else f"{v:.2f}"

    others = {n: s for n, s in strategies.items() if n != POLICY and not n.endswith("_raw")}
    best = max(others, key=lambda n: others[n].metrics.get("sharpe", float("-inf")), default=None)
    text = (f"Out of sample {iso(int(clock[start]))[:10]} .. {iso(int(clock[stop - 1]))[:10]}, after costs: "
            f"Sharpe {fmt(m, 'sharpe')}, annual return {fmt(m, 'annual_return', True)}, "
            f"max drawdown {fmt(m, 'max_drawdown', True)}")
    if best is not None:
        text += f"; best baseline {best}: Sharpe {fmt(others[best].metrics, 'sharpe')}"
    text += "."
    if registered is not None:
        text += f" Exported to ONNX and registered as {registered.name} v{registered.version} (challenger)."
    elif onnx_path is not None:
        text += " Exported to ONNX."
    return text


def _fold_plan(cfg: ExperimentConfig, candidates: Sequence[Candidate]) -> str:
    """What each fold trains, for the progress log: model kind, members, candidates, epochs."""
    k = len(fit_members(cfg, 0, ""))
    parts = [f"model {cfg.model.kind}"]
    if k > 1:
        parts.append(f"{k}-seed ensemble")
    if len(candidates) > 1:
        parts.append(f"{len(candidates)} candidates")
    if cfg.model.kind not in CLOSED_FORM:
        parts.append(f"up to {cfg.training.epochs} epochs each")
    return ", ".join(parts)


def _prefix(c: Candidate, candidates: Sequence[Candidate]) -> str:
    """MLflow metric prefix of a candidate's epochs ('' for the configured model, listed first)."""
    i = candidates.index(c)
    return "" if i == 0 else f"cand{i}_"


def _epoch_logger(tracker: Tracker, run_id: str, prefix: str = "") -> Callable[[str, int, dict[str, float]], None]:
    """Log each epoch's metrics as soon as it ends (the MLflow UI shows training live)."""

    def log(member: str, epoch: int, row: dict[str, float]) -> None:
        tracker.log_metrics(run_id, {f"{prefix}{member}{k}": v for k, v in row.items() if k != "epoch"}, step=epoch)

    return log


def save_any_policy(policy: Any, folder: Path) -> None:
    """Save a policy, or each member of an ensemble under ``member_<i>/``."""
    if hasattr(policy, "members"):
        for i, m in enumerate(policy.members):
            save_policy(m, folder / f"member_{i}")
    else:
        save_policy(policy, folder)


def _default_out_dir(cfg: ExperimentConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{cfg.name}-{stamp}"


def warm_state(policy: Any, prepared: PreparedData, fold: Fold, steps: int) -> np.ndarray | None:
    """Recurrent state after rolling the rows just before the test block (information known at
    the block's start), so the first test decision does not start from an empty memory."""
    if not policy.is_recurrent or steps <= 0:
        return None
    start = max(fold.val[0], fold.test[0] - steps)
    if start >= fold.test[0]:
        return None
    return run_block(policy, prepared.data, start, fold.test[0], record_state=False).final_state


_warm_state = warm_state  # the name training.tuning imports


def _log_fold(tracker: Tracker, run_id: str, fr: FoldResult, prepared: PreparedData) -> None:
    fit = fr.fit
    clock = prepared.data.market.clock
    f = fr.fold
    tracker.log_params(
        run_id,
        {
            "fold": f.index,
            "fit_rows": f"{f.fit[0]}:{f.fit[1]}",
            "val_rows": f"{f.val[0]}:{f.val[1]}",
            "test_rows": f"{f.test[0]}:{f.test[1]}",
            "fit_window": f"{iso(int(clock[f.fit[0]]))}/{iso(int(clock[f.fit[1] - 1]))}",
            "test_window": f"{iso(int(clock[f.test[0]]))}/{iso(int(clock[f.test[1] - 1]))}",
            "n_windows": fit.n_windows,
        },
    )
    tracker.log_metrics(
        run_id,
        {
            "best_epoch": fit.best_epoch,
            "best_val_loss": fit.best_val_loss,
            "train_steps": fit.steps,
            "steps_per_second": fit.steps_per_second,
            "fit_seconds": fit.fit_seconds,
        },
    )


def _fold_metrics(cfg: ExperimentConfig, prepared: PreparedData, folds: Sequence[FoldResult]) -> dict[int, dict[str, float]]:
    """Per-fold policy metrics, each test block backtested on its own from flat — exactly what
    ``dea backtest --policy fold.onnx --start <test start> --end <test end>`` computes (the same
    market slice, starting exposure and engine), so the report and a later backtest agree."""
    from dea.backtest.market import slice_market
    from dea.backtest.vectorized import backtest_config
    from dea.metrics import compute_metrics

    out: dict[int, dict[str, float]] = {}
    for fr in folds:
        a, b = fr.fold.test
        sub = slice_market(prepared.market, a, b)
        res = backtest_config(cfg, sub, fr.rollout.exposures, hold_nan=True, name=f"fold{fr.fold.index}")
        out[fr.fold.index] = compute_metrics(res)
    return out


def raw_risk(cfg: ExperimentConfig) -> Any:
    """A risk config that lets targets through untouched (no caps, no drawdown kill, no vol target,
    no stale guard): baselines "as users know them", with costs and funding only."""
    from dea.risk.config import RiskConfig

    big = 1e6
    return RiskConfig(max_exposure=big, max_gross=big, max_net=big, max_leverage=big,
                      vol_target={"enabled": False}, drawdown={"enabled": False},
                      stale={"max_age": "36500d", "action": "hold"})


def _base_oos_targets(cfg: ExperimentConfig, prepared: PreparedData, folds: Sequence[FoldResult]) -> np.ndarray:
    """The policy's base alone over every test block (the same graph with no adjustment; a
    ``ridge`` base is fitted on each fold's fit block, as under the policy)."""
    from training.fit import fold_policy
    from training.policies import build_policy, spec_from_config

    data = prepared.data
    base_cfg = cfg.with_overrides({"model.kind": "base", "training.candidates": [{}]})
    fixed = None if cfg.model.base.kind == "ridge" else build_policy(spec_from_config(base_cfg, data.feature_names))
    blocks = []
    for fr in folds:
        policy = fixed if fixed is not None else fold_policy(base_cfg, data, fr.fold)
        blocks.append((fr.fold.test[0], fr.fold.test[1], run_block(policy, data, *fr.fold.test, record_state=False).exposures))
    return stitch(data.market.returns.shape, blocks)


def _final_candidate(candidates: Sequence[Candidate], folds: Sequence[FoldResult]) -> Candidate:
    """The candidate to deploy: best mean validation Sharpe over the folds (validation only)."""
    if len(candidates) == 1:
        return candidates[0]
    means = [float(np.mean([fr.val_scores.get(c.label, -np.inf) for fr in folds])) for c in candidates]
    return candidates[int(np.argmax(means))]


def policy_significance(strategies: dict[str, StrategyResult], start: int, stop: int, *, seed: int) -> dict[str, Any]:
    """Sharpe difference of the policy against every other strategy, with a confidence interval
    (stationary bootstrap on the paired out-of-sample returns)."""
    from dea.metrics.significance import sharpe_difference
    from training.metrics_adapter import oos_slice

    pol = oos_slice(strategies[POLICY].backtest, start, stop)
    out: dict[str, Any] = {}
    for name, s in strategies.items():
        if name == POLICY:
            continue
        other = oos_slice(s.backtest, start, stop)
        out[name] = sharpe_difference(np.asarray(pol.returns), np.asarray(other.returns), pol.periods_per_year,
                                      method="bootstrap", seed=seed)
    return out


def quality_notes(cfg: ExperimentConfig, strategies: dict[str, StrategyResult], base_name: str,
                  folds: Sequence[FoldResult]) -> list[str]:
    """Flags a reader must see: a policy far below its volatility target (collapsed towards cash),
    and which candidates nested selection chose."""
    notes: list[str] = []
    vol = strategies[POLICY].metrics.get("annual_vol", float("nan"))
    if base_name in strategies:
        target = strategies[base_name].metrics.get("annual_vol", float("nan"))
        what = f"its base {base_name} ({target:.1%})"
    else:
        target = cfg.model.base.target_vol if cfg.model.adjust.vol_scaling else float("nan")
        what = f"its target ({target:.1%})"
    share = cfg.training.low_vol_share
    if np.isfinite(vol) and np.isfinite(target) and vol < share * target:
        notes.append(f"LOW VOLATILITY: the policy's out-of-sample volatility {vol:.1%} is below {share:.0%} of {what}")
    chosen = [fr.candidate for fr in folds]
    rule = " (one-standard-error rule)" if cfg.training.selection_rule == "one_se" else ""
    notes.append(f"nested selection{rule} chose, per fold: " + ", ".join(f"fold {fr.fold.index}: {fr.candidate}" for fr in folds)
                 if len(set(chosen)) > 1 or len(folds[0].val_scores) > 1 else f"candidate: {chosen[0]}")
    return notes


# ------------------------------------------------------------------------------------ baselines
def _baseline_targets(
    cfg: ExperimentConfig, prepared: PreparedData, folds: Sequence[FoldResult], caps: Sequence[float], max_gross: float
) -> dict[str, np.ndarray]:
    """Out-of-sample targets [T, N] (NaN = hold outside the test blocks) of every baseline."""
    from training.classical_baselines import classical_oos_targets
    from training.forecast_baselines import FORECAST_BASELINES, forecast_exposures

    data = prepared.data
    shape = data.market.returns.shape
    start, stop = folds[0].fold.test[0], folds[-1].fold.test[1]
    target_vol = cfg.risk.vol_target.target_annual
    out: dict[str, np.ndarray] = {}
    for name in track(cfg.training.baselines, "baselines", unit="baseline", detail=str):
        if name in FORECAST_BASELINES:
            blocks = [
                (fr.fold.test[0], fr.fold.test[1],
                 forecast_exposures(name, data, fr.fold, caps=caps, max_gross=max_gross, target_vol=target_vol,
                                    seed=cfg.training.seed))
                for fr in folds
            ]
            out[name] = stitch(shape, blocks)
        else:
            out[name] = classical_oos_targets(cfg, prepared.panel, name, start, stop)
    return out


# ------------------------------------------------------------------------------------ export
def _export_and_register(
    cfg: ExperimentConfig,
    policy: Any,
    prepared: PreparedData,
    fold: Fold,
    out_dir: Path,
    tracker: Tracker,
    run_id: str,
) -> tuple[Path | None, Any]:
    """ONNX export behind the parity gate (validation rows as the gate set), then registry."""
    try:
        from training.export import export_policy
    except ImportError:  # export not installed in this checkout
        return None, None
    val = run_block(policy, prepared.data, *fold.val)
    ok = prepared.data.usable[fold.val[0] : fold.val[1]]
    inputs = [val.inputs_features[ok], val.inputs_exposure[ok]]
    if policy.is_recurrent:
        inputs.append(val.inputs_state[ok])
    clock = prepared.data.market.clock
    path = export_policy(
        policy,
        feature_names=policy.feature_names,
        feature_spec_hash=prepared.feature_spec_hash,
        instruments=policy.instruments,
        exposure_caps=policy.exposure_caps,
        model_name=cfg.model.name,
        model_version=run_id or "local",
        train_window=(iso(int(clock[fold.fit[0]])), iso(int(clock[fold.val[1] - 1]))),
        config_hash=config_hash(cfg),
        data_fingerprint=prepared.data_fingerprint,
        example_inputs=tuple(x[:2] for x in inputs),  # batch 1 would be specialised away by torch.export
        validation_inputs=tuple(inputs),
        path=out_dir / "policy.onnx",
    )
    # The training-time distribution of every input travels with the model (ONNX metadata), so
    # the live loop and `dea drift` can measure drift against it.
    from training.retrain import embed_drift_reference

    embed_drift_reference(cfg, path, prepared.data, fold.train,
                          (iso(int(clock[fold.fit[0]])), iso(int(clock[fold.val[1] - 1]))))
    registered = None
    if tracker.enabled and run_id:
        from training.registry import register_policy

        registered = register_policy(
            path, registered_model=cfg.tracking.registered_model, tracking_uri=tracker.uri, run_id=run_id
        )
    return path, registered


# ------------------------------------------------------------------------------------ main entry
def train(
    cfg: ExperimentConfig,
    *,
    tracking_uri: str | None = None,
    out_dir: Path | None = None,
    prepared: PreparedData | None = None,
) -> TrainResult:
    """Train, evaluate and track one experiment (see the module docstring).

    ``tracking_uri`` overrides ``cfg.tracking.uri`` (default ``sqlite:///mlflow.db`` in the cwd).
    ``prepared`` reuses already built data (tuning, benchmarks). Raises :class:`DeaError`
    subclasses for bad configs and data.

    Every thread pool (torch intra- and inter-op, numba, OpenMP/BLAS) is sized to
    ``training.num_threads`` for the run and given back after it: pools left at all cores (only
    torch's was sized before) are what made two trainings side by side oversubscribe the machine.
    """
    from training.threads import limit_threads

    with limit_threads(cfg.training.num_threads):
        return _train(cfg, tracking_uri=tracking_uri, out_dir=out_dir, prepared=prepared)


def _train(
    cfg: ExperimentConfig,
    *,
    tracking_uri: str | None,
    out_dir: Path | None,
    prepared: PreparedData | None,
) -> TrainResult:
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else _default_out_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("dea train %s: writing outputs to %s", cfg.name, out_dir)
    tc = cfg.training

    t0 = time.perf_counter()
    prepared = prepared if prepared is not None else prepare_data(cfg)
    timings["prepare_s"] = time.perf_counter() - t0
    data = prepared.data
    folds = walk_forward_folds(data.usable, tc.splits, min_fit=tc.window_steps, clock=data.market.clock,
                               step_ns=prepared.panel.step_ns, test_start=tc.test_start)
    chash = config_hash(cfg)

    tracker = Tracker(tracking_uri or cfg.tracking.uri, cfg.tracking.experiment, enabled=cfg.tracking.enabled)
    parent = tracker.start_run(
        cfg.name,
        tags={
            "dea.config_hash": chash,
            "dea.data_fingerprint": prepared.data_fingerprint,
            "dea.feature_spec_hash": prepared.feature_spec_hash,
            "dea.git_commit": git_commit(),
            "dea.model_kind": cfg.model.kind,
        },
        description=_plan_text(cfg, prepared, folds) + "\n\n*Running.*",
        source="dea train",
    )
    status = "FAILED"
    try:
        resolved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        (out_dir / "config.resolved.yaml").write_text(resolved)
        tracker.log_text(parent, resolved, "config/config.resolved.yaml")
        tracker.log_params(parent, key_params(cfg, n_features=len(data.feature_names)))
        tracker.log_datasets(parent, input_datasets(cfg, prepared))
        tracker.set_tags(
            parent,
            {
                "dea.seed": tc.seed,
                "dea.fold_seeds": json.dumps([tc.seed + f.index for f in folds]),
                **{f"dea.version.{k}": v for k, v in package_versions().items()},
            },
        )
        tracker.log_text(parent, json.dumps([f.to_dict() for f in folds], indent=2), "config/folds.json")

        # -- walk-forward training -------------------------------------------------------------
        t0 = time.perf_counter()
        fold_results: list[FoldResult] = []
        warm = tc.warm_start_steps if tc.warm_start_steps is not None else tc.seq_len
        candidates = resolve_candidates(cfg)
        selections: list[Selection] = []
        cand_test: list[np.ndarray] = []
        log.info("walk-forward: %d folds, %s", len(folds), _fold_plan(cfg, candidates))
        bank = fits_ahead(cfg, prepared, [(c.cfg, fold, tc.seed + fold.index, _fit_label(fold, c, candidates))
                                          for fold in folds for c in candidates], "walk-forward fits")
        # the walk-forward's optimizer work (every fit's own seconds, whichever process ran it)
        fit_stats = {"fit_workers": float(bank.workers if bank is not None else 1), "fit_steps": 0.0, "fit_seconds": 0.0}
        progress = Progress("walk-forward", total=len(folds), unit="fold")
        for fold in folds:
            child = tracker.start_run(
                f"{cfg.name}-fold{fold.index}", parent_id=parent, tags={"dea.fold": str(fold.index)}, source="dea train",
                description=f"Walk-forward fold {fold.index} of {cfg.name}: trained on rows {fold.fit[0]}:{fold.fit[1]}, "
                f"validated on {fold.val[0]}:{fold.val[1]}, tested on {fold.test[0]}:{fold.test[1]}.")
            try:
                seed = tc.seed + fold.index
                sel, trained = select(
                    candidates,
                    lambda c: fit_policy(c.cfg, prepared, fold, seed, _epoch_logger(tracker, child, _prefix(c, candidates)),
                                         label=_fit_label(fold, c, candidates), bank=bank),
                    data,
                    fold,
                    rule=tc.selection_rule,
                )
                selections.append(sel)
                for _, member_fits in trained:  # every candidate's optimizer work, chosen or not
                    fit_stats["fit_steps"] += sum(f.steps for f in member_fits)
                    fit_stats["fit_seconds"] += sum(f.fit_seconds for f in member_fits)
                if len(candidates) > 1:  # every candidate's out-of-sample returns, for the PBO only
                    cand_test.append(np.stack([block_net_returns(p, data, *fold.test) for p, _ in trained], axis=1))
                policy, fits = trained[sel.chosen]
                state0 = warm_state(policy, prepared, fold, warm)
                rollout = run_block(policy, data, *fold.test, state0=state0, record_state=hasattr(policy, "members"))
                fr = FoldResult(fold=fold, fit=fits[0], rollout=rollout, policy=policy, member_fits=fits, run_id=child,
                                candidate=candidates[sel.chosen].label, val_scores=dict(zip((c.label for c in candidates), sel.scores)))
                fr.policy_dir = out_dir / f"fold_{fold.index}" / "policy"
                save_any_policy(policy, fr.policy_dir)
                _log_fold(tracker, child, fr, prepared)
                tracker.log_artifact(child, fr.policy_dir, "policy")
                tracker.end_run(child)
            except BaseException:
                tracker.end_run(child, "FAILED")
                raise
            fold_results.append(fr)
            progress.advance(detail=f"fold {fold.index}: validation Sharpe {sel.scores[sel.chosen]:.2f}"
                             + (f", chose {fr.candidate}" if len(candidates) > 1 else ""))
        progress.close()
        timings["walk_forward_s"] = time.perf_counter() - t0

        # -- out-of-sample evaluation ------------------------------------------------------------
        t0 = time.perf_counter()
        shape = data.market.returns.shape
        oos_start, oos_stop = fold_results[0].fold.test[0], fold_results[-1].fold.test[1]
        policy_targets = stitch(shape, [(fr.fold.test[0], fr.fold.test[1], fr.rollout.exposures) for fr in fold_results])
        dispersion = None
        if any(fr.rollout.dispersion is not None for fr in fold_results):
            dispersion = np.nan_to_num(stitch(shape, [
                (fr.fold.test[0], fr.fold.test[1],
                 fr.rollout.dispersion if fr.rollout.dispersion is not None else np.zeros_like(fr.rollout.exposures))
                for fr in fold_results]))
        strategies: dict[str, StrategyResult] = {
            POLICY: evaluate_strategy(cfg, prepared.market, policy_targets, oos_start, oos_stop, POLICY, dispersion)
        }
        base_name = f"base_{cfg.model.base.kind}"
        if cfg.model.base.kind != "none":
            strategies[base_name] = evaluate_strategy(
                cfg, prepared.market, _base_oos_targets(cfg, prepared, fold_results), oos_start, oos_stop, base_name)
        spec = fold_results[0].policy.spec
        raw = raw_risk(cfg)
        for name, targets in _baseline_targets(cfg, prepared, fold_results, spec.caps, spec.max_gross).items():
            strategies[name] = evaluate_strategy(cfg, prepared.market, targets, oos_start, oos_stop, name)
            strategies[f"{name}_raw"] = evaluate_strategy(cfg, prepared.market, targets, oos_start, oos_stop,
                                                          f"{name}_raw", risk=raw)
        compare(strategies, oos_start, oos_stop, n_candidates=len(candidates))
        significance = policy_significance(strategies, oos_start, oos_stop, seed=tc.seed)
        pbo = selection_pbo(cand_test) if cand_test else None
        timings["evaluate_s"] = time.perf_counter() - t0
        by_fold = {fr.fold.index: fr for fr in fold_results}
        for index, m in _fold_metrics(cfg, prepared, fold_results).items():
            by_fold[index].standalone = m
            tracker.log_metrics(by_fold[index].run_id, {f"oos_{k}": v for k, v in m.items()})

        # -- final model, export, registry ---------------------------------------------------------
        t0 = time.perf_counter()
        final_candidate = _final_candidate(candidates, fold_results)
        if tc.final_refit:
            ffold = final_fold(data.usable, tc.splits, min_fit=tc.window_steps, clock=data.market.clock,
                               step_ns=prepared.panel.step_ns)
            final_seed = tc.seed + len(folds)
            final_bank = fits_ahead(cfg, prepared, [(final_candidate.cfg, ffold, final_seed, "final model")], "final fits")
            final_policy, _ = fit_policy(final_candidate.cfg, prepared, ffold, final_seed,
                                         _epoch_logger(tracker, parent, "final_"), label="final model", bank=final_bank)
        else:
            ffold = fold_results[-1].fold
            final_policy = fold_results[-1].policy
            final_candidate = next(c for c in candidates if c.label == fold_results[-1].candidate)
        final_dir = out_dir / "final" / "policy"
        save_any_policy(final_policy, final_dir)
        tracker.log_artifact(parent, final_dir, "model/policy")
        onnx_path, registered = (
            _export_and_register(final_candidate.cfg, final_policy, prepared, ffold, out_dir, tracker, parent)
            if tc.export_onnx
            else (None, None)
        )
        exported = ExportInfo(
            candidate=final_candidate.label,
            refit=tc.final_refit,
            saw_test_rows=bool(tc.final_refit),
            fit=(int(ffold.fit[0]), int(ffold.fit[1])),
            val=(int(ffold.val[0]), int(ffold.val[1])),
        )
        tracker.set_tags(parent, {"dea.export_candidate": exported.candidate,
                                  "dea.export_saw_test_rows": str(exported.saw_test_rows).lower()})
        timings["final_model_s"] = time.perf_counter() - t0
        notes = quality_notes(cfg, strategies, base_name, fold_results)
        coverage = coverage_report(prepared.panel)  # partial funding / exogenous coverage, made explicit
        notes.extend(coverage.notes())
        tracker.log_metrics(parent, coverage.metrics())
        if pbo is not None:
            notes.append(f"probability of backtest overfitting of the candidate choice (CSCV, {pbo.n_blocks} blocks, "
                         f"{pbo.n_candidates} candidates): {pbo.pbo:.2f}")
            tracker.log_metrics(parent, {"selection_pbo": float(pbo.pbo)})

        # -- report --------------------------------------------------------------------------------
        from training.report import write_outputs

        paths = write_outputs(out_dir, strategies, oos_start, oos_stop, fold_results, prepared, cfg,
                              significance=significance, exported=exported, notes=notes)
        paths["final_policy"] = final_dir
        if onnx_path is not None:
            paths["onnx"] = onnx_path
        for key in ("metrics_csv", "metrics_json", "tearsheet_png", "tearsheet_html", "tearsheet_interactive",
                    "oos_exposures", "oos_equity"):
            if key in paths:
                tracker.log_artifact(parent, paths[key], "report")
        # the policy's full metric set; a baseline's headline numbers (all of them are in
        # report/metrics.csv); the policy's Sharpe against each baseline
        tracker.log_metrics(parent, {
            **{f"{POLICY}.{k}": v for k, v in strategies[POLICY].metrics.items()},
            **{f"{name}.{k}": s.metrics[k] for name, s in strategies.items() if name != POLICY
               for k in (("sharpe",) if name.endswith("_raw") else HEADLINE_METRICS) if k in s.metrics},
            **{f"policy_vs.{name}.{k}": v for name, d in significance.items()  # the difference and its CI
               for k, v in d.to_dict("sharpe_diff").items() if k != "sharpe_diff_se"},
        })
        timings["total_s"] = time.perf_counter() - t_start
        tracker.log_metrics(parent, {f"time_{k}": v for k, v in timings.items()} | fit_stats)
        tracker.set_description(parent, _plan_text(cfg, prepared, folds) + "\n\n"
                                + _result_text(strategies, oos_start, oos_stop, data.market.clock, onnx_path, registered))
        status = "FINISHED"
    finally:
        tracker.end_run(parent, status)

    return TrainResult(
        run_id=parent,
        tracking_uri=tracker.uri,
        config_hash=chash,
        data_fingerprint=prepared.data_fingerprint,
        feature_spec_hash=prepared.feature_spec_hash,
        folds=fold_results,
        strategies=strategies,
        oos_start=int(oos_start),
        oos_stop=int(oos_stop),
        clock=data.market.clock,
        final_policy=final_policy,
        out_dir=out_dir,
        paths=paths,
        registered=registered,
        timings=timings,
        fit_stats=fit_stats,
        significance=significance,
        exported=exported,
        notes=notes,
    )


__all__ = ["FoldResult", "TrainResult", "fit_policy", "fits_ahead", "train", "warm_state"]
