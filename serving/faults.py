"""Market-data fault injection: one attack on a clean synthetic market, run through the live loop.

Why a module (not only tests): the fault suite under ``tests/`` runs each attack once, and
``python -m benchmarks faults`` runs them at larger counts; both call
:func:`run_market_data_attack`, so the benchmark measures exactly what the tests assert. The
market is a seeded geometric random walk of hourly bars for two perpetuals (plus 8-hourly funding
settlements), the policy a scripted function of the model inputs (no model file needed: the
attack targets the data path), the venue the paper exchange, the journal a temporary SQLite file.

An attack (``"none"``: the clean control run) corrupts the event stream of instrument 0 at a seeded point (see :data:`ATTACKS`).
``wrong_trades`` counts fills whose price is more than 5 % away from the clean market's price at
the fill time (a trade on bad data), plus decisions journaled with a non-finite equity that were
not a halt; ``guarded`` counts the injected values the guards quarantined (or, for
``missing_funding`` / ``equity_inf``, whether the guarded action happened). numpy + stdlib.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dea.config.experiment import validate_config
from dea.onnx_contract import PolicyMetadata
from dea.timeutil import parse_timestamp
from serving.events import BarEvent, FundingEvent
from serving.exchanges.paper import PaperExchange
from serving.journal import Journal
from serving.loop import LiveLoop, live_spec, resolve_latency_ns

CLEAN = "none"  # no attack: the clean market (the control run)
STEP = 3_600_000_000_000
START = parse_timestamp("2024-01-01")
FUNDING_EVERY = 8  # bars
WRONG_PRICE = 0.05

ATTACKS = {
    "nan_close_5d": "instrument 0's close is NaN for 5 days (the stale rule must fire)",
    "spike_50pct": "one bar's close x1.5, unconfirmed (never traded at the spiked price)",
    "negative_price": "one close of -100",
    "conflict_duplicate": "the same bar again with close x1.3",
    "swapped_bars": "two consecutive bars arrive in swapped order",
    "nan_close": "one NaN close",
    "inf_price": "one close of +inf (de-risk and halt, no exception)",
    "future_2030": "one event stamped 2030 (quarantined; the loop goes on with the real events)",
    "missing_funding": "instrument 0's funding settlements stop (de-risk, never a silent 0)",
    "equity_inf": "guards off and an inf close reaches the account (de-risk and halt, no exception)",
}


@dataclass
class AttackResult:
    """What one attack did (the benchmark table's row; the tests assert on it)."""

    kind: str
    seed: int
    tried: int
    guarded: int
    errors: int
    wrong_trades: int
    decisions: int
    summary: dict[str, Any] = field(default_factory=dict)
    guard_rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # dea_guard_quarantined_total by guard
    decision_rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def attack_config(kind: str, guards: bool = True) -> Any:
    """The experiment config of an attack run (funded perpetuals for ``missing_funding``)."""
    funded = kind == "missing_funding"
    inst = {"venue": "sim", "kind": "perpetual", "quote": "USD", "lot_size": 0.0001, "min_notional": 1.0,
            "funding": "fund" if funded else "none", "funding_interval": "8h"}
    sources = [{"name": f"bars{j}", "kind": "bars", "format": "sim", "path": "-", "instrument": f"SIM{j}", "step": "1h"}
               for j in range(2)]
    if funded:
        sources.append({"name": "fund", "kind": "funding", "format": "sim", "path": "-", "step": "8h"})
    raw = {
        "name": f"faults-{kind}",
        "data": {"instruments": [dict(inst, symbol=f"SIM{j}", base=f"SIM{j}") for j in range(2)], "sources": sources,
                 "clock": {"step": "1h"}},
        "features": {"set": [{"name": "logret", "params": {"horizon": 1}}],
                     "missing": {"policy": "fill", "fill_value": 0.0, "indicator": True}},
        "costs": {"fee_side": "taker", "half_spread_bps": 1.0, "impact": {"model": "none"}, "initial_equity": 100000.0,
                  "funding": "charge" if funded else "ignore"},
        "risk": {"max_exposure": 1.0, "max_gross": 2.0, "max_net": 2.0, "no_trade_band": 0.0, "stale": {"max_age": "1d"}},
        "serving": {"journal_sync": "off", "model_poll": None},
        "guards": {"enabled": guards and kind != "equity_inf"},
    }
    return validate_config(raw)


class ScriptedPolicy:
    """A stand-in for :class:`~serving.runner.PolicyRunner`: target = tanh(40 x first inputs),
    so the policy trades on every price change (a bad price would move it at once)."""

    def __init__(self, spec: Any) -> None:
        self.metadata = PolicyMetadata(tuple(spec.feature_names), spec.feature_spec_hash, tuple(spec.instruments),
                                       model_name="scripted", model_version="1")
        self.source = "scripted"
        self.version = "1"
        self.dispersion = None
        self.n = len(spec.instruments)

    def decide(self, features: np.ndarray, exposure: np.ndarray) -> np.ndarray:
        return np.tanh(40.0 * np.asarray(features, dtype=np.float64)[: self.n]).reshape(1, self.n)

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "version": self.version, "model_name": "scripted"}


