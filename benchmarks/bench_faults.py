"""Fault-injection benchmark: the fault suite's attacks at larger counts.

Rows (``python -m benchmarks faults``; counts from ``DEA_BENCH_KILLS`` (default 100) and
``DEA_BENCH_TAMPER`` (default 50 per attack)):

- ``kill_primary_with_standby``: a primary ``dea serve`` process (paper venue, simulated
  perpetuals replay) SIGKILLs itself at a random write-ahead point; a standby waiting on the
  journal's lease takes over and finishes. Lost / duplicated fills and wrong trades are counted
  against a run that never died (orders, fills and decisions must be identical).
- ``tampered_*``: a model with a SHA-256 manifest is changed (weights x50, negated, a random bit
  flipped anywhere in the file, a spoofed ``dea.model_version``) and loaded; ``guarded`` = refused
  with a ModelError, ``wrong trades`` = a tampered model that loaded. ``hot_swap_tampered``: the
  same through :class:`serving.hotswap.ModelSlot` (the old model must stay live).
- ``metadata_not_utf8``: a metadata byte flipped to 0xFF (no manifest): a ModelError, not a raw
  ``UnicodeDecodeError``.
- ``restart_other_model``: a journal restarted with another model file: refused.
- market-data attacks: rows from ``serving.faults.run_market_data_attacks(count)`` when that
  module exists (the market-data guards); otherwise one row saying they are not available.

``errors`` counts outcomes that were neither guarded nor correct (unexpected exception types).
Lost fills, duplicated orders and wrong trades must all be 0.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLUMNS = ("tried", "guarded", "errors", "lost_fills", "duplicated_orders", "wrong_trades")


def _row(name: str, **counts: int | str) -> dict[str, Any]:
    return {"attack": name, **{c: counts.get(c, 0) for c in COLUMNS}}


def _tests_on_path() -> Path:
    tests = Path(__file__).resolve().parents[1] / "tests" / "serving"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    return tests


def _kills(tmp: Path, count: int) -> dict[str, Any]:
    import subprocess

    import yaml
    from serving_helpers import export_config_policy, sim_config
    from test_standby import _env, fill_faults, journal_state, kill_and_take_over

    cfg = sim_config(tmp, Path(__file__).resolve().parents[1], n_steps=200).with_overrides(["costs.latency=20m"])
    raw = yaml.safe_load((tmp / "sim.yaml").read_text())
    raw["costs"]["latency"] = "20m"
    raw["serving"] = {"journal_sync": "normal", "model_poll": None, "lease_ttl": "800ms"}
    config = tmp / "standby.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    model = export_config_policy(cfg, tmp / "m.onnx", seed=2)
    primary = Path(__file__).resolve().parents[1] / "tests" / "serving" / "serving_primary.py"
    out = subprocess.run([sys.executable, str(primary), str(config), str(model), str(tmp / "ref.sqlite"), "0"],
                         capture_output=True, text=True, env=_env(), timeout=300, check=True)
    hook_calls = int(out.stdout.split("hook_calls=")[1].split()[0])
    ref = journal_state(tmp / "ref.sqlite")
    rng = random.Random(20240808)
    row = _row("kill_primary_with_standby")
    for i in range(count):
        journal = tmp / f"kill{i}.sqlite"
        row["tried"] += 1
        try:
            rc, _summary, _err = kill_and_take_over(config, model, journal, rng.randrange(1, hook_calls))
        except Exception:  # noqa: BLE001 - counted, the table shows it
            row["errors"] += 1
            continue
        state = journal_state(journal)
        lost, dup = fill_faults(state, ref)
        row["lost_fills"] += lost
        row["duplicated_orders"] += dup
        wrong = sum(1 for a, b in zip(state[0], ref[0], strict=False) if a != b) + abs(len(state[0]) - len(ref[0]))
        row["wrong_trades"] += wrong
        if rc == -9 and state == ref:
            row["guarded"] += 1
        elif rc != -9:
            row["errors"] += 1
        journal.unlink(missing_ok=True)
    return row


def _flip_random_bit(rng: random.Random) -> Callable[[Path], None]:
    def attack(path: Path) -> None:
        data = bytearray(path.read_bytes())
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))

    return attack


def _models(tmp: Path, count: int) -> list[dict[str, Any]]:
    from serving_helpers import build_onnx_policy
    from test_faults_models import ATTACKS, FEATURES, INSTRUMENTS

    from dea.errors import ModelError
    from dea.model_integrity import write_manifest
    from serving.hotswap import ModelSlot
    from serving.runner import PolicyRunner

    rng = random.Random(7)
    attacks: dict[str, Callable[[Path], None]] = {f"tampered_{k}": v for k, v in ATTACKS.items()}
    attacks["tampered_random_bit_flip"] = _flip_random_bit(rng)
    rows = []
    for name, attack in attacks.items():
        row = _row(name)
        for i in range(count):
            path = build_onnx_policy(tmp / f"{name}{i}.onnx", FEATURES, INSTRUMENTS, seed=i)
            write_manifest(path)
            attack(path)
            row["tried"] += 1
            try:
                PolicyRunner.from_path(path)
                row["wrong_trades"] += 1  # a tampered model would have traded
            except ModelError:
                row["guarded"] += 1
            except Exception:  # noqa: BLE001
                row["errors"] += 1
        rows.append(row)
    # hot swap: the tampered replacement is refused and the live model keeps trading
    row = _row("hot_swap_tampered")
    live = build_onnx_policy(tmp / "live.onnx", FEATURES, INSTRUMENTS, seed=99)
    write_manifest(live)
    for i in range(count):
        slot = ModelSlot(PolicyRunner.from_path(live), PolicyRunner.load)
        new = build_onnx_policy(tmp / f"swap{i}.onnx", FEATURES, INSTRUMENTS, seed=1000 + i)
        write_manifest(new)
        _flip_random_bit(rng)(new)
        row["tried"] += 1
        slot.request(str(new), wait=True)
        swapped = slot.swap_if_ready()
        if swapped is None and slot.failures == 1:
            row["guarded"] += 1
        elif swapped is not None:
            row["wrong_trades"] += 1
        else:
            row["errors"] += 1
    rows.append(row)
    # metadata bytes that are not UTF-8 (no manifest: the parse itself must fail cleanly)
    row = _row("metadata_not_utf8")
    for i in range(count):
        path = build_onnx_policy(tmp / f"meta{i}.onnx", FEATURES, INSTRUMENTS, seed=i)
        data = bytearray(path.read_bytes())
        start = bytes(data).index(b"dea-test")
        data[start + rng.randrange(len("dea-test"))] = 0xFF
        path.write_bytes(bytes(data))
        row["tried"] += 1
        try:
            PolicyRunner.from_path(path)
            row["wrong_trades"] += 1
        except ModelError:
            row["guarded"] += 1
        except Exception:  # noqa: BLE001 - e.g. a raw UnicodeDecodeError
            row["errors"] += 1
    rows.append(row)
    return rows


def _restart_other_model(tmp: Path, count: int) -> dict[str, Any]:
    from serving_helpers import export_config_policy, sim_config
    from test_faults_models import _run

    from dea.errors import JournalError
    from serving.feeds.replay import load_tables

    cfg = sim_config(tmp / "restart", Path(__file__).resolve().parents[1], n_steps=200).with_overrides(
        ["costs.latency=20m"])
    tables = load_tables(cfg)
    row = _row("restart_other_model")
    for i in range(count):
        a = export_config_policy(cfg, tmp / f"ra{i}.onnx", seed=i)
        b = export_config_policy(cfg, tmp / f"rb{i}.onnx", seed=i + 500)
        _run(cfg, tables, a, tmp / f"r{i}.sqlite")
        row["tried"] += 1
        try:
            _run(cfg, tables, b, tmp / f"r{i}.sqlite")
            row["wrong_trades"] += 1
        except JournalError:
            row["guarded"] += 1
        except Exception:  # noqa: BLE001
            row["errors"] += 1
    return row


def _market_data(count: int) -> list[dict[str, Any]]:
    """Rows of the market-data guards' attacks, when that part of DEA is present."""
    try:
        from serving.faults import run_market_data_attacks  # type: ignore[import-not-found]
    except ImportError:
        return [{"attack": "market_data_guards", **{c: "not available" if c == "tried" else "-" for c in COLUMNS}}]
    return [dict(r) for r in run_market_data_attacks(count)]


