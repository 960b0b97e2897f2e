"""Fits trained ahead on worker processes (training/fit_bank.py): the same weights as in turn."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from training.fit_bank import AUTO_MIN_ROWS, fit_members, resolve_workers
from training.pipeline import train


@pytest.mark.parametrize(
    ("setting", "rows", "fits", "threads", "cores", "expected"),
    [
        ("auto", AUTO_MIN_ROWS, 12, 1, 2, 2),  # long data: one process per core
        ("auto", AUTO_MIN_ROWS, 12, 2, 8, 4),  # cores // num_threads
        ("auto", AUTO_MIN_ROWS, 3, 1, 16, 3),  # never more processes than fits
        ("auto", AUTO_MIN_ROWS - 1, 12, 1, 16, 1),  # short data: a process start costs more than it saves
        ("auto", AUTO_MIN_ROWS, 1, 1, 16, 1),  # one fit: in this process
        ("auto", AUTO_MIN_ROWS, 12, 4, 2, 1),  # more threads asked than cores: one process
        (3, 100, 12, 1, 2, 3),  # an explicit count is taken as given, short data or not
        (8, 100, 2, 1, 2, 2),
        (4, 100, 1, 1, 2, 1),
    ],
)
def test_resolve_workers(setting, rows, fits, threads, cores, expected):
    assert resolve_workers(setting, usable_rows=rows, n_fits=fits, num_threads=threads, cores=cores) == expected


def test_fit_members_spread_seeds_over_an_ensemble_and_one_fit_for_closed_forms(make_config):
    three = fit_members(make_config(model={"ensemble": 3}), 5, "fold 1")
    assert [m.seed for m in three] == [5, 10_012, 20_019]
    assert [m.label for m in three] == ["fold 1 member 1/3", "fold 1 member 2/3", "fold 1 member 3/3"]
    assert [m.prefix for m in three] == ["member0_", "member1_", "member2_"]
    one = fit_members(make_config(model={"ensemble": 1}), 5, "fold 1")
    assert [(m.seed, m.label, m.prefix) for m in one] == [(5, "fold 1", "")]
    forecast = make_config(model={"kind": "forecast", "ensemble": 3, "adjust": {"vol_scaling": True}})
    assert len(fit_members(forecast, 5, "x")) == 1


def test_parallel_fits_give_the_weights_fits_in_turn_give(make_sim, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    sections = {"model": {"kind": "shared", "hidden": [4], "ensemble": 2},
                "training": {"epochs": 2, "baselines": [], "export_onnx": False, "candidates": [{}],
                             "final_refit": True}}
    serial_cfg = make_sim(n_steps=1200, **sections)
    parallel_cfg = serial_cfg.with_overrides(["training.workers=2"])
    serial = train(serial_cfg, out_dir=tmp_path / "serial")
    with caplog.at_level(logging.INFO, logger="dea.progress.fit"):
        parallel = train(parallel_cfg, out_dir=tmp_path / "parallel")
    ran = [r.getMessage() for r in caplog.records]
    # 2 folds x 2 members (the configured model alone: no closed-form candidate), then the final model's 2
    assert any(m.startswith("walk-forward fits: 4 fits on 2 processes of 1 thread") for m in ran), ran
    assert any(m.startswith("final fits: 2 fits on 2 processes") for m in ran), ran
    assert any(m.startswith("fold 1 member 2/2") and "best epoch" in m for m in ran), ran

    def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k

    for a, b in zip(serial.folds, parallel.folds, strict=True):
        assert len(a.member_fits) == len(b.member_fits) == 2
        for fa, fb in zip(a.member_fits, b.member_fits, strict=True):
            assert fa.history == fb.history and fa.steps == fb.steps and fa.best_epoch == fb.best_epoch
            same_weights(fa.policy, fb.policy)
    for ma, mb in zip(serial.final_policy.members, parallel.final_policy.members, strict=True):
        same_weights(ma, mb)
    np.testing.assert_array_equal(serial.oos_exposures, parallel.oos_exposures)
    assert serial.metrics == parallel.metrics
