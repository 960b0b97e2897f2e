"""``dea retrain``: scheduled champion/challenger retraining that never promotes a worse model.

One run (cron, a systemd timer or a Kubernetes CronJob):

1. takes the run lock (:mod:`training.retrain_lock`): two runs never overlap; a lock left by a
   crashed run is detected and cleared;
2. refreshes the data: every source is re-ingested into the canonical store when its files
   changed, and the panel is rebuilt from the newest rows;
3. trains a challenger on the newest ``retrain.train_window`` (with ``retrain.tuned_config``,
   the best YAML of ``dea tune``, when set), purged from the evaluation window, and exports it
   to ONNX behind the parity gate with its training-time feature distribution embedded
   (:mod:`dea.drift`);
4. runs champion (``models:/NAME@champion``) and challenger over the same most recent
   ``retrain.eval_window`` — which the challenger never saw — through the backtester with the
   experiment's costs and risk engine, and, with ``retrain.stress_gate``, through the stress
   scenarios of the live loop;
5. promotes the challenger only under the rule of :mod:`training.promotion`;
6. records both models' metrics, the decision and its reason in an MLflow run.

Exit codes (CLI): 0 promoted or kept, 2 on a DEA error (bad config/data, lock held), 1 on an
unexpected failure. ``--dry-run`` decides without touching the registry aliases.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dea.config.experiment import ExperimentConfig, config_hash, load_config
from dea.errors import ConfigError, DataError, ModelError
from dea.timeutil import iso, parse_duration
from training.promotion import Decision, ModelScore, decide
from training.retrain_lock import RunLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Windows:
    """Row ranges on the decision clock: challenger fit/val, and the shared evaluation window."""

    fit: tuple[int, int]
    val: tuple[int, int]
    eval: tuple[int, int]


@dataclass
class RetrainOutcome:
    decision: Decision
    champion: ModelScore | None
    challenger: ModelScore
    challenger_path: Path
    champion_version: str | None = None
    challenger_version: str | None = None
    promoted_version: str | None = None
    dry_run: bool = False
    run_id: str = ""
    stale_lock_cleared: str | None = None
    data_refresh: dict[str, str] = field(default_factory=dict)
    windows: dict[str, str] = field(default_factory=dict)

    def format(self) -> str:
        d = self.decision
        verb = "PROMOTE" if d.promote else "KEEP champion"
        if d.promote and self.dry_run:
            verb = "would PROMOTE (dry run)"
        lines = [f"decision: {verb} — {d.reason}"]
        for k, v in self.windows.items():
            lines.append(f"  {k}: {v}")
        head = f"  {'metric':<14} {'champion':>10} {'challenger':>10}"
        lines.append(head)
        shown = ("sharpe", "sortino", "annual_return", "annual_vol", "max_drawdown", "var_99", "es_99", "turnover")
        have = set(self.challenger.metrics) | set(self.champion.metrics if self.champion else {})
        keys = [k for k in shown if k in have] + ([self.decision.metric] if self.decision.metric not in shown else [])
        for k in keys:
            c = self.champion.metrics.get(k, float("nan")) if self.champion else float("nan")
            lines.append(f"  {k:<14} {c:>10.4g} {self.challenger.metrics.get(k, float('nan')):>10.4g}")
        if self.challenger.stress:
            worst = max(self.challenger.stress, key=lambda s: s.max_drawdown)
            lines.append(
                f"  stress: {len(self.challenger.stress)} scenarios, "
                f"{sum(s.breaches for s in self.challenger.stress)} breaches, worst drawdown {worst.max_drawdown:.2%} ({worst.scenario})"
            )
        if self.stale_lock_cleared:
            lines.append(f"  note: cleared a stale lock of {self.stale_lock_cleared}")
        if self.promoted_version:
            lines.append(f"  champion is now version {self.promoted_version}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ windows
def split_windows(cfg: ExperimentConfig, clock: np.ndarray, usable: np.ndarray) -> Windows:
    """The evaluation window (most recent ``eval_window``), a purge of ``training.splits.purge +
    embargo`` rows (at least ``retrain.gap``), and the challenger's training window before it,
    split into fit and validation by ``training.splits.val_share``."""
    rc, sc = cfg.retrain, cfg.training.splits
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        raise DataError("retrain: no usable rows in the data")
    first, last = int(idx[0]), int(idx[-1])
    step = int(np.median(np.diff(clock))) if clock.size > 1 else 1
    eval_start = int(np.searchsorted(clock, clock[last] - parse_duration(rc.eval_window), side="right"))
    eval_start = max(eval_start, first)
    gap = max(sc.gap_steps(step), -(-parse_duration(rc.gap) // step))
    train_stop = eval_start - gap
    train_start = first
    if rc.train_window is not None:
        train_start = max(first, int(np.searchsorted(clock, clock[train_stop - 1] - parse_duration(rc.train_window), side="left")))
    n_val = int(np.floor(sc.val_share * (train_stop - train_start)))
    fit_stop = train_stop - n_val - sc.gap_steps(step)
    if last + 1 - eval_start < 2 or n_val < 2 or fit_stop - train_start < cfg.training.seq_len:
        raise ConfigError(
            f"retrain: {last + 1 - first} usable rows cannot hold an evaluation window of {rc.eval_window} "
            f"({last + 1 - eval_start} rows), a gap of {gap} and a training window with >= {cfg.training.seq_len} fit rows "
            f"and >= 2 validation rows (fit {max(fit_stop - train_start, 0)}, val {n_val})"
        )
    return Windows(fit=(train_start, fit_stop), val=(train_stop - n_val, train_stop), eval=(eval_start, last + 1))


# ------------------------------------------------------------------------------------ data
def refresh_data(cfg: ExperimentConfig) -> dict[str, str]:
    """Re-ingest every source whose files changed into the canonical store (``data.store``)."""
    from dea.data.store import DataStore, store_root

    store = DataStore(store_root(cfg))
    out = {}
    for src in cfg.data.sources:
        outcome = store.ingest_source(src, cfg.base_dir)
        out[src.name] = str(getattr(outcome, "status", outcome))
    return out


def shuffled(prepared: Any, rows: tuple[int, int], seed: int) -> Any:
    """A copy of the prepared data whose market rows inside ``rows`` are permuted: features no
    longer line up with the returns they precede (the negative control; any model trained on
    it has nothing real to learn)."""
    import dataclasses

    data = prepared.data
    m = data.market
    a, b = rows
    perm = a + np.random.default_rng(seed).permutation(b - a)
    changes = {}
    for f in dataclasses.fields(m):
        v = getattr(m, f.name)
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == data.features.shape[0] and f.name != "clock":
            w = v.copy()
            w[a:b] = v[perm]
            changes[f.name] = w
    new_market = dataclasses.replace(m, **changes)
    return dataclasses.replace(prepared, data=dataclasses.replace(data, market=new_market))


# ------------------------------------------------------------------------------------ challenger
def train_challenger(cfg: ExperimentConfig, prepared: Any, win: Windows) -> Any:
    """Fit the challenger (an ensemble of ``model.ensemble`` seeds when > 1) on the fit/val rows."""
    from training.ensemble import fit_ensemble
    from training.fit import fit_fold
    from training.splits import Fold

    fold = Fold(index=0, fit=win.fit, val=win.val, test=win.eval)
    if cfg.model.ensemble > 1:
        return fit_ensemble(cfg, prepared.data, fold)
    return fit_fold(cfg, prepared.data, fold, seed=cfg.training.seed).policy


def export_challenger(
    cfg: ExperimentConfig, policy: Any, prepared: Any, win: Windows, out_dir: Path, run_id: str
) -> Path:
    """ONNX export (parity gate on the validation rows) with the drift reference embedded."""
    from training.export import export_trained_policy
    from training.rollout_eval import run_block

    data = prepared.data
    val = run_block(policy, data, *win.val, record_state=False)
    ok = data.usable[win.val[0] : win.val[1]]
    clock = data.market.clock
    window = (iso(int(clock[win.fit[0]])), iso(int(clock[win.val[1] - 1])))
    report = export_trained_policy(
        policy,
        feature_spec_hash=prepared.feature_spec_hash,
        train_window=window,
        config_hash=config_hash(cfg),
        data_fingerprint=prepared.data_fingerprint,
        validation_inputs=(val.inputs_features[ok], val.inputs_exposure[ok]),
        path=out_dir / "challenger.onnx",
        model_name=cfg.tracking.registered_model,
        model_version=f"run-{run_id}" if run_id else "retrain",
    )
    embed_drift_reference(cfg, report.path, data, (win.fit[0], win.val[1]), window)
    return report.path


def embed_drift_reference(
    cfg: ExperimentConfig, onnx_path: Path, data: Any, rows: tuple[int, int], train_window: tuple[str, str] | None = None
) -> Any:
    """Store the training-time distribution of every model input (usable rows in ``rows`` of
    ``data``, a :class:`training.datamodule.TrainingData`) in the ONNX metadata
    (``dea.drift_reference``), for the live drift monitor and ``dea drift``. Returns the reference."""
    from dea.drift import METADATA_KEY, build_reference

    idx = np.arange(*rows)
    idx = idx[data.usable[idx]]
    ref = build_reference(
        data.features[idx], data.feature_names, n_bins=cfg.drift.n_bins, n_quantiles=cfg.drift.n_quantiles,
        train_window=train_window,
    )
    stamp_metadata(Path(onnx_path), {METADATA_KEY: ref.to_json()})
    return ref


def stamp_metadata(onnx_path: Path, props: dict[str, str]) -> None:
    """Add metadata properties to an exported ONNX file in place (atomically). The graph is not
    touched, so the parity the exporter verified still holds; the manifest is rewritten for the
    new bytes (a stale digest would make serving refuse the model)."""
    import onnx

    from dea.model_artifact import LAX, read_manifest, verify_model_bytes

    # never re-bless a file that changed since export: its current manifest must still hold
    verify_model_bytes(Path(onnx_path).read_bytes(), str(onnx_path), LAX, manifest=read_manifest(onnx_path))
    model = onnx.load(str(onnx_path))
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            model.metadata_props.add(key=k, value=v)
    mode = onnx_path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=f".{onnx_path.name}.", dir=onnx_path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(model.SerializeToString())
    os.chmod(tmp, mode)  # mkstemp makes 0600; keep the exported file's permissions
    os.replace(tmp, onnx_path)
    # the bytes changed: the manifest (digest, signature) must describe the final file
    from dea.onnx_contract import PolicyMetadata
    from training.export import write_model_manifest

    write_model_manifest(onnx_path, PolicyMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(onnx_path)))


# ------------------------------------------------------------------------------------ evaluation
def score_model(
    label: str, model_path: Path, cfg: ExperimentConfig, prepared: Any, win: Windows, *, stress: bool
) -> ModelScore:
    """Metrics of an ONNX policy on the evaluation window: backtest with the experiment's costs
    and risk engine; hard-limit breaches of what it ordered; stress results when asked."""
    from dea.backtest.policy_eval import onnx_policy_targets
    from training.evaluation import evaluate_strategy

    data = prepared.data
    X = _inputs_for(model_path, prepared)
    a, b = win.eval
    mask = np.zeros(len(X), dtype=bool)
    mask[a:b] = data.usable[a:b]
    out = onnx_policy_targets(model_path, X, row_mask=mask, instruments=list(prepared.panel.instruments), check_spec=False)
    targets = np.full(out.targets.shape, np.nan)
    targets[a:b] = out.targets[a:b]
    res = evaluate_strategy(cfg, prepared.market, targets, a, b, label)
    metrics = {k: float(v) for k, v in res.metrics.items() if isinstance(v, (int, float))}
    breaches = _ordered_breaches(cfg, res.backtest, np.arange(a, b))
    results = []
    if stress and cfg.stress.all:
        from serving.stress import run_stress

        results = run_stress(cfg, model_path).results
    return ModelScore(label, metrics, breaches=breaches, max_drawdown=metrics.get("max_drawdown", 0.0), stress=tuple(results))


def _inputs_for(model_path: Path, prepared: Any) -> np.ndarray:
    """The prepared inputs in the model's own feature order (a champion trained on an older
    feature list can be scored if every feature it needs is still computed)."""
    from training.registry import read_metadata

    meta = read_metadata(model_path)
    data = prepared.data
    col = {n: j for j, n in enumerate(data.feature_names)}
    missing = [n for n in meta.feature_names if n not in col]
    if missing:
        raise ModelError(
            f"{model_path}: the model needs features the current config does not compute: {missing[:5]}; "
            "its inputs cannot be rebuilt, so it cannot be compared on the same window"
        )
    if list(meta.instruments) != list(prepared.panel.instruments):
        raise ModelError(f"{model_path}: model instruments {list(meta.instruments)} differ from {list(prepared.panel.instruments)}")
    return np.ascontiguousarray(data.features[:, [col[n] for n in meta.feature_names]], dtype=np.float32)


def _ordered_breaches(cfg: ExperimentConfig, bt: Any, rows: np.ndarray) -> int:
    """Hard-limit breaches of the exposure the backtest's risk engine let through."""
    from dea.risk.engine import instrument_caps
    from dea.stress.metrics import Limits, limit_breaches

    w = np.nan_to_num(np.asarray(bt.exposures, dtype=np.float64)[rows])
    r = cfg.risk
    limits = Limits(instrument_caps(r, cfg.data.instruments), r.max_gross, r.max_net, r.max_leverage, None)
    # held right after the trades: equal to what the risk engine allowed up to lot rounding
    return len(limit_breaches(w, limits, np.ones(len(w)), np.zeros(len(w), dtype=bool), tol=1e-6))


