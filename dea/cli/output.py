"""What ``dea`` writes for people and for logs: one logging setup for every command.

``--quiet`` (warnings and errors only, plus each command's result), the default (progress lines and
what a step did) and ``--verbose`` (one line per training epoch, library debug output) are the same
three levels on every command, set here once, and so is ``--log-format text|json`` (one handler,
either format). The rest of DEA only logs; it never configures
logging, so a library caller keeps control of its own.

Silenced unless ``--verbose``: Lightning's per-trainer banners (``GPU available: False``, ``TPU
available``, the litlogger tip — once per fold and seed, they say nothing about the run), the
ONNX exporter's ``torchvision is not installed. Skipping torchvision::nms`` (DEA's graphs use no
torchvision op), and Alembic's schema-migration chatter from MLflow's and Optuna's SQLite stores.
(Optuna's own per-trial lines are replaced by ``dea tune``'s, which carry the time left.)
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import TextIO

import orjson

#: third-party loggers reduced to warnings unless --verbose
NOISY_LOGGERS: tuple[str, ...] = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "alembic",
    "optuna",
    "mlflow",
    "urllib3",
    "matplotlib",
    "numba",
    "onnxscript",  # the exporter's optimiser: "Removed 7 unused nodes", "Skipping constant folding ..."
    "onnx_ir",
)
#: a warning repeated this often (same logger, template and subject) is then only counted
REPEATS_SHOWN = 3
_HANDLER_NAME = "dea-cli"

QUIET, NORMAL, VERBOSE = -1, 0, 1


class _DropTorchvisionNote(logging.Filter):
    """Drop torch.onnx's ``torchvision is not installed. Skipping ...`` (no DEA graph uses it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("torch.onnx") and "torchvision is not installed" in str(record.msg))


class RepeatedWarnings(logging.Filter):
    """Show a repeated warning ``shown`` times, then say that further ones are held back.

    A replay that starts before an instrument existed quarantines every missing bar of years of
    history: a thousand identical warnings bury the rest of the log. Two warnings are "the same"
    when logger, message template and first argument (the subject, e.g. "bar close of BTC
    rejected by guard 'missing'") agree. Nothing is lost: the counts are in each command's summary
    and journal, and ``--verbose`` (which does not install this filter) shows every line."""

    def __init__(self, shown: int = REPEATS_SHOWN) -> None:
        super().__init__()
        self.shown = shown
        self.counts: dict[tuple[str, str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, str(record.msg), str(args[0]) if args else "")
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n == self.shown + 1:
            subject = key[2] or key[1]
            record.msg, record.args = "%s: further warnings like this are not shown (--verbose shows them)", (subject,)
            return True
        return n <= self.shown


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record (not the object it was at set-up), so
    a later redirect — a test's capture, a caller's ``contextlib.redirect_stderr`` — is honoured
    and a closed capture is never written to."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _Format(logging.Formatter):
    """Plain text for INFO and DEBUG (they read as the command's own lines); level and source
    for warnings and errors, so a reader can tell a problem from a progress line."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            msg = f"{msg}\n{record.exc_text}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {record.name}: {msg}"
        return msg


def verbosity(args: argparse.Namespace) -> int:
    """QUIET, NORMAL or VERBOSE from the parsed ``--quiet`` / ``--verbose`` flags."""
    quiet, verbose = bool(getattr(args, "quiet", False)), int(getattr(args, "verbose", 0) or 0)
    if quiet and verbose:
        raise SystemExit("dea: error: --quiet and --verbose exclude each other")
    return QUIET if quiet else (VERBOSE if verbose else NORMAL)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (``--log-format json``, the default of ``dea serve``, for log
    collectors): time, level, logger, message, and every ``extra`` field the call passed (the
    serve start line's model, feed, venue and metrics address)."""

    _STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


LOG_FORMATS: tuple[str, ...] = ("text", "json")


def configure_logging(level: int = NORMAL, stream: TextIO | None = None, *, format: str = "text") -> None:
    """Install DEA's one log handler on the root logger, in ``format`` (``text``: plain lines for
    people; ``json``: :class:`JsonFormatter`), and set the third-party levels for ``level``.

    The handler is the only one DEA owns: a second call (a later in-process ``dea`` command,
    another format) replaces it, so formats never stack and no logger is rerouted elsewhere.
    Repeated warnings are thinned (:class:`RepeatedWarnings`) in text only: JSON lines go to a
    collector, which must see one object per event to count them."""
    if format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {format!r}")
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if format == "json" else _Format())
    handler.addFilter(_DropTorchvisionNote())
    if level != VERBOSE and format == "text":  # a log collector gets every event: it counts them itself
        handler.addFilter(RepeatedWarnings())
    root.addHandler(handler)
    # a library's logging.config call (fileConfig / dictConfig with disable_existing_loggers, as
    # Alembic migrations run by MLflow do) disables every logger that existed before it: DEA's own
    # loggers must not go silent after an in-process `dea` command created an MLflow store
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name.split(".")[0] in ("dea", "training", "serving"):
            lg.disabled = False
    root.setLevel({QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}[level])
    third_party = logging.DEBUG if level == VERBOSE else logging.WARNING
    # MLflow installs its own handler and level when imported (later, lazily): its documented
    # switch is this variable; a value the user set wins
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if level == VERBOSE else "WARNING")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(third_party)
    # the exporter's logger is a child: a filter on our handler sees it, and so does one on the
    # logger itself for library callers that log through their own handlers
    exporter = logging.getLogger("torch.onnx._internal.exporter._registration")
    if not any(isinstance(f, _DropTorchvisionNote) for f in exporter.filters):
        exporter.addFilter(_DropTorchvisionNote())


