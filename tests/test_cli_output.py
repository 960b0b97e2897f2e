"""What ``dea`` writes for people and logs: progress lines with the time left, one logging setup
with --quiet/--verbose on every command, --version, help texts without RST markup."""

from __future__ import annotations

import argparse
import io
import json
import logging

import pytest

from dea import __version__
from dea.cli.main import build_parser, main
from dea.cli.output import (
    NORMAL,
    QUIET,
    VERBOSE,
    RepeatedWarnings,
    configure_logging,
    log_format,
    plain_text,
    subparsers_of,
    verbosity,
)
from dea.progress import Progress, format_duration, track


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def progress_log():
    """The dea.progress logger captured into a string (restored afterwards)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    lg = logging.getLogger("dea.progress")
    old_level, old_prop = lg.level, lg.propagate
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    lg.propagate = False
    yield stream
    lg.removeHandler(handler)
    lg.setLevel(old_level)
    lg.propagate = old_prop


def test_durations_read_plainly() -> None:
    assert [format_duration(x) for x in (0, 42.4, 185, 7260)] == ["0s", "42s", "3m05s", "2h01m"]
    with pytest.raises(ValueError, match="finite"):
        format_duration(float("nan"))


def test_progress_writes_one_line_per_step_with_the_time_left(progress_log) -> None:
    clock = FakeClock()
    with Progress("walk-forward", total=4, unit="fold", stream=io.StringIO(), clock=clock) as p:
        for i in range(4):
            clock.t += 10.0 * (i + 1)  # steps get slower: 10, 20, 30, 40 s
            p.advance(detail=f"fold {i}")
            if i == 1:
                assert p.eta_seconds() == pytest.approx(15.0 * 2)  # mean 15 s x 2 left
    lines = progress_log.getvalue().splitlines()
    assert lines == [
        "walk-forward: 1/4 folds (fold 0), 10s elapsed, about 30s left",
        "walk-forward: 2/4 folds (fold 1), 30s elapsed, about 30s left",
        "walk-forward: 3/4 folds (fold 2), 1m00s elapsed, about 20s left",
        "walk-forward: 4/4 folds (fold 3), 1m40s elapsed",
    ]
    assert "\r" not in progress_log.getvalue()


def test_progress_thins_many_short_steps_but_keeps_the_last(progress_log) -> None:
    clock = FakeClock()
    with Progress("replay", total=100, unit="decision", min_interval=5.0, stream=io.StringIO(), clock=clock) as p:
        for _ in range(100):
            clock.t += 0.5
            p.advance()
    lines = progress_log.getvalue().splitlines()
    assert [int(line.split()[1].split("/")[0]) for line in lines] == list(range(10, 101, 10))  # one per 5 s
    assert lines[-1].startswith("replay: 100/100 decisions")
    with Progress("features", total=15, unit="feature", min_interval=10.0, stream=io.StringIO(), clock=clock) as p:
        for _ in range(15):
            p.advance()  # a fast loop: only its end is reported
    assert progress_log.getvalue().splitlines()[len(lines):] == ["features: 15/15 features, 0s elapsed"]


def test_progress_is_silent_when_quiet_and_checks_its_input(progress_log) -> None:
    logging.getLogger("dea.progress").setLevel(logging.WARNING)
    assert list(track([1, 2, 3], "ingest", stream=io.StringIO())) == [1, 2, 3]
    assert progress_log.getvalue() == ""
    with pytest.raises(ValueError, match="total"):
        Progress("x", total=-1)
    with pytest.raises(ValueError, match="advance"):
        Progress("x", total=2, stream=io.StringIO()).advance(-1)


def test_a_terminal_gets_a_live_bar_not_lines(progress_log) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    for _ in track(range(3), "features", unit="feature", stream=tty):
        pass
    assert progress_log.getvalue() == ""  # no log lines: the bar is the display
    assert "features" in tty.getvalue() and "3/3" in tty.getvalue()


def test_output_flags_work_before_and_after_the_command() -> None:
    parser = build_parser()
    assert verbosity(parser.parse_args(["-q", "train", "--config", "x.yaml"])) == QUIET
    assert verbosity(parser.parse_args(["train", "--config", "x.yaml", "--quiet"])) == QUIET
    assert verbosity(parser.parse_args(["tune", "--config", "x", "--trials", "1", "-v"])) == VERBOSE
    assert verbosity(parser.parse_args(["data", "ingest", "--config", "x", "--verbose"])) == VERBOSE
    assert verbosity(parser.parse_args(["demo"])) == NORMAL
    with pytest.raises(SystemExit, match="exclude each other"):
        verbosity(parser.parse_args(["demo", "-q", "-v"]))


def test_every_command_has_the_flags_and_plain_complete_help() -> None:
    parser = build_parser()
    subs = subparsers_of(parser)
    names = {s.prog for s in subs}
    assert {"dea demo", "dea train", "dea tune", "dea data ingest", "dea serve"} <= names
    for sub in subs:
        options = {o for a in sub._actions for o in a.option_strings}
        assert {"--quiet", "--verbose"} <= options, sub.prog
        assert sub.description, f"{sub.prog} has no description"
        text = sub.format_help()
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:"):
            assert markup not in text, f"{sub.prog} --help shows RST markup {markup!r}"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                assert all(c.help for c in action._choices_actions), f"{sub.prog}: an action without help"
                continue
            assert action.help, f"{sub.prog} {'/'.join(action.option_strings) or action.dest} has no help"


def test_plain_text_strips_rst_roles_and_literals() -> None:
    assert plain_text("see :func:`training.fit.fit_fold` and ``dea train``; `x`") == (
        "see training.fit.fit_fold and dea train; x")


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip().startswith(f"dea {__version__}")


def test_logging_levels_and_silenced_banners() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    old = root.level
    try:
        configure_logging(QUIET, stream)
        logging.getLogger("dea.progress").info("progress line")
        logging.getLogger("dea.x").warning("a problem")
        configure_logging(NORMAL, stream)  # replaces, does not stack, the handler
        logging.getLogger("dea.progress").info("progress line 2")
        logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False, used: False")
        logging.getLogger("torch.onnx._internal.exporter._registration").warning(
            "torchvision is not installed. Skipping %s", "torchvision::nms")
        logging.getLogger("dea.x").debug("detail")
        configure_logging(VERBOSE, stream)
        logging.getLogger("dea.x").debug("detail 2")
    finally:
        configure_logging(NORMAL, io.StringIO())
        root.setLevel(old)
    assert stream.getvalue().splitlines() == [
        "warning: dea.x: a problem",
        "progress line 2",
        "detail 2",
    ]


def test_one_handler_in_text_or_json() -> None:
    root = logging.getLogger()
    old = root.level
    text, js = io.StringIO(), io.StringIO()
    try:
        configure_logging(NORMAL, js, format="json")
        lg = logging.getLogger("dea.serving.app")
        lg.info("serving model %s", "m", extra={"event": "start", "model_version": "3"})
        for _ in range(5):  # a collector counts events itself: JSON never thins repeated warnings
            lg.warning("bar of %s quarantined", "BTC")
        logging.getLogger("dea.progress").debug("hidden at NORMAL")
        configure_logging(NORMAL, text)  # the same one handler, now text: nothing goes to js any more
        lg.info("serving model %s", "m", extra={"event": "start"})
        for _ in range(5):
            lg.warning("bar of %s quarantined", "BTC")
        ours = [h for h in root.handlers if h.get_name() == "dea-cli"]
        assert len(ours) == 1 and not logging.getLogger("dea").handlers and logging.getLogger("dea").propagate
        with pytest.raises(ValueError, match="log format must be one of text, json, got 'xml'"):
            configure_logging(NORMAL, text, format="xml")
    finally:
        configure_logging(NORMAL, io.StringIO())
        root.setLevel(old)
    records = [json.loads(line) for line in js.getvalue().splitlines()]
    assert records[0]["msg"] == "serving model m" and records[0]["event"] == "start" and records[0]["level"] == "info"
    assert records[0]["model_version"] == "3" and records[0]["logger"] == "dea.serving.app"
    assert [r["level"] for r in records[1:]] == ["warning"] * 5
    assert text.getvalue().splitlines() == ["serving model m"] + ["warning: dea.serving.app: bar of BTC quarantined"] * 3 + [
        "warning: dea.serving.app: BTC: further warnings like this are not shown (--verbose shows them)"]


def test_log_format_flag_on_every_command_json_by_default_for_serve() -> None:
    parser = build_parser()
    assert log_format(parser.parse_args(["train", "--config", "x.yaml"])) == "text"
    assert log_format(parser.parse_args(["--log-format", "json", "train", "--config", "x.yaml"])) == "json"
    assert log_format(parser.parse_args(["tune", "--config", "x", "--trials", "1", "--log-format", "json"])) == "json"
    serve = ["serve", "--config", "x", "--model", "m.onnx", "--feed", "replay"]
    assert log_format(parser.parse_args(serve)) == "json"
    assert log_format(parser.parse_args([*serve, "--log-format", "text"])) == "text"
    assert log_format(parser.parse_args(["--log-format", "text", *serve])) == "text"


def test_repeated_warnings_are_counted_not_repeated() -> None:
    f = RepeatedWarnings(shown=2)

    def rec(subject: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("dea.serving.loop", level, __file__, 1, "%s at %s: quarantined", (subject, "t"), None)

    kept = [f.filter(r) and r.getMessage() for r in (rec("BTC missing"), rec("BTC missing"), rec("ETH missing"),
                                                      rec("BTC missing"), rec("BTC missing"))]
    assert kept == ["BTC missing at t: quarantined", "BTC missing at t: quarantined", "ETH missing at t: quarantined",
                    "BTC missing: further warnings like this are not shown (--verbose shows them)", False]
    assert all(f.filter(rec("BTC missing", logging.ERROR)) for _ in range(5))  # errors are never held back


def test_a_fit_in_a_log_is_one_line_and_lightning_banners_are_gone(repo_root, tmp_path, monkeypatch, caplog) -> None:
    """Output not a terminal: no progress bar frames, one INFO line per fit, one DEBUG line per
    epoch, and none of Lightning's GPU/TPU/litlogger banners."""
    from dea.config import load_config
    from training.fit import fit_fold
    from training.prepare import prepare_data
    from training.splits import walk_forward_folds

    monkeypatch.chdir(tmp_path)
    cfg = load_config(repo_root / "tests" / "tuning" / "tiny_sim.yaml", ["training.progress_bar=true"])
    prepared = prepare_data(cfg)
    tc = cfg.training
    fold = walk_forward_folds(prepared.data.usable, tc.splits, min_fit=tc.seq_len, clock=prepared.data.market.clock)[0]
    with caplog.at_level(logging.DEBUG):
        fit = fit_fold(cfg, prepared.data, fold, label="fold 0 test")
    fit_lines = [r for r in caplog.records if r.name == "dea.progress.fit"]
    epochs = [r.getMessage() for r in fit_lines if r.levelno == logging.DEBUG]
    summary = [r.getMessage() for r in fit_lines if r.levelno == logging.INFO]
    assert len(epochs) == len(fit.history) >= 1 and epochs[0].startswith(f"fold 0 test: epoch 1/{tc.epochs} ")
    assert len(summary) == 1 and summary[0].startswith(f"fold 0 test: {len(fit.history)} epochs in ")
    assert f"best epoch {fit.best_epoch + 1} " in summary[0]
    text = "\n".join(r.getMessage() for r in caplog.records)
    for banner in ("GPU available", "TPU available", "litlogger", "max_epochs="):
        assert banner not in text
