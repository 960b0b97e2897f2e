"""README.md tells the truth: every command in its code blocks is either run as written (the cheap
ones, listed in CHEAP) or checked to be valid without running it (NOT_RUN, with the reason);
every `dea` command of the command table is a real sub-command whose flags exist and which shows
every required option; every repository path it names exists, or is an output the code really
writes there (GENERATED, checked against the source that writes it)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dea.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent

#: run exactly as written (from the repository root); must exit 0
CHEAP: dict[str, str] = {
    "dea --help": "lists the commands",
    "dea serve --help": "the live loop's options",
    "python -m benchmarks --help": "the benchmark runner",
}
#: too long to run in a test, or starts a server: checked to be valid instead (see _valid)
NOT_RUN: dict[str, str] = {
    "make demo": "trains for minutes (make -n: the target exists)",
    "make test": "the whole suite (make -n: the target exists)",
    ".venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db": "starts a server (its --help names the flag)",
    "pip install '.[serve]'": "an install (its extras exist in pyproject.toml; tests/test_install.py checks them)",
    "dea serve --config configs/demo.yaml --model runs/<run>/policy.onnx --feed replay --exchange paper":
        "needs a trained model (parsed by dea's own parser)",
    "docker build -t dea-serve .": "no docker daemon in CI (the Dockerfile's stages are checked)",
}
#: outputs named in the README that a fresh clone does not have yet -> (file that writes it, text there)
GENERATED: dict[str, tuple[str, str]] = {
    "dea_store/": ("configs/demo.yaml", "store: ../dea_store"),
    "runs/": ("dea/cli/train.py", "default runs/<name>-<time>"),
    "runs/<name>-<time>/": ("dea/cli/train.py", "default runs/<name>-<time>"),
    "runs/<name>-<time>/tearsheet/": ("training/report.py", 'out_dir / "tearsheet"'),
    "backtests/<config>/": ("dea/cli/backtest.py", 'Path("backtests") / cfg.name'),
}
#: written by a library's default, checked against that default by test_mlflow_writes_mlruns
LIBRARY_DEFAULT: dict[str, str] = {"mlruns/": "MLflow's artifact root for a local SQLite store"}
#: outside the checkout on purpose
EXTERNAL: dict[str, str] = {"../shared/data": "real data beside the checkout (tests/conftest.py)"}


def code_block_commands(text: str) -> list[str]:
    """Commands of the shell code blocks, one per line, comments dropped, whitespace normalised."""
    out = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(" ".join(shlex.quote(w) if w != line.split()[i] else w for i, w in enumerate(words)))
    return out


def _section(text: str, heading: str) -> str:
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"README has no '## {heading}' section"
    return m.group(1)


def table_commands(text: str) -> list[str]:
    """The `dea ...` code spans of the first column of the command table."""
    cmds = []
    for row in _section(text, "Commands").splitlines():
        if not row.startswith("| `"):
            continue
        first = re.split(r"(?<!\\)\|", row)[1]
        cmds += [c.replace("\\|", "|") for c in re.findall(r"`([^`]+)`", first) if c.startswith("dea ")]
    return cmds


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:  # noqa: SLF001 - argparse has no public accessor
        if isinstance(a, argparse._SubParsersAction):  # noqa: SLF001
            return dict(a.choices)
    return {}


def _command_parser(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    p, path = build_parser(), []
    for w in words:
        subs = _subparsers(p)
        if w not in subs:
            break
        p, path = subs[w], [*path, w]
    return p, path


def _valid(cmd: str) -> None:
    words = shlex.split(cmd)
    if words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{cmd}: {done.stderr}"
    elif words[0].endswith("/mlflow"):
        done = subprocess.run([str(BIN / "mlflow"), *words[1:2], "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and all(f in done.stdout for f in words[2:] if f.startswith("--")), done.stderr
    elif words[0] == "pip":
        target = [w for w in words[2:] if w != "-e"]
        assert words[1] == "install" and len(target) == 1, cmd
        extras = re.fullmatch(r"\.\[([\w,-]+)\]", target[0])
        assert extras, cmd
        import tomllib

        known = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        assert set(extras.group(1).split(",")) <= set(known), cmd
    elif words[0] == "docker":
        stages = (ROOT / "Dockerfile").read_text()
        assert "FROM python:" in stages and "[${EXTRAS}]" in stages and "ARG EXTRAS=serve" in stages
    elif words[0] == "dea":
        args = build_parser().parse_args(words[1:])  # exits (fails the test) on an unknown or missing option
        assert callable(getattr(args, "handler", None)), cmd
    else:
        raise AssertionError(f"no validity check for {cmd!r}")


def _runnable(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    if words[0] == "dea":
        return [sys.executable, "-m", "dea", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise AssertionError(f"do not know how to run {cmd!r}")


def test_every_code_block_command_is_run_or_checked():
    cmds = code_block_commands(TEXT)
    assert cmds, "README has no shell code blocks"
    unclassified = [c for c in cmds if c not in CHEAP and c not in NOT_RUN]
    assert not unclassified, f"README commands neither in CHEAP nor NOT_RUN: {unclassified}"
    stale = [c for c in [*CHEAP, *NOT_RUN] if c not in cmds]
    assert not stale, f"listed here but no longer in README: {stale}"


@pytest.mark.parametrize("cmd", sorted(CHEAP))
def test_cheap_command_runs_as_written(cmd):  # noqa: ANN001
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(_runnable(cmd), cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip(), f"{cmd} printed nothing"


@pytest.mark.parametrize("cmd", sorted(NOT_RUN))
def test_long_command_is_valid(cmd):  # noqa: ANN001
    _valid(cmd)


def test_command_table_matches_the_parser():
    cmds = table_commands(TEXT)
    assert len(cmds) >= 10
    covered = set()
    for cmd in cmds:
        words = cmd.split()
        p, path = _command_parser(words[1:])
        assert path, f"{cmd!r}: {words[1]!r} is not a dea sub-command"
        assert not _subparsers(p), f"{cmd!r}: {' '.join(path)} needs a sub-command"
        options = {s for a in p._actions for s in a.option_strings}  # noqa: SLF001
        shown = set(re.findall(r"--[\w-]+", cmd))
        assert shown <= options, f"{cmd!r}: unknown options {sorted(shown - options)}"
        required = [a for a in p._actions if a.required and a.option_strings]  # noqa: SLF001
        missing = [a.option_strings[0] for a in required if not set(a.option_strings) & shown]
        alternative = "|--" in cmd  # e.g. `dea data inspect PATH|--config F`
        assert not missing or alternative, f"{cmd!r} omits required {missing}"
        covered.add(path[0])
    missing_rows = set(_subparsers(build_parser())) - covered
    assert not missing_rows, f"commands without a row in the README's table: {sorted(missing_rows)}"


def test_named_paths_exist_or_are_written_by_the_code():
    spans = set(re.findall(r"`([^`\s]+)`", TEXT))
    paths = sorted(s for s in spans if "/" in s and ":" not in s and not s.startswith(("-", "http")))
    assert len(paths) > 10
    for p in paths:
        if any(p.startswith(e) for e in EXTERNAL) or p in LIBRARY_DEFAULT:
            continue
        if p in GENERATED:
            src, needle = GENERATED[p]
            assert needle in (ROOT / src).read_text(), f"README says {p}: {src} no longer writes it ({needle!r})"
            continue
        assert (ROOT / p).exists(), f"README names {p}, which is not in the repository"
    assert "artifacts/" not in TEXT.replace("MLflow artifacts", "")  # outputs go to runs/, not artifacts/


def test_mlflow_writes_mlruns():
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH

    assert DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH.strip("./") + "/" in LIBRARY_DEFAULT
