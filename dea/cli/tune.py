"""``dea tune --config FILE --trials N [--storage URL] [--study NAME] [--jobs K]``.

Searches ``tuning.space`` of the experiment with Optuna (TPE, pruning on the walk-forward
validation curve), each trial trained and scored on purged walk-forward folds. Any number of
``dea tune`` processes — here (``--jobs``) or on other machines — join one study through shared
storage: SQLite for one machine, PostgreSQL (``postgresql://user:pass@host/db``) across machines.
Writes the best configuration as a ready-to-train YAML and prints the best trial with its
deflated Sharpe ratio given the number of trials.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search (Optuna) on walk-forward folds, shared across processes and machines",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML with a tuning.space")
    p.add_argument("--trials", required=True, type=int, help="finished trials the study should reach (all workers together)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default tuning.storage, else sqlite in --out)")
    p.add_argument("--study", default=None, help="study name (default tuning.study)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default tracking.uri, else sqlite:///mlflow.db)")
    p.add_argument("--out", type=Path, default=None, help="folder for best.yaml, summary.txt and a default SQLite study")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from training.tuning import tune

    summary = tune(
        args.config,
        trials=args.trials,
        storage=args.storage,
        study=args.study,
        jobs=args.jobs,
        overrides=args.overrides,
        tracking_uri=args.tracking_uri,
        out_dir=args.out,
    )
    print(summary.format())
    return 0 if summary.best_number is not None else 1
