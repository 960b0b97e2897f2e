"""``dea`` command line.

Each sub-command lives in its own module under :mod:`dea.cli` exposing ``register(subparsers)``;
heavy imports (pandas, torch, mlflow, training, serving) happen inside the command handlers so
``dea --help`` stays fast and ``dea`` never imports ``training``/``serving`` at module level.
Errors derived from :class:`dea.errors.DeaError` are printed as one clear message (exit 2).
Output: ``-q/--quiet`` and ``-v/--verbose`` work on every command (before or after its name) and
set the one logging setup of :mod:`dea.cli.output`; ``dea --version`` names the installed version.

Interruptions: while a command runs, SIGTERM, SIGINT and SIGHUP raise :class:`CommandInterrupted`
(a ``BaseException``, so no ``except Exception`` swallows it), which unwinds the command (a
Lightning trainer calls its ``on_exception`` hooks and re-raises; Lightning keeps our handler
behind its own ``Received SIGTERM`` notifier) and makes ``dea`` print one line naming the signal
and exit ``128 + signal number`` (143 for SIGTERM, 130 for Ctrl-C): a scheduler never mistakes a
stopped run for a finished one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

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
    "dea.cli.execution_report",
    "dea.cli.options",
)


_STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGHUP")) if s is not None)


class CommandInterrupted(BaseException):
    """A stop signal arrived while a command was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise CommandInterrupted(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Turn stop signals into :class:`CommandInterrupted` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    for s in _STOP_SIGNALS:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _version() -> str:
    from dea import __version__

    return f"dea {__version__} (Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    from dea.cli.output import add_output_flags, finish_parser

    parser = argparse.ArgumentParser(
        prog="dea",
        description="DEA: learn and serve exposure-allocation policies for crypto derivatives",
        epilog="Run 'dea COMMAND --help' for a command's options. Start with 'dea demo'.",
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    add_output_flags(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    finish_parser(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    from dea.cli.output import configure_logging, log_format, verbosity

    configure_logging(verbosity(args), format=log_format(args))
    try:
        with stop_signals_raise():
            result = args.handler(args)
    except DeaError as exc:
        print(f"dea {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CommandInterrupted as exc:
        print(
            f"dea {args.command}: interrupted by {exc.signal_name}; stopped before finishing, its outputs may be "
            f"incomplete (exit {exc.exit_code})",
            file=sys.stderr,
            flush=True,
        )
        return exc.exit_code
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