# ------------------------------------------------------------------------------------ registry
def champion_model(cfg: ExperimentConfig, tracking_uri: str | None) -> tuple[Path | None, str | None]:
    """Local ONNX of ``models:/NAME@champion`` (None when the model or alias does not exist)."""
    from serving.model_source import resolve_model

    uri = f"models:/{cfg.tracking.registered_model}@{cfg.retrain.champion_alias}"
    try:
        resolved = resolve_model(uri, tracking_uri=tracking_uri)
    except ModelError as exc:
        text = str(exc)
        if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower() or "alias" in text.lower():
            log.info("no champion yet (%s)", uri)
            return None, None
        raise
    return Path(resolved.path), resolved.version


# ------------------------------------------------------------------------------------ entry point
def retrain(
    config: str | Path,
    *,
    overrides: Sequence[str] = (),
    dry_run: bool = False,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    negative_control: bool = False,
    refresh: bool = True,
) -> RetrainOutcome:
    """One champion/challenger cycle (see the module docstring). ``negative_control`` trains the
    challenger on shuffled labels — a model the rule must refuse (an operator's check of the gate)."""
    from training.tracking import default_tracking_uri

    cfg = load_config(config, list(overrides))
    if cfg.retrain.tuned_config:
        tuned = cfg.resolve_path(cfg.retrain.tuned_config)
        log.info("training the challenger with the tuned config %s", tuned)
        cfg = load_config(tuned, list(overrides))
    uri = tracking_uri or cfg.tracking.uri or default_tracking_uri()
    lock = RunLock(cfg.retrain.lock_file, stale_note_after_s=parse_duration(cfg.retrain.stale_lock_after) / 1e9)
    with lock:
        return _cycle(cfg, uri, lock, dry_run=dry_run, out_dir=out_dir, negative_control=negative_control, refresh=refresh)


