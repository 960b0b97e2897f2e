"""``dea export --run RUN_ID`` and ``dea promote --model NAME --version N``.

Export re-runs the parity-gated ONNX export of an earlier training run and registers it with
alias ``challenger``; promote moves the ``champion`` alias (what ``dea serve`` loads). Both take
the MLflow tracking URI from ``--tracking-uri``, else the config's ``tracking.uri``, else MLflow's
default (``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the working directory).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export an earlier training run's policy to ONNX and register it")
    p.add_argument("--run", required=True, metavar="RUN_ID", help="MLflow run id of a `dea train` run")
    p.add_argument("--model", metavar="NAME", help="registered model name (default: the run's)")
    p.add_argument("--out", metavar="DIR", help="also keep the ONNX file in this folder")
    p.add_argument("--alias", default="challenger", help="alias to set on the new version (default challenger)")
    _tracking_args(p)
    p.set_defaults(handler=_export)

    q = subparsers.add_parser("promote", help="move a registered model's `champion` alias to a version")
    q.add_argument("--model", required=True, metavar="NAME", help="registered model name")
    q.add_argument("--version", required=True, metavar="N", help="registry version to promote")
    q.add_argument("--alias", default="champion", help="alias to move (default champion)")
    _tracking_args(q)
    q.set_defaults(handler=_promote)


def _tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking/registry URI")
    p.add_argument("--config", metavar="FILE", help="experiment config (for tracking.uri)")


def _tracking_uri(args: argparse.Namespace) -> str | None:
    if args.tracking_uri:
        return args.tracking_uri
    if args.config:
        from dea.config import load_config

        return load_config(args.config).tracking.uri
    return None


def _export(args: argparse.Namespace) -> int:
    from training.registry import export_run

    done = export_run(
        args.run,
        registered_model=args.model,
        tracking_uri=_tracking_uri(args),
        out_dir=args.out,
        alias=args.alias or None,
    )
    reg = done.registered
    print(f"exported run {args.run} -> {done.path} (parity max |diff| {done.report.max_abs_diff:.2e})")
    if reg is not None:
        print(f"registered {reg.name} version {reg.version} @{reg.alias}  ({reg.model_uri})")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from training.registry import promote

    reg = promote(args.model, args.version, tracking_uri=_tracking_uri(args), alias=args.alias)
    print(f"{reg.name} version {reg.version} is now @{reg.alias}")
    return 0
