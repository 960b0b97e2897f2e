"""Lightning training on one fold: reproducibility, early stopping, best weights, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.fit import fit_fold
from training.rollout_eval import run_block
from training.splits import walk_forward_folds


def _state(policy) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in policy.state_dict().items()}


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_same_config_data_and_seed_give_identical_metrics_and_weights(synth, kind, make_config):
    cfg = make_config(model={"kind": kind, "hidden": [8]})
    fold = walk_forward_folds(synth.usable, cfg.training.splits, min_fit=16)[0]
    a = fit_fold(cfg, synth, fold)
    b = fit_fold(cfg, synth, fold)
    assert a.history == b.history
    assert a.best_epoch == b.best_epoch
    sa, sb = _state(a.policy), _state(b.policy)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    c = fit_fold(cfg, synth, fold, seed=123)
    assert any(not np.array_equal(sa[k], v) for k, v in _state(c.policy).items()), "another seed, other weights"


def test_scaler_is_fitted_on_the_fit_block_only(synth, make_config):
    cfg = make_config()
    fold = walk_forward_folds(synth.usable, cfg.training.splits, min_fit=16)[0]
    policy = fit_fold(cfg, synth, fold).policy
    fit = synth.features[fold.fit[0] : fold.fit[1]]
    np.testing.assert_allclose(policy.center.numpy(), np.median(fit, axis=0), rtol=1e-5)


def test_policy_learns_a_planted_signal_and_not_noise(make_config, make_data):
    cfg = make_config(training={"epochs": 6})
    sharpe = {}
    for strength in (0.4, 0.0):
        data = make_data(T=1500, strength=strength, seed=1)
        fold = walk_forward_folds(data.usable, cfg.training.splits, min_fit=16)[-1]
        policy = fit_fold(cfg, data, fold).policy
        w = run_block(policy, data, *fold.test).exposures
        r = np.nan_to_num(data.market.returns[fold.test[0] : fold.test[1]])
        dw = np.abs(np.diff(w, axis=0, prepend=0.0))
        net = (w * r).sum(1) - (data.market.fee * dw).sum(1) - (1e-4 * dw**1.5).sum(1)
        sharpe[strength] = net.mean() / net.std() * np.sqrt(365)
    assert sharpe[0.4] > 2.0, sharpe
    assert sharpe[0.4] > sharpe[0.0] + 2.0, sharpe


def test_best_validation_weights_are_kept_not_the_last(synth, make_config):
    cfg = make_config(training={"epochs": 4, "patience": 4, "monitor": "val_loss"})
    fold = walk_forward_folds(synth.usable, cfg.training.splits, min_fit=16)[0]
    fit = fit_fold(cfg, synth, fold)
    losses = [h["val_loss"] for h in fit.history]
    assert fit.best_epoch == int(np.argmin(losses))
    assert fit.best_val_loss == pytest.approx(min(losses))
    # the module holds the best epoch's weights: re-validating reproduces the best loss
    from training.lightning_module import PolicyLearner

    learner = PolicyLearner(
        fit.policy, fee=synth.market.fee, objective=cfg.objective, lr=0.01, weight_decay=0.0, periods_per_year=365.0
    )
    block = synth.block(*fold.val)
    batch = tuple(block[k].unsqueeze(0) for k in ("features", "returns", "impact", "funding", "mask"))
    with torch.no_grad():
        learner.log = lambda *a, **k: None
        loss = learner.validation_step(batch, 0)
    assert loss.item() == pytest.approx(fit.best_val_loss, rel=1e-5)


def test_smoothed_monitor_averages_validation_losses_over_epochs(synth, make_config):
    cfg = make_config(training={"epochs": 4, "patience": 4, "monitor": "val_loss_smooth"})
    fold = walk_forward_folds(synth.usable, cfg.training.splits, min_fit=16)[0]
    fit = fit_fold(cfg, synth, fold)
    raw = [h["val_loss"] for h in fit.history]
    smooth = [raw[0]]
    for v in raw[1:]:
        smooth.append(0.5 * smooth[-1] + 0.5 * v)
    np.testing.assert_allclose([h["val_loss_smooth"] for h in fit.history], smooth, rtol=1e-5)
    assert fit.best_epoch == int(np.argmin(smooth))