def format_rows(rows: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in ("attack", *COLUMNS)}
    head = "  ".join(f"{c:<{widths[c]}}" for c in ("attack", *COLUMNS))
    lines = [head, "-" * len(head)]
    lines += ["  ".join(f"{str(r[c]):<{widths[c]}}" for c in ("attack", *COLUMNS)) for r in rows]
    return "\n".join(lines)


def run() -> dict[str, Any]:
    import logging

    logging.getLogger("dea").setLevel(logging.ERROR)  # the refusals are expected; keep the table readable
    kills = int(os.environ.get("DEA_BENCH_KILLS", "100"))
    tamper = int(os.environ.get("DEA_BENCH_TAMPER", "50"))
    _tests_on_path()
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="dea-bench-faults-") as tmp:
        os.chdir(tmp)
        try:
            root = Path(tmp)
            (root / "kills").mkdir()
            (root / "restart").mkdir()
            rows = [_kills(root / "kills", kills)]
            rows += _models(root, tamper)
            rows.append(_restart_other_model(root, max(1, tamper // 10)))
            rows += _market_data(tamper)
        finally:
            os.chdir(old)
    print(format_rows(rows))
    figures: dict[str, Any] = {}
    for r in rows:
        for c in COLUMNS:
            figures[f"{r['attack']}.{c}"] = r[c]
    numeric = [r for r in rows if isinstance(r["tried"], int)]
    for c in ("lost_fills", "duplicated_orders", "wrong_trades", "errors"):
        figures[f"total.{c}"] = sum(int(r[c]) for r in numeric)
    return figures
