"""Crash and restart: the loop dies at each write-ahead point, restarts on its journal against the
same (still running) venue, and ends with exactly the orders and fills of a run that never
crashed: none duplicated, none lost."""

from __future__ import annotations

import pytest
from serving_helpers import export_config_policy, sim_config

from dea.errors import JournalError
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def sim_setup(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("crash")
    cfg = sim_config(tmp, repo_root, n_steps=160).with_overrides(["costs.latency=20m"])
    tables = load_tables(cfg)
    model = export_config_policy(cfg, tmp / "m.onnx", seed=2)
    return cfg, tables, model


def _run(cfg, tables, model, journal_path, exchange, hook=None):
    replay = TableReplay(cfg.data, tables)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), exchange, Journal(journal_path, synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps,
                    crash_hook=hook)
    return loop, loop.run(replay.events(loop.panel))


def _exchange(cfg):
    return PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)


def _state(journal_path):
    j = Journal(journal_path)
    orders = [(o.client_id, o.qty, o.status) for o in j.orders()]
    fills = [(f.client_id, f.ts, f.qty, f.price, f.fee, f.spread, f.impact) for f in j.fills()]
    decisions = [(d["t_ns"], d["target"], d["allowed"], d["equity"]) for d in j.decisions()]
    return orders, fills, decisions


@pytest.mark.parametrize(
    ("point", "new_venue"),
    [("after_journal", False), ("after_venue", False), ("after_submit", False), ("after_fills", False),
     ("after_venue", True), ("after_submit", True)],
)
def test_crash_at_each_write_ahead_point_then_restart(sim_setup, tmp_path, point, new_venue):
    """Points: orders journaled but not sent / sent but the acknowledgement not journaled / acks
    journaled, fills not polled / everything journaled. ``new_venue``: the paper venue died with
    the process (``dea serve`` restarted): the new one warms up on the replay and takes over the
    journal's account and in-flight orders."""
    cfg, tables, model = sim_setup
    ref_loop, ref = _run(cfg, tables, model, tmp_path / "ref.sqlite", _exchange(cfg))
    assert ref.orders > 10

    # crash at the 5th decision that sends orders, at `point`
    venue = _exchange(cfg)  # the venue outlives the crashed process
    seen: list[int] = []

    def hook(where, t):
        if where == "after_journal" and t not in seen and ref_loop.journal.orders() and any(
            o.t_decision == t for o in ref_loop.journal.orders()
        ):
            seen.append(t)
        if len(seen) == 5 and where == point and t == seen[-1]:
            raise Crash(f"crash {where} at {t}")

    with pytest.raises(Crash):
        _run(cfg, tables, model, tmp_path / "live.sqlite", venue, hook)
    crashed = _state(tmp_path / "live.sqlite")
    assert 0 < len(crashed[2]) < len(ref_loop.journal.decisions())

    if new_venue:
        venue = _exchange(cfg)
    loop, summary = _run(cfg, tables, model, tmp_path / "live.sqlite", venue)
    assert summary.silent_decisions == len(crashed[2])
    assert summary.reconciled == 1
    n_crashed = sum(1 for o in crashed[0] if o[0].split("-")[1] == str(seen[-1]))
    assert n_crashed > 0
    # re-sent: only orders the venue does not know (never sent, or sent to a venue that died before
    # the loop journaled its acknowledgement); orders journaled as sent are handed to a new venue
    assert summary.resent == (n_crashed if point == "after_journal" or (new_venue and point == "after_venue") else 0)
    assert _state(tmp_path / "live.sqlite") == _state(tmp_path / "ref.sqlite")
    assert loop.account.equity() == ref_loop.account.equity()
    assert venue.positions() == ref_loop.exchange.positions()
    restarts = loop.journal.events("restart")
    assert len(restarts) == 1 and restarts[0]["detail"]["last_decision"] == seen[-1]


def test_restart_after_a_clean_end_sends_nothing_new(sim_setup, tmp_path):
    cfg, tables, model = sim_setup
    venue = _exchange(cfg)
    _, first = _run(cfg, tables, model, tmp_path / "j.sqlite", venue)
    before = _state(tmp_path / "j.sqlite")
    _, again = _run(cfg, tables, model, tmp_path / "j.sqlite", venue)
    assert again.decisions == 0 and again.orders == 0 and again.silent_decisions == first.decisions
    assert _state(tmp_path / "j.sqlite") == before


def test_journal_refuses_other_instruments(sim_setup, tmp_path, bars_cfg, bars_model):
    cfg, tables, model = sim_setup
    _run(cfg, tables, model, tmp_path / "j.sqlite", _exchange(cfg))
    with pytest.raises(JournalError, match="journal belongs to instruments"):
        LiveLoop(bars_cfg, PolicyRunner.from_path(bars_model), _exchange(cfg), Journal(tmp_path / "j.sqlite"))