def log_format(args: argparse.Namespace) -> str:
    """``--log-format`` as given, else the command's default (``default_log_format``, set by
    ``dea serve`` to json), else text."""
    return getattr(args, "log_format", None) or getattr(args, "default_log_format", "text")


def add_output_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on ``parser``. On sub-commands their default is
    SUPPRESS, so ``dea -q train`` and ``dea train -q`` both work and neither resets the other."""
    default_q: object = False if top else argparse.SUPPRESS
    default_v: object = 0 if top else argparse.SUPPRESS
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true", default=default_q,
                       help="only warnings, errors and the command's result")
    group.add_argument("-v", "--verbose", action="count", default=default_v,
                       help="more detail: one line per training epoch, library debug messages")
    group.add_argument("--log-format", choices=LOG_FORMATS, default=None if top else argparse.SUPPRESS,
                       help="log lines as plain text, or one JSON object per line for a log collector "
                            "(default text; dea serve: json)")


_RST = (
    (re.compile(r":[a-z]+:`~?([^`]+)`"), r"\1"),  # :func:`x.y` -> x.y
    (re.compile(r"``([^`]+)``"), r"\1"),  # ``code`` -> code
    (re.compile(r"`([^`<]+?) <[^>]+>`_+"), r"\1"),  # `text <url>`_ -> text
    (re.compile(r"(?<![\w`])`([^`]+)`(?![\w`])"), r"\1"),  # `x` -> x
)


def plain_text(text: str | None) -> str | None:
    """Help text without reStructuredText markup (docstrings double as ``--help``)."""
    if not text or text is argparse.SUPPRESS:
        return text
    for pattern, repl in _RST:
        text = pattern.sub(repl, text)
    return text


def subparsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every sub-command parser below ``parser``, depth first (``data``, ``data ingest``, ...)."""
    out: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain_text(choice.help)
            seen: set[int] = set()
            for sub in action.choices.values():
                if id(sub) in seen:  # aliases share one parser
                    continue
                seen.add(id(sub))
                out.append(sub)
                out.extend(subparsers_of(sub))
    return out


def _help_of(root: argparse.ArgumentParser, sub: argparse.ArgumentParser) -> str | None:
    """The one-line help a sub-command was registered with (its description when it has none)."""
    for parser in [root, *subparsers_of(root)]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, choice in action.choices.items():
                    if choice is sub:
                        for ca in action._choices_actions:
                            if ca.dest == name and ca.help:
                                return ca.help[0].upper() + ca.help[1:] + "."
    return None


def finish_parser(parser: argparse.ArgumentParser) -> None:
    """Output flags on every sub-command and plain help texts everywhere."""
    for sub in subparsers_of(parser):
        if not any("--quiet" in a.option_strings for a in sub._actions):
            add_output_flags(sub, top=False)
        sub.description = plain_text(sub.description or _help_of(parser, sub))
        sub.epilog = plain_text(sub.epilog)
        for action in sub._actions:
            if action.help is None and action.choices and not isinstance(action, argparse._SubParsersAction):
                default = f" (default {action.default})" if action.default not in (None, argparse.SUPPRESS) else ""
                action.help = "one of " + ", ".join(map(str, action.choices)) + default
            action.help = plain_text(action.help)
    parser.description = plain_text(parser.description)


__all__ = ["LOG_FORMATS", "QUIET", "NORMAL", "VERBOSE", "JsonFormatter", "RepeatedWarnings", "add_output_flags",
           "configure_logging", "finish_parser", "log_format", "plain_text", "subparsers_of", "verbosity"]
