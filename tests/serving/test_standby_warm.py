"""A hot standby is warm: it follows the journal and the feed while the primary trades, and on
takeover its first decision is the one the primary would have made (features, guards, account
and, for a recurrent model, the hidden state all carried over). A standby that only starts at
takeover on a live feed (what ``--standby`` used to do) decides on half-warm features instead --
the contrast shows what the follow buys. Also: ``dea audit`` re-derives a recurrent model's
decisions by replaying its state in order, and reports a doctored stored input."""

from __future__ import annotations

import json
import sqlite3

import pytest
from serving_helpers import export_config_policy, sim_config

from serving.audit import audit_journal
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal
from serving.lease import LeaseKeeper
from serving.loop import LiveLoop, resolve_latency_ns
from serving.runner import PolicyRunner
from serving.standby import StandbyLoop

TTL = 300_000_000  # 0.3 s: the dead primary's lease expires quickly


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def setup(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("warm")
    cfg = sim_config(tmp, repo_root, n_steps=320).with_overrides(["costs.latency=20m", "serving.journal_inputs=true"])
    tables = load_tables(cfg)
    return cfg, tables, tmp


def _exchange(cfg):
    return PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)


def _loop(cls, cfg, replay, model, journal, **kw):
    return cls(cfg, PolicyRunner.from_path(model), _exchange(cfg), journal, clock_start=replay.clock_start,
               clock_end=replay.clock_end, native_steps=replay.native_steps, **kw)


def _state(path):
    j = Journal(path)
    return ([(o.client_id, o.qty, o.status) for o in j.orders()],
            [(f.client_id, f.ts, f.qty, f.price, f.fee, f.spread, f.impact) for f in j.fills()],
            [(d["t_ns"], d["action"], d["target"], d["allowed"], d["equity"]) for d in j.decisions()])


def _primary_dies(cfg, tables, model, path, kill_at):
    """A primary holding the lease, killed right after journaling its ``kill_at``-th decision."""
    replay = TableReplay(cfg.data, tables)
    j = Journal(path, synchronous="NORMAL")
    j.acquire_lease("primary", TTL)
    n = {"k": 0}

    def hook(where, t):
        if where == "before_journal":
            n["k"] += 1
        if where == "after_journal" and n["k"] == kill_at:
            raise Crash(t)

    loop = _loop(LiveLoop, cfg, replay, model, j, crash_hook=hook)
    with pytest.raises(Crash) as died:
        loop.run(replay.events(loop.panel))
    return int(str(died.value))


@pytest.mark.parametrize("recurrent", [False, True])
def test_the_standby_follows_warm_and_decides_what_the_primary_would(setup, tmp_path, recurrent):
    cfg, tables, tmp = setup
    model = export_config_policy(cfg, tmp_path / "m.onnx", seed=5, recurrent=recurrent, hidden=8)
    replay = TableReplay(cfg.data, tables)
    ref_loop = _loop(LiveLoop, cfg, replay, model, Journal(tmp_path / "ref.sqlite", synchronous="NORMAL"))
    ref_loop.run(replay.events(ref_loop.panel))
    ref = _state(tmp_path / "ref.sqlite")
    model_decisions = [d for d in ref[2] if d[1] == "model"]
    assert len(model_decisions) > 120 and len(ref[1]) > 20

    # the primary dies after 200 decisions (orders journaled, not sent); the standby followed the
    # same feed from the start, silently, and takes over when the lease expires
    path = tmp_path / "live.sqlite"
    t_kill = _primary_dies(cfg, tables, model, path, 200)
    jr = Journal(path, synchronous="NORMAL")
    keeper = LeaseKeeper(jr, TTL, holder="standby")
    replay = TableReplay(cfg.data, tables)
    standby = _loop(StandbyLoop, cfg, replay, model, jr, keeper=keeper)
    try:
        summary = standby.run(replay.events(standby.panel))
    finally:
        keeper.release()
    assert standby.followed == 200 and standby.followed_to == t_kill and not standby.following
    took = jr.events("standby_takeover")
    assert len(took) == 1 and took[0]["detail"]["features_warm"] is True
    assert took[0]["detail"]["last_journaled"] == t_kill
    assert summary.reconciled == 1 and summary.warmup_decisions == 0
    # the first decision after the takeover is the model's, and every decision, order and fill is
    # the uninterrupted run's: nothing lost, nothing sent twice, nothing decided differently
    got = _state(path)
    first = next(d for d in got[2] if d[0] > t_kill)
    assert first == next(d for d in ref[2] if d[0] > t_kill) and first[1] == "model"
    assert got == ref
    if recurrent:
        replayed = [e["detail"] for e in jr.events("recurrent_state")]
        n_ran = sum(1 for d in ref[2] if d[0] <= t_kill and d[1] == "model")
        assert replayed == [{"replayed_steps": n_ran, "problem": None}]
        rep = audit_journal(path, str(model))
        assert rep.ok and rep.recurrent and rep.state_unknown == 0
        assert rep.rederived == rep.matched == len(model_decisions)

    # the contrast: a standby that only starts at the takeover on a live feed (events from then on)
    # restarts cold -- its first decisions run on half-warm features (missing inputs filled) and
    # are not what the primary would have decided
    cold_path = tmp_path / "cold.sqlite"
    _primary_dies(cfg, tables, model, cold_path, 200)
    replay = TableReplay(cfg.data, tables)
    cold = _loop(LiveLoop, cfg, replay, model, Journal(cold_path, synchronous="NORMAL"))
    cold.run(ev for ev in replay.events(cold.panel) if ev.available_at > t_kill)
    after = [d for d in _state(cold_path)[2] if d[0] > t_kill]
    ref_after = [d for d in ref[2] if d[0] > t_kill]
    assert after[0][0] == ref_after[0][0] and after[0][2] != ref_after[0][2]


