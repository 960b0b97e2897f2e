"""dea tune --config FILE --trials N [--storage URL] [--study NAME] [--jobs K]

Searches the experiment's tuning.space with Optuna (TPE, pruning on the walk-forward validation
curve); each trial is trained and scored on purged walk-forward folds exactly as dea train does,
its value the out-of-sample Sharpe (tuning.metric). Every bundled config has a space, e.g.

  dea tune --config configs/demo.yaml --trials 20

Any number of dea tune processes, here (--jobs) or on other machines, join one study through
shared storage: SQLite for one machine, PostgreSQL (postgresql://user:pass@host/db, the
distributed extra) across machines. Writes best.yaml (the config plus the best values, ready for
dea train), prints the best trial with its deflated Sharpe ratio given the number of trials, one
progress line per trial with the time left, and how to open the study in optuna-dashboard (the
dashboard extra). Each trial is an MLflow child run of the study's parent run; the trial's run id
is a trial attribute in the dashboard.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search (Optuna) on walk-forward folds, shared across processes and machines",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML with a tuning.space (e.g. configs/demo.yaml)")
    p.add_argument("--trials", required=True, type=int, help="finished trials the study should reach (all workers together)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default tuning.storage, else sqlite in --out)")
    p.add_argument("--study", default=None, help="study name (default tuning.study)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the search only, not written to best.yaml (repeatable)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default tracking.uri, else sqlite:///mlflow.db)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for best.yaml, summary.txt and a default SQLite study (default runs/tune-<study>)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from dea.cli.output import log_format, verbosity
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
        verbosity=verbosity(args),
        log_format=log_format(args),
    )
    print(summary.format())
    return 0 if summary.best_number is not None else 1
