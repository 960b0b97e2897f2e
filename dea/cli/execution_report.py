"""``dea execution-report JOURNAL``: execution quality of every journaled parent order.

For each parent: arrival mid, average fill, fill rate and the implementation shortfall split into
spread, impact, timing, fees and opportunity, beside the cost the backtest's model charged (all
in bps of the arrival notional), then the notional-weighted summary by algorithm; for parents
routed across venues (``execution.routes``), where each leg went, why and what filled, and the
split by venue. Writes ``execution_report.csv``, ``execution_summary.json`` (and
``execution_routes.csv`` when routed) and two plots to ``--out``; with
``--tracking-uri`` (or ``MLFLOW_TRACKING_URI`` set) they are logged as MLflow artifacts.
``--calibrate FILE`` also fits half spread and impact k from the fills (``--sigma``/``--adv``
give the per-step volatility and traded notional the impact regressor needs) and writes the cost
fragment that ``execution.cost_fragment`` loads.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "execution-report",
        help="implementation shortfall of journaled parent orders vs the modelled cost",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("journal", type=Path, help="SQLite journal / execution store with exec_* tables")
    p.add_argument("--out", type=Path, default=Path("execution_report"), help="folder for CSV, JSON and plots")
    p.add_argument("--no-plots", action="store_true", help="write the CSV and JSON only, no PNG plots")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI if set)")
    p.add_argument("--experiment", default="dea-execution", help="MLflow experiment name")
    p.add_argument("--calibrate", type=Path, default=None, metavar="FRAGMENT", help="write a calibrated cost fragment")
    p.add_argument("--sigma", type=float, default=None, help="per-step mid volatility (for --calibrate)")
    p.add_argument("--adv", type=float, default=None, help="mean traded notional per step (for --calibrate)")
    p.add_argument("--step", type=float, default=1.0, help="the step of --sigma and --adv in seconds")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from dea.errors import ConfigError, DataError
    from dea.execution.quality import shortfall, summarize
    from dea.execution.store import open_store

    store = open_store(args.journal)
    records = store.parents()
    store.close()
    if not records:
        raise DataError(f"{args.journal}: no parent orders journaled")
    rows = [shortfall(r) for r in records]
    summary = summarize(rows)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    table = [r.row() for r in rows]
    with (out / "execution_report.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    (out / "execution_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    _print(table, summary)
    files = [out / "execution_report.csv", out / "execution_summary.json"]
    files += _routes(records, out)
    if not args.no_plots:
        files += _plots(rows, summary, out)
    if args.calibrate is not None:
        if args.sigma is None or args.adv is None:
            raise ConfigError("--calibrate needs --sigma and --adv (per-step volatility and traded notional)")
        from dea.execution.calibration import from_parents

        cal = from_parents(records, args.sigma, args.adv, args.step, str(args.journal))
        files.append(cal.write(args.calibrate))
        print(f"\nhalf spread: {cal.half_spread_bps.describe(' bps')}\nimpact k:    {cal.impact_k.describe()}")
        print(f"cost fragment: {args.calibrate}")
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        _log_mlflow(uri, args.experiment, files, summary)
    return 0


def _print(table: list[dict], summary: dict[str, dict[str, float]]) -> None:
    cols = ["parent_id", "algo", "qty", "fill_rate", "total_bps", "spread_bps", "impact_bps", "timing_bps", "fees_bps",
            "opportunity_bps", "modelled_bps"]
    shown = table[:50]
    # text columns as wide as their longest value (a served journal's parent ids are long)
    width = {c: max([14, len(c)] + [len(str(r[c])) for r in shown if not isinstance(r[c], float)]) for c in cols}
    print("  ".join(f"{c:>{width[c]}}" for c in cols))
    for r in shown:
        print("  ".join(f"{r[c]:>{width[c]}.3f}" if isinstance(r[c], float) else f"{r[c]!s:>{width[c]}}" for c in cols))
    if len(table) > 50:
        print(f"... {len(table) - 50} more parents in execution_report.csv")
    print("\nby algo (notional-weighted, bps):")
    keys = ["parents", "fill_rate", "total_bps", "spread_bps", "impact_bps", "timing_bps", "fees_bps", "opportunity_bps",
            "modelled_bps"]
    print(f"{'algo':>20}  " + "  ".join(f"{k:>15}" for k in keys))
    for algo, agg in summary.items():
        print(f"{algo:>20}  " + "  ".join(f"{agg[k]:>15.3f}" for k in keys))


def _routes(records, out: Path) -> list[Path]:  # noqa: ANN001 - ParentRecords
    """The routing report: legs to ``execution_routes.csv``, by-venue split and the first legs
    with their reasons printed (nothing when no parent was routed)."""
    from dea.execution.routing import route_rows, route_summary

    rows = route_rows(records)
    if not rows:
        return []
    path = out / "execution_routes.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("\nrouting by venue (execution.routes):")
    keys = ["legs", "planned", "filled", "share", "avg_price", "fees"]
    print(f"{'instrument/venue':>24}  " + "  ".join(f"{k:>14}" for k in keys))
    for key, agg in route_summary(rows).items():
        print(f"{key:>24}  " + "  ".join(f"{agg[k]:>14.4f}" for k in keys))
    print("\nlegs (where each part went and why):")
    for r in rows[:20]:
        print(f"  {r['parent_id']} {r['venue']}: planned {r['qty']:+g} at limit {r['price']}, filled {r['filled']:+g} "
              f"({r['status']}); {r['reason']}")
    if len(rows) > 20:
        print(f"  ... {len(rows) - 20} more legs in {path.name}")
    return [path]


def _plots(rows, summary, out: Path) -> list[Path]:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = ["spread_bps", "impact_bps", "timing_bps", "fees_bps", "opportunity_bps"]
    fig, ax = plt.subplots(figsize=(7, 4))
    algos = list(summary)
    bottom_pos = [0.0] * len(algos)
    bottom_neg = [0.0] * len(algos)
    for c in comps:
        vals = [summary[a][c] for a in algos]
        base = [bp if v >= 0 else bn for v, bp, bn in zip(vals, bottom_pos, bottom_neg, strict=True)]
        ax.bar(algos, vals, bottom=base, label=c.replace("_bps", ""))
        for i, v in enumerate(vals):
            if v >= 0:
                bottom_pos[i] += v
            else:
                bottom_neg[i] += v
    ax.scatter(algos, [summary[a]["modelled_bps"] for a in algos], color="k", marker="x", zorder=3, label="modelled")
    ax.set_ylabel("bps of arrival notional")
    ax.set_title("implementation shortfall by algorithm")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p1 = out / "shortfall_by_algo.png"
    fig.savefig(p1, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for algo in algos:
        sel = [r for r in rows if r.algo == algo]
        ax.scatter([r.bps("modelled") for r in sel], [r.bps("total") for r in sel], label=algo, s=12)
    lim = [min(0.0, *(r.bps("total") for r in rows)), max(*(r.bps("modelled") for r in rows), *(r.bps("total") for r in rows))]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("modelled cost (bps)")
    ax.set_ylabel("realised shortfall (bps)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = out / "realised_vs_modelled.png"
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return [p1, p2]


def _log_mlflow(uri: str, experiment: str, files: list[Path], summary: dict[str, dict[str, float]]) -> None:
    """One MLflow run with the shortfall metrics and the report files, through a client bound to
    ``uri``: MLflow's process-wide tracking URI and active experiment are left as they were."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunStatus

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name="execution-report", tags={"mlflow.source.name": "dea execution-report"})
    rid = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(f"{algo}.{k}", float(v), now, 0) for algo, agg in summary.items() for k, v in agg.items() if v == v]
        client.log_batch(rid, metrics=metrics)
        for f in files:
            client.log_artifact(rid, str(f), artifact_path="execution")
    except BaseException:
        client.set_terminated(rid, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(rid)
    print(f"logged to MLflow {uri} (experiment {experiment})")
