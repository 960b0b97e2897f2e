"""Safe restarts and stops: stale journaled orders are cancelled, not re-sent; a re-send passes the
risk engine at current prices first; SIGTERM/SIGINT stop cleanly with a summary; one writer per
journal; a stale store is refused; ``dea audit`` re-derives the journaled decisions."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from serving_helpers import export_config_policy, sim_config

from dea.cli.main import main as dea_main
from dea.errors import DataError
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal, LeaseHeldError
from serving.lease import LeaseKeeper
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def sim(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("restarts")
    cfg = sim_config(tmp, repo_root, n_steps=160).with_overrides(["costs.latency=20m"])
    model = export_config_policy(cfg, tmp / "m.onnx", seed=2)
    return cfg, load_tables(cfg), model, tmp


def _venue(cfg):
    return PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)


def _loop(cfg, tables, model, journal, venue, *, hook=None, clock_start=None):
    replay = TableReplay(cfg.data, tables)
    loop = LiveLoop(cfg, PolicyRunner.load(str(model), trust=cfg.serving.trust_policy()), venue,
                    Journal(journal, synchronous="NORMAL"), clock_start=clock_start or replay.clock_start,
                    clock_end=replay.clock_end, native_steps=replay.native_steps, crash_hook=hook)
    return loop, replay


def _crash_after_journal(cfg, tables, model, journal, venue, nth=3):
    """Run until the ``nth`` decision that journals orders, and die before sending them."""
    seen: list[int] = []
    holder = {}

    def hook(where, t):
        if where == "after_journal" and any(o.t_decision == t for o in holder["loop"].journal.orders()):
            seen.append(t)
            if len(seen) == nth:
                raise Crash(t)

    loop, replay = _loop(cfg, tables, model, journal, venue, hook=hook)
    holder["loop"] = loop
    with pytest.raises(Crash):
        loop.run(replay.events(loop.panel))
    loop.journal.close()
    unsent = [o for o in Journal(journal).orders(("new",)) if o.t_decision == seen[-1]]
    assert unsent
    return seen[-1], unsent


def test_orders_older_than_the_ttl_are_cancelled_not_resent(sim, tmp_path):
    cfg, tables, model, _ = sim
    venue = _venue(cfg)
    t_crash, unsent = _crash_after_journal(cfg, tables, model, tmp_path / "j.sqlite", venue)
    step = 3600 * 10**9
    # the restart comes back 3 hours later (a live feed's first decision is "now")
    cfg_ttl = cfg.with_overrides(["serving.order_ttl=1h"])
    loop, replay = _loop(cfg_ttl, tables, model, tmp_path / "j.sqlite", venue, clock_start=t_crash + 3 * step)
    summary = loop.run(replay.events(loop.panel))
    assert summary.resent == 0 and summary.cancelled == len(unsent)
    by_id = {o.client_id: o for o in loop.journal.orders()}
    for o in unsent:
        assert by_id[o.client_id].status == "cancelled" and "expired" in by_id[o.client_id].reason
        assert venue.lookup(o.client_id, o.instrument).status == "unknown"  # never reached the venue
    assert len(loop.journal.events("cancel_unsent")) == len(unsent)


def test_a_resend_first_passes_the_risk_engine_at_current_prices(sim, tmp_path):
    cfg, tables, model, _ = sim
    venue = _venue(cfg)
    t_crash, unsent = _crash_after_journal(cfg, tables, model, tmp_path / "j.sqlite", venue)
    # the same restart point, but the risk limits are now far tighter: re-sending would breach them
    tight = cfg.with_overrides(["risk.max_exposure=0.001"])
    held = Journal(tmp_path / "j.sqlite").load().positions
    loop, replay = _loop(tight, tables, model, tmp_path / "j.sqlite", venue)
    summary = loop.run(replay.events(loop.panel))
    assert summary.cancelled >= 1 and summary.cancelled + summary.resent == len(unsent)
    by_id = {o.client_id: o for o in loop.journal.orders()}
    for o in unsent:
        if by_id[o.client_id].status == "cancelled":
            assert "risk re-check at restart cut it" in by_id[o.client_id].reason
        else:  # only an order that reduces the position toward the new cap may still go out
            assert o.qty * held.get(o.instrument, 0.0) < 0 and abs(o.qty) <= abs(held[o.instrument]) + 1e-12
    # with the original limits the same orders pass the re-check and are re-sent (nothing lost)
    venue2 = _venue(cfg)
    _, unsent2 = _crash_after_journal(cfg, tables, model, tmp_path / "k.sqlite", venue2)
    loop2, replay2 = _loop(cfg, tables, model, tmp_path / "k.sqlite", venue2)
    assert loop2.run(replay2.events(loop2.panel)).resent == len(unsent2)


def _state(journal):
    j = Journal(journal)
    fills = [(f.client_id, f.ts, f.qty, f.price, f.fee) for f in j.fills()]
    funding = [(e.ts, e.index, e.amount) for e in j.ledger() if e.kind == "funding"]
    decisions = [(d["t_ns"], d["target"], d["allowed"], d["equity"]) for d in j.decisions()]
    return fills, funding, decisions


@pytest.mark.parametrize("new_venue", [False, True])
def test_a_crash_after_funding_settled_but_before_the_decision_charges_it_once(sim, tmp_path, new_venue):
    """Funding at t is journaled before the decision at t; a crash between the two must not make
    the restarted loop settle the same funding again (found by the failover benchmark)."""
    cfg, tables, model, _ = sim
    ref, replay = _loop(cfg, tables, model, tmp_path / "ref.sqlite", _venue(cfg))
    ref.run(replay.events(ref.panel))
    settled = sorted({e.ts for e in ref.journal.ledger() if e.kind == "funding"})
    assert len(settled) >= 3
    target = settled[len(settled) // 2]

    def hook(where, t):
        if where == "before_journal" and t == target:
            raise Crash(t)

    venue = _venue(cfg)
    loop, replay = _loop(cfg, tables, model, tmp_path / "j.sqlite", venue, hook=hook)
    with pytest.raises(Crash):
        loop.run(replay.events(loop.panel))
    loop.journal.close()
    assert any(e.kind == "funding" and e.ts == target for e in Journal(tmp_path / "j.sqlite").ledger())
    loop2, replay2 = _loop(cfg, tables, model, tmp_path / "j.sqlite", _venue(cfg) if new_venue else venue)
    loop2.run(replay2.events(loop2.panel))
    assert _state(tmp_path / "j.sqlite") == _state(tmp_path / "ref.sqlite")
    assert loop2.account.equity() == ref.account.equity()


def test_stop_event_finishes_the_event_journals_and_cancels_unsent_orders(sim, tmp_path):
    cfg, tables, model, _ = sim
    import threading

    cfg_c = cfg.with_overrides(["serving.shutdown_orders=cancel"])
    loop, replay = _loop(cfg_c, tables, model, tmp_path / "j.sqlite", _venue(cfg_c))
    stop = threading.Event()
    stop.reason = "signal SIGTERM"
    loop.stop_event = stop
    n = 0

    def events():
        nonlocal n
        for ev in replay.events(loop.panel):
            n += 1
            if n == 400:
                stop.set()
            yield ev

    summary = loop.run(events())
    assert summary.stopped == "signal SIGTERM" and summary.events == 400
    ev = loop.journal.events("shutdown")
    assert len(ev) == 1 and ev[0]["detail"]["reason"] == "signal SIGTERM" and ev[0]["detail"]["orders"] == "cancel"
    assert not loop.journal.orders(("new",))  # nothing journaled is left waiting to be sent


def test_one_writer_per_journal_and_a_lost_lease_fences_the_old_writer(tmp_path):
    path = tmp_path / "j.sqlite"
    a, b = Journal(path), Journal(path)
    a.acquire_lease("primary", int(0.3e9))
    with pytest.raises(LeaseHeldError, match="held by a live writer primary.*--standby"):
        b.acquire_lease("second", int(0.3e9))
    time.sleep(0.4)  # the primary stalls past its expiry
    got = b.try_acquire_lease("standby", int(5e9))
    assert got is not None and got.epoch == 2
    with pytest.raises(LeaseHeldError, match="lost the journal lease"):
        a.record_decision(1, model_version="1", action="model", target=[0.0], allowed=[0.0], equity=1.0, orders=[])
    assert a.decisions() == []  # the fenced decision was rolled back
    b.record_decision(1, model_version="1", action="model", target=[0.0], allowed=[0.0], equity=1.0, orders=[])
    assert [e["detail"]["holder"] for e in b.events("lease_acquired")] == ["primary", "standby"]
    keeper = LeaseKeeper(b, int(0.3e9), holder="standby")
    keeper.acquire()  # already ours: renewed, kept alive by the heartbeat thread
    time.sleep(0.5)
    assert a.try_acquire_lease("primary", int(1e9)) is None and keeper.lost is None
    keeper.release()
    assert a.try_acquire_lease("primary", int(1e9)) is not None  # a clean release frees it at once


def test_replay_refuses_a_stale_or_missing_store_source(tmp_path, bars_config_path, shared_data):
    import shutil

    from dea.config import load_config

    fng = tmp_path / "fng.csv"
    shutil.copy(shared_data / "sentiment" / "fear_greed_index_2018_2025.csv", fng)
    text = bars_config_path.read_text().replace(str(shared_data / "sentiment" / "fear_greed_index_2018_2025.csv"),
                                                str(fng))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(text + "\n" if "store:" in text else text)
    cfg = load_config(cfg_path, [f"data.store={tmp_path / 'store'}"])
    assert dea_main(["data", "ingest", "--config", str(cfg_path), "--set", f"data.store={tmp_path / 'store'}"]) == 0
    from serving.app import build_replay

    build_replay("replay", cfg, start=None, end=None)  # current: accepted
    lines = fng.read_text().splitlines(keepends=True)
    fng.write_text("".join(lines[:-3]))  # the source changed after ingestion
    with pytest.raises(DataError, match="store .* is stale for source 'fng'.*dea data ingest"):
        build_replay("replay", cfg, start=None, end=None)
    fng.unlink()
    with pytest.raises(DataError, match="holds source 'fng', but the config's source cannot be read.*dea data ingest"):
        build_replay("replay", cfg, start=None, end=None)


# -- dea serve as a process: signals, audit ---------------------------------------------------------
def _serve_cmd(cfg_path, model, journal, *extra):
    return [sys.executable, "-m", "dea", "serve", "--config", str(cfg_path), "--model", str(model), "--feed", "replay",
            "--exchange", "paper", "--journal", str(journal), "--log-format", "text", *extra]


def _decisions(journal, action: str = "%") -> int:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT COUNT(*) FROM decisions WHERE action LIKE ?", (action,)).fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def long_sim(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("long")
    cfg = sim_config(tmp, repo_root, n_steps=2500)
    return tmp / "sim.yaml", export_config_policy(cfg, tmp / "m.onnx", seed=4), tmp


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_cleanly_with_a_summary(long_sim, tmp_path, sig, capsys):
    cfg_path, model, _ = long_sim
    journal = tmp_path / "j.sqlite"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen(_serve_cmd(cfg_path, model, journal, "--set", "serving.journal_inputs=true"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.time() + 120
    while _decisions(journal, "model") < 20 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "serve ended before the signal could be sent"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    report = json.loads(out[out.index("{"):])
    assert report["this_run"]["stopped"] == f"signal {sig.name}"
    assert report["account"]["last_decision"].endswith("Z") and isinstance(report["account"]["pnl_pct"], float)
    j = Journal(journal)
    assert [e["detail"]["reason"] for e in j.events("shutdown")] == [f"signal {sig.name}"]
    assert j.lease().expires_ns == 0  # released: a standby may take over at once
    assert 20 <= len(j.decisions()) < 2400 and sum(d["action"] == "model" for d in j.decisions()) >= 20
    # the start-up line names model, version, digest, feed and venue
    assert "sha256 " + j.decisions()[0]["detail"]["model_sha256"] in err and "feed replay | venue paper" in err

    # every journaled decision re-derives from its stored inputs; a doctored target is reported
    capsys.readouterr()
    assert dea_main(["audit", str(journal), "--model", str(model)]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["rederived"] == audit["matched"] >= 20 and audit["differences"] == []
    db = sqlite3.connect(str(journal))
    t = db.execute("SELECT t_ns FROM decisions WHERE action='model' ORDER BY t_ns LIMIT 1 OFFSET 5").fetchone()[0]
    db.execute("UPDATE decisions SET target='[0.9, 0.9, 0.9, 0.9]' WHERE t_ns=?", (t,))
    db.commit()
    db.close()
    assert dea_main(["audit", str(journal), "--model", str(model)]) == 1
    audit = json.loads(capsys.readouterr().out)
    assert [d["problem"] for d in audit["differences"]] == ["re-derived target differs"]
