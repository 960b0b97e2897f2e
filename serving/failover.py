"""Kill the primary, let the standby take over: the failover trial the tests and the benchmark run.

Why a module: ``tests/serving/test_standby.py`` kills a primary ``dea serve`` a couple of times,
``python -m benchmarks faults`` many times; both call :func:`failover_trial`, so the benchmark
measures what the tests assert. A trial starts ``dea serve`` (the primary) on a replay against the
paper venue (or a ccxt venue that outlives the primary: a local fake),
starts ``dea serve --standby`` on the same journal once the primary holds the lease,
sends the primary SIGKILL after a random number of journaled decisions, and waits for the standby
to take over and finish. The journal is then compared with a reference run that was never
interrupted: every fill and every order must be the same -- none lost, none duplicated, no
decision different. stdlib only (the processes do the work).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class FailoverResult:
    """One trial: where the primary died and what the journal looks like after the takeover."""

    killed_after: int  # decisions journaled when SIGKILL was sent (-1: the primary finished first)
    took_over: bool
    lost_fills: int
    duplicated_fills: int
    extra_fills: int
    duplicated_orders: int
    wrong_decisions: int
    standby_rc: int
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def serve_command(config: Path, model: Path, journal: Path, extra: Sequence[str] = (), *,
                  exchange: str = "paper") -> list[str]:
    return [sys.executable, "-m", "dea", "serve", "--config", str(config), "--model", str(model), "--feed", "replay",
            "--exchange", exchange, "--journal", str(journal), "--log-format", "text", *extra]


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""), **dict(extra or {}))


def _count(journal: Path, sql: str) -> int:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute(sql).fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def journal_state(journal: Path, *, fill_times: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Orders, fills and decisions of a journal, comparable between runs. ``fill_times=False``:
    fills without their time (a real or fake venue stamps them with its wall clock)."""
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    ts = "ts, " if fill_times else ""
    try:
        return {
            "orders": db.execute("SELECT client_id, qty, status FROM orders ORDER BY client_id").fetchall(),
            "fills": db.execute(f"SELECT client_id, {ts}qty, price, fee, spread, impact FROM ledger "
                                "WHERE kind='fill' ORDER BY seq").fetchall(),
            "decisions": db.execute("SELECT t_ns, target, allowed, equity FROM decisions ORDER BY t_ns").fetchall(),
        }
    finally:
        db.close()


def reference_run(config: Path, model: Path, journal: Path, extra: Sequence[str] = (), timeout: float = 600, *,
                  exchange: str = "paper", env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An uninterrupted run (the expected journal)."""
    out = subprocess.run(serve_command(config, model, journal, extra, exchange=exchange), capture_output=True,
                         text=True, env=_env(env), timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"reference dea serve failed ({out.returncode}): {out.stderr[-3000:]}")
    return journal_state(journal, fill_times=exchange == "paper")


def failover_trial(
    config: Path,
    model: Path,
    journal: Path,
    reference: dict[str, Any],
    kill_after: int,
    *,
    lease_ttl: str = "1s",
    extra: Sequence[str] = (),
    timeout: float = 600,
    exchange: str = "paper",
    env: Mapping[str, str] | None = None,
) -> FailoverResult:
    """Primary + standby on ``journal``; SIGKILL the primary after ``kill_after`` decisions.

    ``exchange``: ``paper`` (each process has its own simulated venue; the standby's takes over
    the journal's account) or ``ccxt:VENUE`` pointed at a venue that outlives the primary (a local
    fake in the tests, ``serving.venue_urls``); ``env``: extra environment (its credentials)."""
    args = [*extra, "--set", f"serving.lease_ttl={lease_ttl}"]
    env = _env(env)
    primary = subprocess.Popen(serve_command(config, model, journal, args, exchange=exchange), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env, text=True)
    standby = None
    try:
        deadline = time.time() + timeout
        while _count(journal, "SELECT COUNT(*) FROM lease") == 0 and primary.poll() is None:
            if time.time() > deadline:
                raise TimeoutError("the primary never took the lease")
            time.sleep(0.01)
        standby = subprocess.Popen(serve_command(config, model, journal, [*args, "--standby"], exchange=exchange),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        killed = -1
        while primary.poll() is None:
            n = _count(journal, "SELECT COUNT(*) FROM decisions")
            if n >= kill_after:
                primary.kill()
                killed = n
                break
            if time.time() > deadline:
                raise TimeoutError("the primary did not reach the kill point")
            time.sleep(0.002)
        primary.wait(timeout=60)
        out, err = standby.communicate(timeout=max(1.0, deadline - time.time()))
        rc = standby.returncode
    finally:
        for p in (primary, standby):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        if primary.stderr is not None:
            primary.stderr.close()
    took_over = "took over as standby" in err
    if rc != 0:
        return FailoverResult(killed, took_over, 0, 0, 0, 0, 0, rc, error=err[-3000:])
    got = journal_state(journal, fill_times=exchange == "paper")
    ref_fills, got_fills = Counter(reference["fills"]), Counter(got["fills"])
    lost = sum((ref_fills - got_fills).values())
    extra_fills = sum((got_fills - ref_fills).values())
    per_order = Counter(f[0] for f in got["fills"])
    dup_fills = sum(c - 1 for c in per_order.values() if c > 1) - sum(
        c - 1 for c in Counter(f[0] for f in reference["fills"]).values() if c > 1)
    dup_orders = len(got["orders"]) - len({o[0] for o in got["orders"]})
    wrong = sum(1 for a, b in zip(reference["decisions"], got["decisions"], strict=False) if a != b) + abs(
        len(reference["decisions"]) - len(got["decisions"]))
    summary = json.loads(out[out.index("{"):]) if "{" in out else {}
    return FailoverResult(killed, took_over, lost, max(dup_fills, 0), extra_fills, dup_orders, wrong, rc,
                          detail={"orders_equal": got["orders"] == reference["orders"], "standby_summary": summary})


__all__ = ["FailoverResult", "failover_trial", "journal_state", "reference_run", "serve_command"]