def _cycle(
    cfg: ExperimentConfig, uri: str, lock: RunLock, *, dry_run: bool, out_dir: str | Path | None, negative_control: bool, refresh: bool
) -> RetrainOutcome:
    import torch

    from training.prepare import prepare_data
    from training.registry import promote, register_policy
    from training.tracking import Tracker

    t0 = time.perf_counter()
    torch.set_num_threads(cfg.training.num_threads)
    rc = cfg.retrain
    out = Path(out_dir) if out_dir is not None else Path(rc.artifacts) / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(uri, cfg.tracking.experiment, enabled=cfg.tracking.enabled)
    run = tracker.start_run(f"retrain-{cfg.name}", tags={"dea.kind": "retrain", "dea.dry_run": str(dry_run),
                                                         "dea.negative_control": str(negative_control)})
    status = "FAILED"
    try:
        refreshed = refresh_data(cfg) if refresh else {}
        prepared = prepare_data(cfg)
        data = prepared.data
        win = split_windows(cfg, data.market.clock, data.usable)
        clock = data.market.clock
        windows = {
            "challenger fit": f"{iso(int(clock[win.fit[0]]))} .. {iso(int(clock[win.fit[1] - 1]))}",
            "challenger val": f"{iso(int(clock[win.val[0]]))} .. {iso(int(clock[win.val[1] - 1]))}",
            "evaluation": f"{iso(int(clock[win.eval[0]]))} .. {iso(int(clock[win.eval[1] - 1]))} ({win.eval[1] - win.eval[0]} steps)",
        }
        train_data = shuffled(prepared, (win.fit[0], win.val[1]), cfg.training.seed) if negative_control else prepared
        policy = train_challenger(cfg, train_data, win)
        chal_path = export_challenger(cfg, policy, prepared, win, out, run)
        champ_path, champ_version = champion_model(cfg, uri)
        challenger = score_model("challenger", chal_path, cfg, prepared, win, stress=rc.stress_gate)
        champion = (
            score_model("champion", champ_path, cfg, prepared, win, stress=rc.stress_gate) if champ_path is not None else None
        )
        dd_limit = cfg.risk.drawdown.hard if cfg.risk.drawdown.enabled else 1.0
        decision = decide(champion, challenger, rc, dd_limit=dd_limit, stress_dd_limit=cfg.stress.max_drawdown or dd_limit)
        outcome = RetrainOutcome(
            decision, champion, challenger, chal_path, champion_version=champ_version, dry_run=dry_run, run_id=run,
            stale_lock_cleared=lock.stale_cleared.describe() if lock.stale_cleared else None,
            data_refresh=refreshed, windows=windows,
        )
        if not dry_run and tracker.enabled:
            reg = register_policy(chal_path, registered_model=cfg.tracking.registered_model, tracking_uri=uri, run_id=run,
                                  alias=rc.challenger_alias)
            outcome.challenger_version = reg.version
            if decision.promote:
                promote(cfg.tracking.registered_model, reg.version, tracking_uri=uri, alias=rc.champion_alias)
                outcome.promoted_version = reg.version
        _record(tracker, run, cfg, outcome, time.perf_counter() - t0)
        (out / "decision.json").write_text(json.dumps(_decision_doc(outcome), indent=1, default=str))
        status = "FINISHED"
        return outcome
    finally:
        tracker.end_run(run, status)


