"""Benchmark runner: ``python -m benchmarks [NAME ...] [--json FILE]``.

Each benchmark is a module ``benchmarks/bench_<name>.py`` exposing ``run() -> dict`` of named
figures, and optionally ``GOALS = {figure: (">=" or "<=", target)}``: the table then shows each
such figure's goal and whether this run met it. Figures are printed as a table and optionally
written as JSON ``{benchmark: {figure: value}}`` (goals under ``"goals"``: ``{benchmark:
{figure: {"goal": ..., "met": ...}}}``). Speed targets live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks


def available() -> list[str]:
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def goal_text(value: object, goal: tuple[str, float]) -> tuple[str, bool | None]:
    """``"goal >= 3e+05: met"`` for a figure and its ``(op, target)``; met is None when the
    figure is not a number (a skipped benchmark)."""
    op, target = goal
    if op not in (">=", "<="):
        raise ValueError(f"goal operator must be '>=' or '<=', got {op!r}")
    if not isinstance(value, (int, float)) or value != value:
        return f"goal {op} {_fmt(float(target))}: not measured", None
    met = value >= target if op == ">=" else value <= target
    return f"goal {op} {_fmt(float(target))}: {'met' if met else 'NOT met'}", met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(available())}")
    parser.add_argument("--json", type=Path, help="write figures as JSON to this file")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    results: dict[str, dict[str, object]] = {}
    goals: dict[str, dict[str, dict[str, object]]] = {}
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        figures = module.run()
        figures.setdefault("benchmark_wall_s", round(time.perf_counter() - t0, 3))
        results[name] = figures
        module_goals = getattr(module, "GOALS", {})
        width = max(len(k) for k in figures)
        print(f"\n== {name} ==")
        for key, value in figures.items():
            line = f"  {key:<{width}}  {_fmt(value)}"
            if key in module_goals:
                text, met = goal_text(value, module_goals[key])
                goals.setdefault(name, {})[key] = {"goal": list(module_goals[key]), "met": met}
                line = f"{line:<{width + 18}}  {text}"
            print(line)
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps({**results, "goals": goals} if goals else results, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
