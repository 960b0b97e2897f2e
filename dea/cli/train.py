"""``dea train``: train, evaluate walk-forward against baselines, and track a policy in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a policy walk-forward, compare it with baselines, log everything to MLflow",
        description=(
            "Train the experiment's policy on walk-forward folds (purged, embargoed), evaluate each "
            "fold's out-of-sample exposures through the backtester and risk engine, compare with the "
            "baselines, export the final policy to ONNX and log the run to MLflow."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML (e.g. configs/demo.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: tracking.uri from the config, else sqlite:///mlflow.db in the cwd)",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for run outputs (default runs/<name>-<time>)")
    p.add_argument("--no-progress", action="store_true",
                   help="no live bar on a terminal: one line per fit instead, as in a log")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from dea.config import load_config

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("training.progress_bar=false")
    cfg = load_config(args.config, overrides)

    from training.pipeline import train
    from training.report import format_summary

    result = train(cfg, tracking_uri=args.tracking_uri, out_dir=args.out)
    print(format_summary(result))
    return 0
