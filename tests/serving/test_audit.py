"""Audit trail: every journaled decision carries the hash of its exact model input; with
``serving.audit_inputs`` the vector too, and ``dea audit`` re-derives each decision from it."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from serving_helpers import export_config_policy, sim_config

from dea.cli.main import main as dea_main
from serving.audit import audit_journal
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import TableReplay, load_tables
from serving.journal import Journal
from serving.loop import LiveLoop, input_hash, model_input_vector, resolve_latency_ns
from serving.runner import PolicyRunner


@pytest.fixture(scope="module")
def sim(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp("audit")
    cfg = sim_config(tmp, repo_root, n_steps=200).with_overrides(["costs.latency=20m"])
    return cfg, load_tables(cfg)


def _run(cfg, tables, model, journal):
    replay = TableReplay(cfg.data, tables)
    ex = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=[0.5] * 4)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), ex, Journal(journal, synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps)
    loop.run(replay.events(loop.panel))
    return loop


def test_input_hash_is_exact_and_order_sensitive():
    v = model_input_vector(np.array([1.0, 2.0]), np.array([0.5]), None)
    assert input_hash(v) == input_hash(model_input_vector(np.array([1.0, 2.0], np.float32), np.array([0.5]), None))
    assert input_hash(v) != input_hash(model_input_vector(np.array([2.0, 1.0]), np.array([0.5]), None))
    assert input_hash(v) != input_hash(model_input_vector(np.array([1.0, 2.0]), np.array([0.5]), np.zeros(1)))
    assert input_hash(v) != input_hash(model_input_vector(np.array([1.0, np.nextafter(np.float32(2), np.float32(3))]),
                                                          np.array([0.5]), None))


@pytest.mark.parametrize("recurrent", [False, True])
def test_audit_rederives_every_decision_and_reports_a_difference(sim, tmp_path, recurrent):
    cfg, tables = sim
    cfg = cfg.with_overrides(["serving.audit_inputs=true"])
    model = export_config_policy(cfg, tmp_path / "m.onnx", seed=3, recurrent=recurrent)
    loop = _run(cfg, tables, model, tmp_path / "j.sqlite")
    rows = loop.journal.decision_inputs()
    usable = [d for d in loop.journal.decisions() if d["action"] != "warmup"]
    assert len(rows) == len(usable) > 50 and all(r["vector"] is not None for r in rows)
    rep = audit_journal(tmp_path / "j.sqlite", str(model))
    assert rep.ok and rep.rederived == len(rows) and rep.max_abs_diff == 0.0, rep.lines()
    assert dea_main(["audit", str(tmp_path / "j.sqlite"), "--model", str(model)]) == 0
    # a journaled output that the model does not produce from its recorded input
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        t = rows[len(rows) // 2]["t_ns"]
        db.execute("UPDATE decision_inputs SET model_output='[0.9, 0.9, 0.9, 0.9]' WHERE t_ns=?", (t,))
    rep = audit_journal(tmp_path / "j.sqlite", str(model))
    assert len(rep.differences) == 1 and "model output" in rep.differences[0]
    assert dea_main(["audit", str(tmp_path / "j.sqlite"), "--model", str(model)]) == 1
    # another model file is not the one these decisions were taken with
    other = export_config_policy(cfg, tmp_path / "other.onnx", seed=9, recurrent=recurrent)
    assert audit_journal(tmp_path / "j.sqlite", str(other)).other_model == len(rows)


def test_without_stored_vectors_only_hashes_are_journaled(sim, tmp_path):
    cfg, tables = sim
    model = export_config_policy(cfg, tmp_path / "m.onnx", seed=3)
    loop = _run(cfg, tables, model, tmp_path / "j.sqlite")
    rows = loop.journal.decision_inputs()
    assert rows and all(r["vector"] is None and len(r["input_sha256"]) == 64 for r in rows)
    assert len({r["input_sha256"] for r in rows}) == len(rows)  # the inputs differ every hour
    rep = audit_journal(tmp_path / "j.sqlite", str(model))
    assert rep.hash_only == len(rows) and not rep.ok
