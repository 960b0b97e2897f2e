"""``dea retrain --config FILE [--dry-run] [--if-flagged FLAG]``: one champion/challenger cycle.

Takes the run lock (a crashed run's stale lock is cleared), refreshes the data, trains a
challenger on the newest window, evaluates champion and challenger on the same most recent
out-of-sample window with the same costs, risk engine and stress scenarios, and promotes the
challenger to ``champion`` only if it beats the champion by ``retrain.margin`` on
``retrain.metric`` and stays inside the risk limits. The decision is recorded in MLflow.
Exit 0 when the champion was promoted or kept, 2 when the run could not decide (lock held,
bad config or data), 1 on an unexpected failure. Meant for cron, systemd timers and
Kubernetes CronJobs; a running ``dea serve`` picks up the new champion by hot swap.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "retrain",
        help="scheduled champion/challenger retraining (promotes only a better, risk-compliant model)",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML (retrain section: metric, margin, windows)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="decide and record, but do not register or promote")
    p.add_argument("--if-flagged", type=Path, default=None, metavar="FLAG",
                   help="run only if this drift flag file exists (written by the live loop); removed after a decision")
    p.add_argument("--negative-control", action="store_true",
                   help="train the challenger on shuffled labels (the gate must refuse it); implies --dry-run")
    p.add_argument("--no-refresh", action="store_true", help="do not re-ingest sources into the store first")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking/registry URI (default tracking.uri)")
    p.add_argument("--out", type=Path, default=None, help="folder for the challenger ONNX and decision.json")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.if_flagged is not None and not args.if_flagged.is_file():
        print(f"no retrain requested ({args.if_flagged} absent)")
        return 0
    from training.retrain import retrain

    dry = args.dry_run or args.negative_control
    outcome = retrain(
        args.config,
        overrides=args.overrides,
        dry_run=dry,
        tracking_uri=args.tracking_uri,
        out_dir=args.out,
        negative_control=args.negative_control,
        refresh=not args.no_refresh,
    )
    print(outcome.format())
    if args.if_flagged is not None and not dry:
        args.if_flagged.unlink(missing_ok=True)
    return 0
