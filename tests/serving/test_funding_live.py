"""Live funding through the loop: the venue's announced rate and next settlement time
(FundingRateEvent, as the Binance mark-price stream and ccxt fetchFundingRate deliver them)
become settlements at the venue's instants, paid by the paper venue and journaled — never a
silent 0; when the information stops, the missing-funding rule de-risks."""

from __future__ import annotations


import numpy as np
import pytest

from serving.events import BarEvent, FundingRateEvent
from serving.exchanges.paper import PaperExchange
from serving.faults import START, STEP, ScriptedPolicy, attack_config, attack_events
from serving.journal import Journal
from serving.loop import LiveLoop, live_spec, resolve_latency_ns

N = 60
RATE = 2e-4


def _run(tmp_path, stop_funding_at: int | None = None):
    cfg = attack_config("missing_funding")
    bars = [e for e in attack_events("none", 3, N)[0] if isinstance(e, BarEvent)]
    events = []
    for ev in bars:
        events.append(ev)
        k = (ev.ts_event - START) // STEP
        if stop_funding_at is None or k < stop_funding_at:
            nxt = START + (k // 8 + 1) * 8 * STEP  # the next 8-hourly settlement instant
            for j in range(2):
                events.append(FundingRateEvent(ev.available_at, ev.available_at, j, RATE * (j + 1), nxt))
    from dea.features.featureset import FeatureSet

    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    journal = Journal(tmp_path / "j.sqlite", synchronous="OFF")
    loop = LiveLoop(cfg, ScriptedPolicy(live_spec(cfg, fs)), PaperExchange(cfg.data.instruments, cfg.costs,
                    latency_ns=resolve_latency_ns(cfg)), journal, clock_start=START + STEP, clock_end=START + N * STEP)
    for j in range(2):
        loop.panel.bar_instrument(j, j)
    return loop, loop.run(iter(events))


def test_announced_rates_settle_at_the_venue_instants(tmp_path):
    loop, summary = _run(tmp_path)
    funding = [e for e in loop.journal.ledger() if e.kind == "funding"]
    instants = sorted({e.ts for e in funding})
    # a settlement every 8h from the first announced instant (the last one may be past the clock)
    assert len(instants) >= N // 8 - 1
    assert all((t - START) % (8 * STEP) == STEP for t in instants)  # the decision right after T
    assert summary.guarded.get("funding_missing", 0) == 0
    for e in funding:  # paid = position notional x the rate announced before T
        assert e.amount != 0.0
    paid = np.array(loop.account.funding)
    assert np.all(paid != 0.0)
    assert abs(paid[1]) > 0  # both instruments, each at its own rate


def test_information_stopping_is_flagged_not_zero(tmp_path):
    loop, summary = _run(tmp_path, stop_funding_at=20)
    assert summary.guarded.get("funding_missing") == 2  # each instrument, once per episode
    rows = loop.journal.guard_events("funding_missing")
    assert {r["instrument"] for r in rows} == {"SIM0", "SIM1"}
    assert all(r["action"] == "derisk" for r in rows)
    assert min(r["t_ns"] for r in rows) > START + 20 * STEP + 8 * STEP - STEP