def _decision_doc(o: RetrainOutcome) -> dict[str, Any]:
    d = o.decision
    return {
        "promote": d.promote and not o.dry_run,
        "would_promote": d.promote,
        "reason": d.reason,
        "metric": d.metric,
        "champion_value": d.champion_value,
        "challenger_value": d.challenger_value,
        "improvement": d.improvement,
        "champion_version": o.champion_version,
        "challenger_version": o.challenger_version,
        "promoted_version": o.promoted_version,
        "windows": o.windows,
        "data_refresh": o.data_refresh,
        "champion_metrics": dict(o.champion.metrics) if o.champion else None,
        "challenger_metrics": dict(o.challenger.metrics),
        "stress": [s.row() for s in o.challenger.stress],
    }


def _record(tracker: Any, run: str, cfg: ExperimentConfig, o: RetrainOutcome, seconds: float) -> None:
    """Both models' metrics, the decision and its reason on the retrain run."""
    if not (tracker.enabled and run):
        return
    m = {f"challenger.{k}": v for k, v in o.challenger.metrics.items()}
    if o.champion is not None:
        m.update({f"champion.{k}": v for k, v in o.champion.metrics.items()})
    m.update({"challenger.breaches": o.challenger.breaches, "promoted": float(o.decision.promote and not o.dry_run),
              "improvement": o.decision.improvement, "retrain_seconds": seconds})
    for s in o.challenger.stress:
        m[f"stress.{s.scenario}.max_dd"] = s.max_drawdown
        m[f"stress.{s.scenario}.breaches"] = s.breaches
    tracker.log_metrics(run, m)
    tracker.log_params(run, {"metric": cfg.retrain.metric, "margin": cfg.retrain.margin, "eval_window": cfg.retrain.eval_window,
                             "config_hash": config_hash(cfg)})
    tracker.set_tags(run, {"dea.decision": "promote" if o.decision.promote else "keep", "dea.reason": o.decision.reason,
                           "dea.champion_version": o.champion_version or "", "dea.challenger_version": o.challenger_version or "",
                           **{f"dea.window.{k}": v for k, v in o.windows.items()}})
    tracker.log_text(run, json.dumps(_decision_doc(o), indent=1, default=str), "retrain/decision.json")


__all__ = [
    "RetrainOutcome",
    "Windows",
    "champion_model",
    "embed_drift_reference",
    "export_challenger",
    "refresh_data",
    "retrain",
    "score_model",
    "shuffled",
    "split_windows",
    "stamp_metadata",
    "train_challenger",
]
