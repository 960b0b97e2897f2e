"""``dea stress --model M [--scenarios NAME,...|all]``: stress scenarios through the live loop.

Each scenario of ``stress.scenarios`` (flash crash, volatility spike, liquidity drain, funding
squeeze, correlations to one, stale feed, latency spike, rejected orders, historical windows,
the worst drawdowns of the data) is written onto the experiment's most recent data and replayed
through the live loop with the paper exchange and the risk engine. Prints PnL, maximum drawdown,
VaR and ES, hard-limit breaches (must be 0), kill-switch activations and time to de-risk; writes
equity/exposure plots and a CSV; logs everything to MLflow. ``--calibration`` adds the
reliability report of the risk engine's volatility estimate (forecast vs realised, VaR coverage
with the Kupiec test) on the experiment's data. Exit 0 when no scenario breached a hard limit,
3 otherwise.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

EXIT_BREACH = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stress",
        help="replay stress scenarios through the live loop and report losses, breaches and kill switches",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--model", required=True, help="ONNX file or models:/NAME@ALIAS")
    p.add_argument("--config", required=True, type=Path, help="experiment YAML (data, features, risk, stress)")
    p.add_argument("--scenarios", default="all", help="comma-separated scenario names, or 'all' (default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--out", type=Path, default=Path("artifacts/stress"), help="folder for plots and stress.csv")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--calibration", action="store_true", help="also print the risk calibration report")
    p.add_argument("--compare-dispersion", action="store_true",
                   help="also train a model.ensemble walk-forward and compare out of sample with and without "
                        "dispersion sizing (set model.ensemble >= 2)")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (default tracking.uri); models:/ sources too")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from dea.config import load_config
    from dea.stress.metrics import format_table
    from serving.stress import run_stress

    cfg = load_config(args.config, args.overrides)
    model = _resolve(args.model, args.tracking_uri or cfg.tracking.uri)
    run = run_stress(cfg, model, names=args.scenarios)
    print(f"stress of {args.model} on the last {cfg.stress.base_steps} decision steps of {cfg.name}")
    print(format_table(run.results))
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "stress.csv"
    with table.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(run.results[0].row()))
        w.writeheader()
        w.writerows(r.row() for r in run.results)
    plots = [] if args.no_plots else write_plots(run, args.out)
    report = None
    if args.calibration:
        report = calibration_text(cfg)
        print()
        print(report)
        (args.out / "calibration.txt").write_text(report + "\n")
    if args.compare_dispersion:
        text = dispersion_text(cfg)
        print()
        print(text)
        (args.out / "dispersion.txt").write_text(text + "\n")
        report = (report + "\n\n" if report else "") + text
    if not args.no_mlflow and cfg.tracking.enabled:
        _log(cfg, args, run, [table, *plots], report)
    breaches = sum(r.breaches for r in run.results)
    if breaches:
        print(f"HARD-LIMIT BREACHES: {breaches}")
        for r in run.results:
            for line in r.breach_detail[:5]:
                print(f"  {r.scenario}: {line}")
    return EXIT_BREACH if breaches else 0


def _resolve(model: str, tracking_uri: str | None) -> Path:
    if model.startswith(("models:/", "runs:/")):
        from serving.model_source import resolve_model

        return Path(resolve_model(model, tracking_uri=tracking_uri).path)
    return Path(model)


def write_plots(run, out: Path) -> list[Path]:  # noqa: ANN001
    """Equity (relative to the window start) and gross exposure of every scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for rp in run.replays:
        rec = rp.record
        start = int(np.searchsorted(rec.clock, rp.path.clock[0]))
        x = np.arange(len(rec.clock) - start)
        ax1.plot(x, rec.equity[start:] / rec.equity[start], lw=2 if rp.name == "baseline" else 1, label=rp.name)
        ax2.plot(x, np.abs(rec.held[start:]).sum(axis=1), lw=2 if rp.name == "baseline" else 1)
        if rp.path.shock:
            ax1.axvline(rp.path.shock[0], color="grey", lw=0.3)
    ax1.set_ylabel("equity / start")
    ax2.set_ylabel("gross exposure held")
    ax2.set_xlabel("decision step in the stress window")
    ax1.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path = out / "stress_equity.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def calibration_text(cfg) -> str:  # noqa: ANN001
    """Reliability of the risk engine's EWMA volatility on the equal-weight portfolio of the
    experiment's instruments (fit on the first half, scored on the second)."""
    import numpy as np

    from dea.calibration import calibration_report, format_calibration
    from dea.data.panel import build_panel

    panel = build_panel(cfg)
    price = np.asarray(panel.fields["price"], dtype=np.float64)
    r = np.diff(np.log(price), axis=0)
    r = r[np.isfinite(r).all(axis=1)].mean(axis=1)
    hl = cfg.risk.vol_target.halflife
    rep = calibration_report(r, series=f"{cfg.name} equal-weight returns", configured_halflife=hl,
                             garch_window=min(1000, r.size // 2), refit_every=max(20, r.size // 50))
    return format_calibration(rep)


def dispersion_text(cfg) -> str:  # noqa: ANN001
    """Out-of-sample metrics of the ensemble with and without dispersion sizing, side by side."""
    from dea.errors import ConfigError
    from training.ensemble import dispersion_comparison
    from training.prepare import prepare_data

    if cfg.model.ensemble < 2:
        raise ConfigError("--compare-dispersion needs model.ensemble >= 2 (e.g. --set model.ensemble=5)")
    res = dispersion_comparison(cfg, prepare_data(cfg))
    keys = list(res["without"])
    lines = [f"ensemble of {cfg.model.ensemble} seeds, walk-forward out of sample", f"  {'metric':<18} {'without':>10} {'with':>10}"]
    lines += [f"  {k:<18} {res['without'][k]:>10.4g} {res['with'][k]:>10.4g}" for k in keys]
    return "\n".join(lines)


def _log(cfg, args, run, files, report) -> None:  # noqa: ANN001
    from training.tracking import Tracker

    tr = Tracker(args.tracking_uri or cfg.tracking.uri, cfg.tracking.experiment)
    rid = tr.start_run(f"stress-{cfg.name}", tags={"dea.kind": "stress", "dea.model": str(args.model)})
    try:
        metrics = {}
        for r in run.results:
            for k, v in r.row().items():
                if k != "scenario":
                    metrics[f"{r.scenario}.{k}"] = v
        tr.log_metrics(rid, metrics)
        tr.log_params(rid, {"scenarios": ",".join(r.scenario for r in run.results), "base_steps": cfg.stress.base_steps})
        for f in files:
            tr.log_artifact(rid, f, "stress")
        if report:
            tr.log_text(rid, report, "stress/calibration.txt")
        tr.end_run(rid)
    except BaseException:
        tr.end_run(rid, "FAILED")
        raise
