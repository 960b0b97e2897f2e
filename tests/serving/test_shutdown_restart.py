"""Clean shutdown on SIGTERM/SIGINT, safe re-sends on restart, and a stale store refused."""

from __future__ import annotations

import os
import signal

import pytest
from serving_helpers import export_config_policy, sim_config

from dea.errors import DataError
from serving.app import run_serve
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner


@pytest.fixture(scope="module")
def sim(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("shutdown")
    cfg = sim_config(tmp, repo_root, n_steps=200).with_overrides(["costs.latency=20m"])
    return cfg, load_tables(cfg), export_config_policy(cfg, tmp / "m.onnx", seed=2)


def _signal_at(sig: signal.Signals, n: int):
    seen = []

    def on_loop(loop):
        def hook(point, t):
            if point == "after_submit":
                seen.append(t)
                if len(seen) == n:
                    os.kill(os.getpid(), sig)  # delivered to this (main) thread's handler

        loop.hook = hook

    return on_loop


@pytest.mark.parametrize(("sig", "orders"), [(signal.SIGTERM, "leave"), (signal.SIGINT, "cancel")])
def test_a_signal_finishes_the_event_journals_and_stops_cleanly(sim, tmp_path, sig, orders):
    cfg, _, model = sim
    cfg = cfg.with_overrides([f"serving.shutdown_orders={orders}"])
    summary = run_serve(cfg, model=str(model), feed="replay", exchange="paper", journal=str(tmp_path / "j.sqlite"),
                        on_loop=_signal_at(sig, 3))  # no KeyboardInterrupt escapes
    assert summary.stopped_by == sig.name
    j = Journal(tmp_path / "j.sqlite")
    decisions = j.decisions()
    assert summary.decisions == len(decisions)
    assert len({o.t_decision for o in j.orders()}) == 3  # stopped right after the 3rd trading decision
    shut = j.events("shutdown")
    assert len(shut) == 1 and shut[0]["detail"]["signal"] == sig.name
    statuses = {o.status for o in j.orders() if o.t_decision == decisions[-1]["t_ns"]}
    # latency 20m: the last orders were still working at the stop
    assert statuses == ({"sent"} if orders == "leave" else {"cancelled"})
    assert j.lease() is not None and j.lease().expires_ns <= __import__("time").time_ns()  # released
    assert "PnL" in summary.report() and "sharpe" in summary.report()


def test_cli_prints_a_start_line_and_a_human_summary(sim, tmp_path, capsys, caplog):
    import logging

    from dea.cli.main import main as dea_main

    cfg, _, model = sim
    cfg_path = cfg.base_dir / "sim.yaml"
    with caplog.at_level(logging.INFO, logger="dea.serving.app"):
        code = dea_main(["serve", "--config", str(cfg_path), "--model", str(model), "--journal", str(tmp_path / "j.sqlite"),
                         "--log-format", "text", "--set", "costs.latency=20m"])
    assert code == 0
    err = capsys.readouterr().err
    assert "PnL" in err and "period        20" in err and "costs         fees" in err
    start = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving model")]
    assert start and "sha256" in start[0] and "feed replay venue paper" in start[0]


def _loop(cfg, tables, model, journal, venue, hook=None):
    replay = TableReplay(cfg.data, tables)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), venue, Journal(journal, synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps,
                    crash_hook=hook)
    return loop, replay


class Crash(RuntimeError):
    pass


def _crash_after_journal(cfg, tables, model, journal, venue, n=4):
    seen = []

    def hook(point, t):
        if point == "after_journal" and any(o.t_decision == t for o in loop.journal.orders()):
            seen.append(t)
            if len(seen) == n:
                raise Crash

    loop, replay = _loop(cfg, tables, model, journal, venue, hook)
    with pytest.raises(Crash):
        loop.run(replay.events(loop.panel))
    return seen[-1]


def _venue(cfg):
    return PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)


@pytest.mark.parametrize(("override", "reason"), [
    ("serving.order_ttl=0s", "older than serving.order_ttl"),  # any age is too old
    ("risk.max_exposure=0.05", "risk at current prices and equity allows"),  # the risk engine now says no
])
def test_restart_cancels_orders_it_must_not_resend(sim, tmp_path, override, reason):
    cfg, tables, model = sim
    venue = _venue(cfg)
    t_crash = _crash_after_journal(cfg, tables, model, tmp_path / "j.sqlite", venue)
    unsent = [o for o in Journal(tmp_path / "j.sqlite").orders() if o.status == "new"]
    assert unsent and all(o.t_decision == t_crash for o in unsent)
    # a replay re-sends at the last journaled decision's time (age 0): order_ttl 0s = never re-send
    loop, replay = _loop(cfg.with_overrides([override]), tables, model, tmp_path / "j.sqlite", venue)
    summary = loop.run(replay.events(loop.panel))
    assert summary.resent == 0 and summary.expired == len(unsent)
    j = Journal(tmp_path / "j.sqlite")
    by_id = {o.client_id: o for o in j.orders()}
    for o in unsent:
        assert by_id[o.client_id].status == "cancelled" and reason in (by_id[o.client_id].reason or "")
        assert venue.lookup(o.client_id, o.instrument).status == "unknown"  # never reached the venue
    assert len(j.events("order_expired")) == len(unsent)


def test_replay_refuses_a_stale_store(sim, tmp_path):
    import json

    from dea.data.store import DataStore
    from serving.app import build_replay

    cfg, _, _ = sim
    store = DataStore(cfg.data.store)
    for src in cfg.data.sources:
        store.ingest_source(src, cfg.base_dir)
    build_replay("replay", cfg, start=None, end=None)  # current: accepted
    # the store was built from other source content than the config's now
    manifest = json.loads(store.manifest_path.read_text())
    name = cfg.data.sources[0].name
    manifest["datasets"][name][cfg.data.sources[0].kind]["fingerprint"] = "0" * 64
    store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=rf"{name}: source fingerprint .* differs from the stored 000000000000.*dea data ingest"):
        build_replay("replay", cfg, start=None, end=None)


def test_store_check_names_a_missing_source_file_and_an_unknown_format(tmp_path, shared_data):
    import shutil

    from dea.data.config import SourceConfig
    from dea.data.store import DataStore

    csv = tmp_path / "DGS10.csv"
    shutil.copy(shared_data / "macro" / "DGS10.csv", csv)
    src = SourceConfig(name="dgs10", kind="exogenous", format="fred", path=str(csv), step="1d", publication_lag="1d")
    store = DataStore(tmp_path / "store")
    store.ingest_source(src, tmp_path)
    assert store.stale_sources([src], tmp_path) == []
    assert "unknown format 'nope'" in store.stale_sources([src.model_copy(update={"format": "nope"})], tmp_path)[0]
    csv.unlink()
    assert "file not found" in store.stale_sources([src], tmp_path)[0]