def test_audit_replays_a_recurrent_models_state(setup, tmp_path, capsys):
    cfg, tables, _ = setup
    model = export_config_policy(cfg, tmp_path / "rnn.onnx", seed=3, recurrent=True, hidden=8)
    replay = TableReplay(cfg.data, tables)
    path = tmp_path / "j.sqlite"
    loop = _loop(LiveLoop, cfg, replay, model, Journal(path, synchronous="NORMAL"))
    loop.run(replay.events(loop.panel))
    n_model = sum(d["action"] == "model" for d in loop.journal.decisions())
    rep = audit_journal(path, str(model))
    assert rep.ok and rep.recurrent and rep.rederived == rep.matched == n_model > 120
    assert rep.replayed_steps == n_model and rep.state_unknown == 0
    # the state matters: the same inputs one at a time from a zero state do not re-derive them
    runner = PolicyRunner.from_path(model)
    d = [d for d in loop.journal.decisions() if d["action"] == "model"][50]
    x, e = d["detail"]["inputs"]["features"], d["detail"]["inputs"]["exposure"]
    import numpy as np

    cold = runner.decide(np.array(x, np.float32), np.array(e, np.float32)).ravel().tolist()
    assert max(abs(a - b) for a, b in zip(cold, d["target"], strict=True)) > 1e-3

    # a doctored stored input: reported at that decision; the state after it is unknown, so the
    # decisions after it are counted as state_unknown (never as made-up matches or differences)
    db = sqlite3.connect(str(path))
    t = d["t_ns"]
    detail = d["detail"]
    detail["inputs"]["features"][0] += 1.0
    db.execute("UPDATE decisions SET detail=? WHERE t_ns=?", (json.dumps(detail), t))
    db.commit()
    db.close()
    rep = audit_journal(path, str(model))
    assert [x["problem"] for x in rep.differences] == ["stored input vector does not match its hash"]
    assert rep.matched == 50 and rep.state_unknown == sum(1 for d in loop.journal.decisions() if d["t_ns"] > t)


def test_a_standby_started_too_late_holds_until_warm_and_says_so(setup, tmp_path, caplog):
    """A standby that joined a live feed a few steps before the crash has no history: it takes
    over, journals and logs that its features are not warm, and holds (warm-up) instead of
    deciding on them."""
    cfg, tables, _ = setup
    model = export_config_policy(cfg, tmp_path / "m.onnx", seed=5)
    path = tmp_path / "live.sqlite"
    t_kill = _primary_dies(cfg, tables, model, path, 200)
    step = 3600 * 10**9
    jr = Journal(path, synchronous="NORMAL")
    keeper = LeaseKeeper(jr, TTL, holder="standby")
    replay = TableReplay(cfg.data, tables)
    late = StandbyLoop(cfg, PolicyRunner.from_path(model), _exchange(cfg), jr, keeper=keeper,
                       native_steps=replay.native_steps, clock_end=replay.clock_end)  # a live clock: from its first event
    try:
        with caplog.at_level("WARNING", logger="dea.serving.standby"):
            late.run(ev for ev in replay.events(late.panel) if ev.available_at > t_kill - 5 * step)
    finally:
        keeper.release()
    took = jr.events("standby_takeover")[0]["detail"]
    assert took["features_warm"] is False and 1 <= took["followed_decisions"] <= 5
    assert "before its features were warm" in caplog.text
    after = [d for d in jr.decisions() if d["t_ns"] > t_kill]
    holding = [d for d in after if d["action"] == "warmup"]
    assert after[0]["action"] == "warmup" and len(holding) >= 10
    # nothing traded on cold features: a held decision has no target; its only orders are the risk
    # engine's (the gross cap trimming the held book as prices move)
    traded = {o.t_decision for o in jr.orders()}
    assert all(d["target"] == [None] * 4 for d in holding)
    assert all(d["detail"]["rules"] for d in holding if d["t_ns"] in traded)
