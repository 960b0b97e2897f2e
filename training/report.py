"""Run outputs: the metrics table, out-of-sample exposures, the tearsheet and the CLI summary."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.timeutil import iso

if TYPE_CHECKING:  # pragma: no cover
    from dea.config.experiment import ExperimentConfig
    from training.evaluation import StrategyResult
    from training.pipeline import FoldResult, TrainResult
    from training.prepare import PreparedData

TABLE_COLUMNS = (
    "sharpe", "deflated_sharpe", "sortino", "annual_return", "annual_vol", "max_drawdown", "calmar",
    "turnover_annual", "cost_total",
)


def metrics_rows(strategies: Mapping[str, "StrategyResult"]) -> list[dict[str, Any]]:
    rows = []
    for name, s in strategies.items():
        row: dict[str, Any] = {"strategy": name}
        row.update({k: float(v) for k, v in s.metrics.items()})
        rows.append(row)
    return rows


def write_outputs(
    out_dir: Path,
    strategies: Mapping[str, "StrategyResult"],
    start: int,
    stop: int,
    folds: Sequence["FoldResult"],
    prepared: "PreparedData",
    cfg: "ExperimentConfig",
) -> dict[str, Path]:
    """Write metrics (CSV + JSON), OOS exposures (CSV) and the tearsheet (PNG + HTML)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    table = metrics_rows(strategies)
    keys = ["strategy"] + sorted({k for r in table for k in r if k != "strategy"})
    p = out_dir / "metrics.csv"
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(table)
    paths["metrics_csv"] = p
    clock = prepared.data.market.clock
    summary = {
        "oos_window": [iso(int(clock[start])), iso(int(clock[stop - 1]))],
        "folds": [
            {
                **fr.fold.to_dict(),
                "best_epoch": fr.fit.best_epoch,
                "best_val_loss": fr.fit.best_val_loss,
                "steps_per_second": fr.fit.steps_per_second,
            }
            for fr in folds
        ],
        "metrics": {r["strategy"]: {k: v for k, v in r.items() if k != "strategy"} for r in table},
    }
    p = out_dir / "metrics.json"
    p.write_text(json.dumps(summary, indent=2, default=_json_default))
    paths["metrics_json"] = p

    pol = strategies["policy"].backtest
    p = out_dir / "oos_exposures.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", *(f"target_{s}" for s in pol.instruments), *(f"held_{s}" for s in pol.instruments)])
        targets = strategies["policy"].targets
        for t in range(start, stop):
            w.writerow([iso(int(clock[t])), *targets[t].round(6), *pol.exposures[t].round(6)])
    paths["oos_exposures"] = p
    p = out_dir / "oos_equity.csv"
    names = list(strategies)
    end = min(stop + 1, len(clock))
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", *names])
        wealth = {n: np.cumprod(1.0 + np.asarray(strategies[n].backtest.returns)[start:end]) for n in names}
        for k, t in enumerate(range(start, end)):
            w.writerow([iso(int(clock[t])), *(f"{wealth[n][k]:.6f}" for n in names)])
    paths["oos_equity"] = p
    paths.update(_tearsheet(out_dir / "tearsheet", strategies, start, stop, cfg))
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def _tearsheet(
    out_dir: Path, strategies: Mapping[str, "StrategyResult"], start: int, stop: int, cfg: "ExperimentConfig"
) -> dict[str, Path]:
    """The backtest tearsheet (PNG + HTML) of the out-of-sample span, the policy first."""
    from training.metrics_adapter import tearsheet

    return tearsheet(
        out_dir,
        {n: s.backtest for n, s in strategies.items()},
        {n: s.metrics for n, s in strategies.items()},
        start,
        stop,
        title=f"{cfg.name}: walk-forward out of sample, after costs",
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan"
        return f"{v:.3f}"
    return str(v)


def format_table(metrics: Mapping[str, Mapping[str, float]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Plain-text table: one row per strategy, the policy first."""
    names = sorted(metrics, key=lambda n: (n != "policy", n))
    cols = [c for c in columns if any(c in metrics[n] for n in names)]
    header = ["strategy", *cols]
    body = [[n, *(_fmt(metrics[n].get(c, float("nan"))) for c in cols)] for n in names]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in body)])


def format_summary(result: "TrainResult") -> str:
    """What ``dea train`` prints at the end."""
    clock = result.clock
    lines = [
        "",
        f"out-of-sample {iso(int(clock[result.oos_start]))} .. {iso(int(clock[result.oos_stop - 1]))} "
        f"({result.oos_stop - result.oos_start} decisions, {len(result.folds)} walk-forward folds), after costs:",
        format_table(result.metrics),
        "",
        f"outputs:        {result.out_dir}",
    ]
    if "onnx" in result.paths:
        lines.append(f"exported model: {result.paths['onnx']}")
    if result.registered is not None:
        lines.append(f"registered:     {result.registered.name} v{result.registered.version} (alias challenger)")
    if result.run_id:
        lines.append(f"MLflow run id:  {result.run_id}")
        lines.append(f"open the UI:    {result.ui_command}")
    return "\n".join(lines)
