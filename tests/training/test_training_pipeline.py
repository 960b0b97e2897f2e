"""End to end on the market simulator: the planted signal is found, runs are tracked in MLflow,
training is reproducible, and the objective charges exactly what the backtester charges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.evaluation import evaluate_strategy, stitch
from training.objective import step_returns
from training.pipeline import train
from training.prepare import prepare_data


def test_objective_charges_what_the_backtester_charges(make_sim):
    """Same exposures, same costs: the training objective's net returns equal the backtester's
    (fees + spread, square-root impact, funding on the position held across settlements)."""
    cfg = make_sim(n_steps=600)
    prepared = prepare_data(cfg)
    m = prepared.data.market
    a, b = 100, 560
    rng = np.random.default_rng(0)
    w = np.cumsum(rng.normal(0, 0.05, (b - a, 2)), axis=0).clip(-0.8, 0.8)
    sl = slice(a, b)
    sr = step_returns(
        torch.as_tensor(w)[None],
        torch.zeros(1, 2, dtype=torch.float64),
        torch.as_tensor(m.returns[sl])[None],
        torch.as_tensor(m.fee),
        torch.as_tensor(m.impact[sl])[None],
        torch.as_tensor(m.funding[sl])[None],
    )
    res = evaluate_strategy(cfg, prepared.market, stitch(m.returns.shape, [(a, b, w)]), a, b, "x")
    bt = res.backtest
    # the backtester books the return of the exposure decided at t in step t + 1; it trades from
    # the drifted exposure and charges funding on the drifted position, as the objective does
    np.testing.assert_allclose(sr.gross[0].numpy(), bt.gross_returns[a + 1 : b + 1], atol=1e-5, rtol=1e-3)
    assert sr.funding.sum().item() == pytest.approx(bt.costs["funding"][a + 1 : b + 1].sum(), rel=5e-3)
    assert (sr.fees.sum().item()) == pytest.approx(
        bt.costs["fees"][a : b + 1].sum() + bt.costs["spread"][a : b + 1].sum(), rel=1e-3
    )
    # training prices impact at the initial equity; the backtester at the equity of the day
    assert sr.impact.sum().item() == pytest.approx(bt.costs["impact"][a : b + 1].sum(), rel=0.05)
    assert abs(sr.funding.sum().item()) > 0, "the simulated perpetuals do pay funding"


def _oos_sharpe(cfg) -> float:
    return train(cfg, out_dir=None).metrics["policy"]["sharpe"]


def test_planted_signal_is_found_and_the_no_signal_control_is_not(make_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_signal = make_sim(signal_strength=0.3, training={"export_onnx": False})
    control = make_sim(signal_strength=0.0, training={"export_onnx": False})
    s, c = _oos_sharpe(with_signal), _oos_sharpe(control)
    assert s > 5.0, f"policy OOS Sharpe {s:.2f} on a strong planted signal"
    assert s > c + 5.0, f"signal {s:.2f} vs no-signal control {c:.2f}"


def test_training_twice_gives_identical_metrics(make_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make_sim(n_steps=1500, training={"epochs": 2, "export_onnx": False, "baselines": []})
    a, b = train(cfg), train(cfg)
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.oos_exposures, b.oos_exposures)


def test_ensemble_trains_members_and_exports_their_dispersion(make_sim, tmp_path, monkeypatch):
    import onnxruntime as ort

    monkeypatch.chdir(tmp_path)
    cfg = make_sim(
        n_steps=1200,
        model={"kind": "shared", "hidden": [4], "ensemble": 2},
        training={"epochs": 1, "baselines": []},
        risk={"dispersion_scale": 5.0},
    )
    result = train(cfg, out_dir=tmp_path / "out")
    fold = result.folds[0]
    assert len(fold.member_fits) == 2 and fold.policy.k == 2
    assert fold.rollout.dispersion is not None and (fold.rollout.dispersion > 0).any()
    assert (result.out_dir / "fold_0" / "policy" / "member_1" / "policy_spec.json").is_file()
    outputs = [o.name for o in ort.InferenceSession(str(result.paths["onnx"])).get_outputs()]
    assert outputs == ["target_exposure", "dispersion"]
    # the risk engine shrank positions where the members disagreed
    assert result.metrics["policy"].get("interventions.dispersion", 0) > 0
