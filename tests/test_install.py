"""The install contract (pyproject.toml, .ci/constraints.txt): a distribution name of our own,
extras split by need, run-time ranges that contain the versions the parity gate and the suite ran
with, and a serve-only install that replays the canonical store without pandas or torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dea.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def _names(reqs: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in reqs}


def test_distribution_name_is_ours_and_extras_are_split_by_need():
    assert PROJECT["name"] == "dea-allocation"  # "dea" on PyPI is an unrelated project
    assert {"data", "report", "train", "serve", "ccxt", "distributed", "dashboard", "registry", "dev"} <= set(EXTRAS)
    serve = _names(EXTRAS["serve"])
    assert not serve & {"ccxt", "torch", "pandas", "mlflow", "mlflow-skinny", "lightning"}
    assert {"onnxruntime", "pyarrow", "prometheus-client"} <= serve
    assert "psycopg" not in _names(EXTRAS["train"])
    assert _names(EXTRAS["distributed"]) == {"psycopg"} and _names(EXTRAS["ccxt"]) == {"ccxt"}
    assert "plotly" in _names(EXTRAS["report"]) and "optuna-dashboard" in _names(EXTRAS["dashboard"])
    for extra, reqs in EXTRAS.items():  # self references name the distribution, not the import package
        for r in map(Requirement, reqs):
            assert r.name != "dea", f"extra {extra!r} refers to the PyPI project 'dea': {r}"


def test_every_range_contains_the_tested_pin():
    pins = _pins()
    checked = 0
    for reqs in [PROJECT["dependencies"], *EXTRAS.values()]:
        for r in map(Requirement, reqs):
            if r.name == "dea-allocation":
                continue
            assert r.name.lower() in pins, f"{r.name} has no tested pin in .ci/constraints.txt"
            assert r.specifier.contains(pins[r.name.lower()], prereleases=True), (
                f"{r} excludes the tested {r.name}=={pins[r.name.lower()]}")
            checked += 1
    assert checked > 25
    ort = next(Requirement(r) for r in EXTRAS["serve"] if r.startswith("onnxruntime"))
    assert not ort.specifier.contains("1.32.0")  # the parity gate ran on 1.31


def test_makefile_installs_what_the_suite_needs():
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if "pip install" in x and "-e" in x)
    extras = set(line.split("[", 1)[1].split("]", 1)[0].split(","))
    assert {"train", "serve", "ccxt", "distributed", "registry", "dev"} <= extras


def test_dockerfile_copies_what_exists_and_installs_the_serve_extra():
    import fnmatch

    docker = (ROOT / "Dockerfile").read_text()
    ignored = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines() if x.strip() and not x.startswith("#")]
    sources = [w for line in docker.splitlines() if line.startswith("COPY ") and "--from=" not in line
               for w in line.split()[1:-1]]
    assert {"pyproject.toml", "README.md", "dea", "serving", "configs", ".ci/constraints.txt"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
        assert not any(fnmatch.fnmatch(src, pat) for pat in ignored), f".dockerignore excludes {src}"
    assert "ARG EXTRAS=serve\n" in docker and "[${EXTRAS}]" in docker
    assert "find_spec('torch') is not None" in docker  # the build fails if torch sneaks in
    assert not {"training", "tests"} & set(sources)


_BLOCKED = textwrap.dedent("""
    import importlib.abc
    import sys

    class Absent(importlib.abc.MetaPathFinder):  # what a serve-only install lacks
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pandas", "torch", "mlflow", "ccxt"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    from dea.config import load_config
    from serving.feeds.replay import TableReplay
    from serving.market_state import StreamingPanel
""")


def _run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _BLOCKED + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_serve_only_replay_reads_the_store_and_names_the_extra_otherwise(tmp_path):  # noqa: ANN001
    cfg = ROOT / "configs" / "demo.yaml"
    store = tmp_path / "store"
    assert main(["data", "ingest", "--config", str(cfg), "--store", str(store)]) == 0
    done = _run_blocked(f"""
        from dea.cli.main import build_parser
        assert "serve" in build_parser().format_help()  # the CLI itself loads in a serve-only install
        cfg = load_config({str(cfg)!r})
        rep = TableReplay.from_config(cfg, store={str(store)!r})
        print(sum(t.num_rows for t in rep.tables.values()), rep.clock_start, rep.clock_end)
        assert "pandas" not in sys.modules and "torch" not in sys.modules
    """)
    assert done.returncode == 0, done.stderr
    rows, start, end = map(int, done.stdout.split())
    assert rows > 10_000 and end > start
    # the raw files load without pandas too while their dates are ISO; the bundled FRED series with
    # day-first dates ("02.01.2015") needs pandas to parse them: refused with the extra named
    fred = ROOT / "data" / "fred" / "DGS10.csv"
    lines = fred.read_text().splitlines()
    dotted = tmp_path / "DGS10_dotted.csv"
    dotted.write_text("\n".join([lines[0], *(f"{d[8:10]}.{d[5:7]}.{d[:4]},{v}" for d, v in
                                            (x.split(",") for x in lines[1:]))]) + "\n")
    refused = _run_blocked(f"""
        from dea.errors import DataError
        cfg = load_config({str(cfg)!r}, ["data.sources.6.path={dotted}"])
        assert cfg.data.sources[6].name == "dgs10"
        try:
            TableReplay.from_config(cfg, store={str(tmp_path / "empty")!r})
        except DataError as exc:
            print(exc)
    """)
    assert refused.returncode == 0, refused.stderr
    assert "replay: source 'dgs10' is not in the store" in refused.stdout
    assert "needs pandas, which is in the `data` extra (pip install 'dea-allocation[data]')" in refused.stdout
