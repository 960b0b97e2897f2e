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
    "sharpe", "sharpe_diff", "diff_ci", "deflated_sharpe", "annual_return", "annual_vol", "max_drawdown",
    "exposure_gross_mean", "turnover_annual", "cost_fees", "cost_spread", "cost_impact", "cost_funding",
)
COLUMN_TITLES = {
    "sharpe_diff": "policy-this", "diff_ci": "95% CI", "deflated_sharpe": "deflated", "annual_return": "ann.ret",
    "annual_vol": "ann.vol", "max_drawdown": "max DD", "exposure_gross_mean": "gross", "turnover_annual": "turnover/y",
    "cost_fees": "fees", "cost_spread": "spread", "cost_impact": "impact", "cost_funding": "funding",
}


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
    *,
    significance: Mapping[str, Any] | None = None,
    exported: Any = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write metrics (CSV + JSON), OOS exposures (CSV) and the tearsheet (PNG + HTML)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    table = metrics_rows(strategies)
    significance = dict(significance or {})
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
                "test_window": [iso(int(clock[fr.fold.test[0]])), iso(int(clock[fr.fold.test[1] - 1]))],
                "candidate": fr.candidate,
                "validation_sharpe": fr.val_scores,
                "standalone_metrics": fr.standalone,
            }
            for fr in folds
        ],
        "metrics": {r["strategy"]: {k: v for k, v in r.items() if k != "strategy"} for r in table},
        "sharpe_difference": {n: _as_dict(d) for n, d in significance.items()},
        "exported_model": None if exported is None else {
            "candidate": exported.candidate, "refit_on_all_data": exported.refit,
            "saw_test_rows": exported.saw_test_rows,
            "fit_window": [iso(int(clock[exported.fit[0]])), iso(int(clock[exported.fit[1] - 1]))],
            "validation_window": [iso(int(clock[exported.val[0]])), iso(int(clock[exported.val[1] - 1]))],
        },
        "notes": list(notes),
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
    paths.update(_tearsheet(out_dir / "tearsheet", strategies, start, stop, cfg,
                            fold_starts=[int(clock[fr.fold.test[0]]) for fr in folds], significance=significance,
                            notes=notes))
    return paths


