"""``dea`` command line.

Each sub-command lives in its own module under :mod:`dea.cli` exposing ``register(subparsers)``;
heavy imports (pandas, torch, mlflow, training, serving) happen inside the command handlers so
``dea --help`` stays fast and ``dea`` never imports ``training``/``serving`` at module level.
Errors derived from :class:`dea.errors.DeaError` are printed as one clear message (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dea.errors import DeaError

# Sub-command modules, in help order. A module that is missing is skipped (no command), so the
# CLI keeps working while parts of DEA are being built.
COMMAND_MODULES: tuple[str, ...] = (
    "dea.cli.demo",
    "dea.cli.data",
    "dea.cli.features",
    "dea.cli.backtest",
    "dea.cli.train",
    "dea.cli.export",
    "dea.cli.serve",
    "dea.cli.audit",
    "dea.cli.tune",
    "dea.cli.retrain",
    "dea.cli.drift",
    "dea.cli.stress",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dea", description="DEA: learn and serve exposure-allocation policies for crypto derivatives"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        result = args.handler(args)
    except DeaError as exc:
        print(f"dea {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