def clean_market(seed: int, n_bars: int) -> np.ndarray:
    """Close prices [n_bars, 2] of a seeded random walk (hourly vol 0.5 %)."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 0.005, size=(n_bars, 2))
    return np.array([100.0, 50.0]) * np.exp(np.cumsum(r, axis=0))


def _bar(t_open: int, j: int, close: float, prev: float) -> BarEvent:
    hi = max(close, prev) if close == close else close
    lo = min(close, prev) if close == close else close
    return BarEvent(t_open + STEP, t_open, j, j, prev, hi, lo, close, 10.0)


def attack_events(kind: str, seed: int, n_bars: int) -> tuple[list[Any], int, np.ndarray]:
    """(events, number of injected bad values, clean closes) for one attack."""
    if kind not in ATTACKS and kind != CLEAN:
        raise ValueError(f"unknown market-data attack {kind!r}; known: {sorted(ATTACKS)}")
    close = clean_market(seed, n_bars)
    rng = np.random.default_rng(seed + 1)
    m = int(rng.integers(n_bars // 4, n_bars // 2))
    events: list[Any] = []
    tried = 0
    for k in range(n_bars):
        t = START + k * STEP
        for j in range(2):
            c = float(close[k, j])
            prev = float(close[k - 1, j]) if k else c
            if j == 0 and kind == "nan_close_5d" and m <= k < m + 120:
                c, tried = math.nan, tried + 1
            elif j == 0 and k == m:
                bad = {"spike_50pct": c * 1.5, "negative_price": -100.0, "nan_close": math.nan,
                       "inf_price": math.inf, "equity_inf": math.inf}.get(kind)
                if bad is not None:
                    c, tried = bad, 1
            events.append(_bar(t, j, c, prev))
            if j == 0 and k == m and kind == "conflict_duplicate":
                events.append(_bar(t, j, c * 1.3, prev))
                tried = 1
            if j == 0 and k == m and kind == "future_2030":
                t30 = parse_timestamp("2030-01-01")
                events.append(BarEvent(t30, t30, 0, 0, c, c, c, c, 10.0))
                tried = 1
        if kind == "missing_funding" and k % FUNDING_EVERY == 0:
            for j in range(2):
                if j == 0 and k >= m:
                    continue
                events.append(FundingEvent(t + STEP, t + STEP, 2, j, 1e-4))
    if kind == "swapped_bars":  # bars m and m+1 of instrument 0 change places
        a = next(i for i, e in enumerate(events) if isinstance(e, BarEvent) and e.instrument == 0 and e.ts_event == START + m * STEP)
        b = next(i for i, e in enumerate(events) if isinstance(e, BarEvent) and e.instrument == 0 and e.ts_event == START + (m + 1) * STEP)
        events[a], events[b] = events[b], events[a]
        tried = 1
    if kind == "missing_funding":
        tried = 1
    events.sort(key=lambda e: e.available_at) if kind not in ("swapped_bars", "future_2030", "conflict_duplicate") else None
    return events, tried, close


def _wrong_trades(journal: Journal, close: np.ndarray) -> int:
    wrong = 0
    for f in journal.fills():
        k = (f.ts - START) // STEP - 1  # the last bar available at the fill time
        if k < 0 or k >= len(close):
            continue
        ref = float(close[int(k), f.index])
        if not (abs(f.price / ref - 1.0) <= WRONG_PRICE):
            wrong += 1
    for d in journal.decisions():
        eq = d["equity"]
        if (eq is None or not math.isfinite(eq)) and not d["detail"].get("halted"):
            wrong += 1
    return wrong


def run_market_data_attack(kind: str, seed: int = 0, *, n_bars: int = 400, guards: bool = True,
                           overrides: list[str] | None = None, keep_decisions: bool = False,
                           workdir: str | Path | None = None) -> AttackResult:
    """Run attack ``kind`` (a key of :data:`ATTACKS`) with ``seed`` through a fresh live loop.

    ``n_bars`` hourly bars; ``guards=False``: the same attack unguarded (to show what it does);
    ``overrides``: config overrides (``guards.funding_missing=error``); ``keep_decisions``: return
    the journaled decisions too."""
    cfg = attack_config(kind, guards)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    events, tried, close = attack_events(kind, seed, n_bars)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite", synchronous="OFF")
        ex = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg))
        loop = LiveLoop(cfg, ScriptedPolicy(live_spec(cfg, _featureset(cfg))), ex, journal,
                        clock_start=START + STEP, clock_end=START + n_bars * STEP)
        for j in range(2):
            loop.panel.bar_instrument(j, j)  # what a replay's bind() does for table sources
        error = None
        try:
            summary = loop.run(iter(events))
        except Exception as exc:  # an exception out of the loop is what the guards must prevent
            error = f"{type(exc).__name__}: {exc}"
            summary = loop.summary
        rows = journal.guard_events()
        guarded = _guarded(kind, summary, tried)
        result = AttackResult(kind, seed, tried, guarded, int(error is not None), _wrong_trades(journal, close),
                              summary.decisions, summary.as_dict(), rows, _guard_metrics(loop.metrics.render()),
                              journal.decisions() if keep_decisions else [], error)
        journal.close()
    return result


def _guard_metrics(text: bytes) -> dict[str, float]:
    out = {}
    for line in text.decode().splitlines():
        if line.startswith('dea_guard_quarantined_total{guard="'):
            name, value = line.split('"')[1], float(line.rsplit(" ", 1)[1])
            out[name] = value
    return out


def _featureset(cfg: Any) -> Any:
    from dea.features.featureset import FeatureSet

    return FeatureSet.from_config(cfg.features, cfg.data.symbols)


EXPECTED_GUARD = {"nan_close_5d": "missing", "spike_50pct": "jump", "negative_price": "nonpositive",
                  "conflict_duplicate": "conflict", "swapped_bars": "out_of_order", "nan_close": "missing",
                  "inf_price": "nonfinite", "future_2030": "future", "missing_funding": "funding_missing",
                  "equity_inf": "equity"}


def _guarded(kind: str, summary: Any, tried: int) -> int:
    if kind == CLEAN:
        return 0
    n = summary.guarded.get(EXPECTED_GUARD[kind], 0)
    if kind in ("inf_price", "equity_inf") and not summary.halted:
        return 0
    return min(n, tried)


__all__ = ["ATTACKS", "CLEAN", "AttackResult", "EXPECTED_GUARD", "ScriptedPolicy", "attack_config", "attack_events",
           "clean_market",
           "run_market_data_attack"]