def _as_dict(d: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    out = asdict(d) if is_dataclass(d) else dict(d)
    verdict = getattr(d, "verdict", None)
    if verdict is not None:
        out["verdict"] = verdict
    return out


def table_metrics(metrics: Mapping[str, Mapping[str, float]], significance: Mapping[str, Any] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Metrics with the policy's Sharpe difference and its CI against each strategy merged in."""
    out = {n: dict(m) for n, m in metrics.items()}
    for name, d in (significance or {}).items():
        if name in out:
            out[name]["sharpe_diff"] = float(d.diff)
            out[name]["diff_ci"] = f"[{d.lo:+.2f}, {d.hi:+.2f}]" + ("*" if d.lo > 0 or d.hi < 0 else "")
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def _tearsheet(
    out_dir: Path, strategies: Mapping[str, "StrategyResult"], start: int, stop: int, cfg: "ExperimentConfig",
    fold_starts: Sequence[int] = (), significance: Mapping[str, Any] | None = None, notes: Sequence[str] = (),
) -> dict[str, Path]:
    """The backtest tearsheet (PNG + HTML) of the out-of-sample span, the policy first; its
    metrics table carries the policy's Sharpe difference and CI against each row."""
    from training.metrics_adapter import tearsheet

    return tearsheet(
        out_dir,
        {n: s.backtest for n, s in strategies.items()},
        table_metrics({n: s.metrics for n, s in strategies.items()}, significance),
        start,
        stop,
        title=f"{cfg.name}: walk-forward out of sample, after costs",
        fold_starts=fold_starts,
        notes=notes,
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan"
        return f"{v:.3f}"
    return str(v)


def _order(name: str) -> tuple[int, str]:
    if name == "policy":
        return (0, name)
    if name.startswith("base_"):
        return (1, name)
    if name == "buy_and_hold_raw":
        return (2, name)
    return (3, name)


def format_table(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Plain-text table: one row per strategy — the policy, its base, raw buy-and-hold (the
    reference row), then the rest; ``*_raw`` rows ran without the risk engine."""
    names = sorted(metrics, key=_order)
    cols = [c for c in columns if any(c in metrics[n] for n in names)]
    header = ["strategy", *(COLUMN_TITLES.get(c, c) for c in cols)]
    body = [[n, *(_fmt(metrics[n].get(c, float("nan"))) for c in cols)] for n in names]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in body)])


def _span(start_ns: int, end_ns: int) -> str:
    """``2018-10-02 .. 2020-07-26`` for whole days, full ISO times otherwise (hourly clocks)."""
    a, b = iso(start_ns), iso(end_ns)
    if a.endswith("T00:00:00Z") and b.endswith("T00:00:00Z"):
        a, b = a[:10], b[:10]
    return f"{a} .. {b}"


def results_text(result: "TrainResult") -> str:
    """The out-of-sample results: span, table, how to read it, the run's notes. One builder for
    what ``dea train`` prints and what the README's generated block holds, so the two can never
    differ."""
    clock = result.clock
    head = (f"out of sample {_span(int(clock[result.oos_start]), int(clock[result.oos_stop - 1]))}: "
            f"{result.oos_stop - result.oos_start} decisions, {len(result.folds)} walk-forward folds, after costs")
    return "\n".join([
        head,
        format_table(table_metrics(result.metrics, result.significance)),
        "(policy-this: the policy's Sharpe minus the row's, 95% stationary-bootstrap CI, * = distinguishable from 0;",
        " *_raw rows: no risk engine, costs and funding only; costs are totals as fractions of equity)",
        *(f"note: {n}" for n in result.notes),
    ])


def format_summary(result: "TrainResult") -> str:
    """What ``dea train`` prints at the end: :func:`results_text`, then where everything went."""
    lines = ["", results_text(result), ""]
    if result.exported is not None:
        e = result.exported
        lines.append(
            f"exported model: candidate {e.candidate}, "
            + ("refit on all data -- it SAW the test rows, so backtesting it over them is in sample"
               if e.saw_test_rows else "the last fold's model (trained before its test block)")
        )
    lines.append(f"outputs:        {result.out_dir}")
    if "onnx" in result.paths:
        from dea.model_artifact import read_manifest

        manifest = read_manifest(result.paths["onnx"])
        digest = f"  (sha256 {manifest.sha256[:12]}{', signed' if manifest.signature else ''})" if manifest else ""
        lines.append(f"exported model: {result.paths['onnx']}{digest}")
    if result.registered is not None:
        lines.append(f"registered:     {result.registered.name} v{result.registered.version} (alias challenger)")
    if result.run_id:
        lines.append(f"MLflow run id:  {result.run_id}")
        lines.append(f"open the UI:    {result.ui_command}")
    return "\n".join(lines)


RESULTS_BLOCK_START = "<!-- results:{name} generated by `{command}`; do not edit by hand -->"
RESULTS_BLOCK_END = "<!-- /results:{name} -->"


def results_block(result: "TrainResult") -> str:
    """:func:`results_text` as a fenced text block (the README's generated results)."""
    return "\n".join(["```text", results_text(result), "```"])


def update_results_block(path: Path, name: str, command: str, text: str) -> bool:
    """Replace the generated block ``name`` in a Markdown file (README) with ``text``.

    The block is delimited by :data:`RESULTS_BLOCK_START` / :data:`RESULTS_BLOCK_END` comment
    lines; a file without them is an error (a table pasted by hand is what this replaces, so
    silently appending would leave two tables). Returns whether the file changed."""
    from dea.errors import ConfigError

    start_tag = RESULTS_BLOCK_START.format(name=name, command=command)
    end_tag = RESULTS_BLOCK_END.format(name=name)
    src = Path(path).read_text()
    begin = src.find(f"<!-- results:{name} ")
    end = src.find(end_tag)
    if begin < 0 or end < begin:
        raise ConfigError(f"{path}: no generated block {start_tag!r} ... {end_tag!r} to replace")
    new = src[:begin] + start_tag + "\n" + text.rstrip() + "\n" + src[end:]
    if new != src:
        Path(path).write_text(new)
    return new != src
