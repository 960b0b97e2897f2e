"""Exposure-adjustment policies: the base allocation (one definition, numpy and torch), the
bounded adjustment that starts at the base, long-only spot, and nested selection.

Real data: the bundled demo panel (Coin Metrics BTC/ETH/LTC, daily)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dea.allocation.base import base_columns, base_from_features, base_weights, vol_unit
from dea.config import load_config
from dea.errors import ConfigError


@pytest.fixture(scope="module")
def demo(repo_root):
    from training.prepare import prepare_data

    cfg = load_config(repo_root / "configs" / "demo.yaml", ["model.ensemble=1"])
    return cfg, prepare_data(cfg)


def _policy(cfg, prepared, **model):
    from training.policies import build_policy, spec_from_config

    c = cfg.with_overrides({f"model.{k}": v for k, v in model.items()}) if model else cfg
    torch.manual_seed(0)
    return build_policy(spec_from_config(c, prepared.data.feature_names))


def test_base_kinds_by_hand() -> None:
    sigma = np.array([[0.01, 0.02, 0.0]])  # per-step vols; the third is unknown (0-filled)
    mom = np.array([[0.1, -0.2, 0.3]])
    lo, hi = np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    ppy = 365.0
    unit = 0.3 / (3 * sigma[0, :2] * math.sqrt(ppy))
    np.testing.assert_allclose(base_weights(np, "vol_target", sigma, None, lo, hi, target_vol=0.3, periods_per_year=ppy)[0],
                               [unit[0], unit[1], 0.0])
    iv = base_weights(np, "inverse_vol", sigma, None, lo, hi, target_vol=0.3, periods_per_year=ppy)[0]
    np.testing.assert_allclose(iv, [2 / 3, 1 / 3, 0.0])  # 1/sigma shares, gross = budget 1
    ew = base_weights(np, "equal_weight", sigma, None, lo, hi, target_vol=0.3, periods_per_year=ppy)[0]
    np.testing.assert_allclose(ew, [1 / 3, 1 / 3, 0.0])  # no weight where the risk is unknown
    ts = base_weights(np, "tsmom", sigma, mom, lo, hi, target_vol=0.3, periods_per_year=ppy)[0]
    np.testing.assert_allclose(ts, [unit[0], -unit[1], 0.0])
    long_only = base_weights(np, "tsmom", sigma, mom, np.zeros(3), hi, target_vol=0.3, periods_per_year=ppy)[0]
    np.testing.assert_allclose(long_only, [unit[0], 0.0, 0.0])
    capped = base_weights(np, "vol_target", sigma, None, lo, np.full(3, 0.2), target_vol=0.3, periods_per_year=ppy)[0]
    assert capped.max() <= 0.2
    with pytest.raises(ConfigError, match="unknown"):
        base_weights(np, "momentum", sigma, None, lo, hi, target_vol=0.3, periods_per_year=ppy)
    # hrp: budget x the HRP weight; a weight outside (0, 1] (0-filled, or a fill value) is unknown
    hrp = np.array([[0.6, 0.4, 0.0], [0.7, -1.0, 2.0]])
    np.testing.assert_allclose(base_weights(np, "hrp", sigma, None, lo, hi, target_vol=0.3, periods_per_year=ppy,
                                            hrp=hrp), [[0.6, 0.4, 0.0], [0.7, 0.0, 0.0]])
    np.testing.assert_allclose(base_weights(np, "hrp", sigma, None, lo, np.full(3, 1.0), target_vol=0.3,
                                            periods_per_year=ppy, budget=2.0, hrp=hrp[:1]), [[1.0, 0.8, 0.0]])
    with pytest.raises(ConfigError, match="hrp_weight"):
        base_weights(np, "hrp", sigma, None, lo, hi, target_vol=0.3, periods_per_year=ppy)


def test_base_columns_name_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"rvol_cc_30@ETH"):
        base_columns(["rvol_cc_30@BTC"], ["BTC", "ETH"], "vol_target", 30, 30)


def test_config_adds_the_base_features(repo_root) -> None:
    cfg = load_config(repo_root / "configs" / "perps_5m.yaml")
    assert any(f.name == "rvol_cc" and f.params == {"window": 720} for f in cfg.features.set)  # 30d of 1h rows
    ts = load_config(repo_root / "configs" / "demo.yaml", ["model.base.kind=tsmom", "model.base.momentum_lookback=60d"])
    assert any(f.name == "logret" and f.params == {"horizon": 60} for f in ts.features.set)
    hrp = load_config(repo_root / "configs" / "demo.yaml", ["model.base.kind=hrp", "model.base.hrp_lookback=120d",
                                                             "model.base.hrp_refit=7d"])
    assert any(f.name == "hrp_weight" and f.params == {"window": 120, "refit": "7d"} for f in hrp.features.set)
    with pytest.raises(ConfigError, match="hrp_weight_90_1d@ETH"):
        base_columns(["rvol_cc_30@BTC", "rvol_cc_30@ETH", "hrp_weight_90_1d@BTC"], ["BTC", "ETH"], "hrp", 30, 30, 90, "1d")
    bh = load_config(repo_root / "configs" / "demo.yaml", ["model.base.kind=buy_and_hold", "model.base.hold_rebalance=30d"])
    assert any(f.name == "hold_weight" and f.params == {"rebalance": "30d"} for f in bh.features.set)
    with pytest.raises(ConfigError, match="hold_weight_30d@ETH"):
        base_columns(["rvol_cc_30@BTC", "rvol_cc_30@ETH", "hold_weight_30d@BTC"], ["BTC", "ETH"], "buy_and_hold",
                     30, 30, hold_rebalance="30d")


@pytest.mark.parametrize("kind", ["vol_target", "inverse_vol", "equal_weight", "tsmom", "hrp", "buy_and_hold"])
def test_numpy_and_the_policy_graph_compute_the_same_base_on_real_data(demo, kind) -> None:
    """One definition: the numpy base (backtests, reports) equals the torch one inside the policy
    graph (training, the exported ONNX model) on the real demo features."""
    cfg, prepared = demo
    cfg = cfg.with_overrides({"model.base.kind": kind, "model.base.momentum_lookback": "30d"})
    from training.prepare import prepare_data

    prepared = prepare_data(cfg, panel=prepared.panel)
    policy = _policy(cfg, prepared, kind="base")
    X = np.nan_to_num(prepared.data.features)
    with torch.no_grad():
        graph = policy.base_exposure(torch.as_tensor(X)).numpy()
    vol_rows, mom_rows = cfg.base_rows
    cols = base_columns(prepared.data.feature_names, cfg.data.symbols, kind, vol_rows, mom_rows, cfg.hrp_rows,
                        cfg.model.base.hrp_refit, cfg.model.base.hold_rebalance)
    ref = base_from_features(kind, X, cols, policy.lower.numpy(), policy.caps.numpy(),
                             target_vol=cfg.model.base.target_vol, periods_per_year=policy.periods_per_year)
    np.testing.assert_allclose(graph, ref, rtol=1e-5, atol=1e-6)
    assert (ref[200:] != 0).any(axis=0).all()  # every coin gets weight once its volatility is known
    if kind in ("hrp", "buy_and_hold"):  # the weights sum to the budget once every coin takes part
        np.testing.assert_allclose(ref[200:].sum(axis=1), 1.0, atol=1e-9)


def test_a_policy_over_the_hrp_base_exports_to_onnx_and_computes_the_same_base(demo, tmp_path) -> None:
    """The exported graph reads the hrp_weight columns like sigma: onnxruntime == torch == numpy base."""
    import onnxruntime as ort

    from training.export import export_trained_policy

    cfg, prepared = demo
    cfg = cfg.with_overrides({"model.base.kind": "hrp"})
    from training.prepare import prepare_data

    prepared = prepare_data(cfg, panel=prepared.panel)
    policy = _policy(cfg, prepared, kind="mlp")
    assert any(n.startswith("hrp_weight_90_1d@") for n in policy.feature_names)
    policy.eval()
    X = np.nan_to_num(prepared.data.features[200:264]).astype(np.float32)
    e = np.zeros((X.shape[0], 3), np.float32)
    report = export_trained_policy(policy, feature_spec_hash="h", train_window=("a", "b"), config_hash="c",
                                   data_fingerprint="d", validation_inputs=(X, e), path=tmp_path / "hrp.onnx",
                                   model_name="t", model_version="1")
    sess = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"features": X, "exposure": e})[0]
    with torch.no_grad():
        want = policy(torch.as_tensor(X), torch.as_tensor(e)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    vol_rows, mom_rows = cfg.base_rows
    cols = base_columns(policy.feature_names, cfg.data.symbols, "hrp", vol_rows, mom_rows, cfg.hrp_rows, "1d")
    base = base_from_features("hrp", X, cols, policy.lower.numpy(), policy.caps.numpy(),
                              target_vol=cfg.model.base.target_vol, periods_per_year=policy.periods_per_year)
    # untrained: the head is zero, so the policy trades `rate` of the way to its HRP base
    np.testing.assert_allclose(got, policy.trade_rate.detach().numpy() * base, atol=1e-5)
    assert (base > 0.05).all()


@pytest.mark.parametrize("kind", ["mlp", "linear", "shared", "gru"])
def test_an_untrained_adjusted_policy_is_exactly_its_base(demo, kind) -> None:
    """The adjustment's output layer starts at zero: before any training the policy aims at its
    base, so early stopping at an untrained epoch means "the base", never a random bet."""
    cfg, prepared = demo
    policy = _policy(cfg, prepared, kind=kind)
    x = torch.as_tensor(np.nan_to_num(prepared.data.features[300:340]))
    with torch.no_grad():
        scores = torch.zeros(x.shape[0], policy.n_scores)
        np.testing.assert_allclose(policy.desired(scores, x).numpy(), policy.base_exposure(x).numpy(), atol=1e-7)
        if kind == "gru":
            h = policy.initial_state(x.shape[0])
            out, _ = policy(x, torch.zeros(x.shape[0], 3), h)
        else:
            out = policy(x, torch.zeros(x.shape[0], 3))
    rate = policy.trade_rate.detach().numpy()
    np.testing.assert_allclose(out.numpy(), rate * policy.base_exposure(x).numpy(), rtol=1e-5, atol=1e-7)


def test_spot_instruments_are_long_only_whatever_the_scores(demo) -> None:
    cfg, prepared = demo
    policy = _policy(cfg, prepared, kind="mlp")
    assert policy.spec.lower_bounds == (0.0, 0.0, 0.0)  # demo coins are spot
    x = torch.as_tensor(np.nan_to_num(prepared.data.features[300:400]))
    scores = torch.as_tensor(np.random.default_rng(0).normal(0, 10, (100, policy.n_scores)), dtype=torch.float32)
    with torch.no_grad():
        w = policy.desired(scores, x).numpy()
    assert w.min() >= 0.0 and w.max() > 0.0
    legacy = _policy(cfg, prepared, kind="mlp", **{"base.kind": "none", "adjust.vol_scaling": False})
    with torch.no_grad():
        assert legacy.desired(scores[:, :3], x).numpy().min() >= 0.0


def test_the_adjustment_is_bounded_in_volatility_units(demo) -> None:
    cfg, prepared = demo
    policy = _policy(cfg, prepared, kind="mlp")
    x = torch.as_tensor(np.nan_to_num(prepared.data.features[300:400]))
    big = torch.full((100, policy.n_scores), 50.0)
    with torch.no_grad():
        base = policy.base_exposure(x).numpy()
        unit = vol_unit(torch, x[:, policy.sigma_idx], 3, policy.target_vol, policy.periods_per_year).numpy()
        w = policy.desired(big, x).numpy()
    expected = np.minimum(base * 1.5 + 0.5 * unit, policy.caps.numpy())
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-7)


class _Fixed(torch.nn.Module):
    """A policy holding sign(feature i) * w on instrument i (feature i predicts instrument i)."""

    is_recurrent = False
    n_instruments = 2

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = w

    def step(self, features, exposure, state):  # noqa: ANN001, ANN201
        return (features[:, :2] - 1.0).sign() * self.w, None


def test_nested_selection_takes_the_best_validation_score_and_ties_go_to_the_first(synth) -> None:
    from training.candidates import Candidate, select
    from training.splits import Fold

    fold = Fold(index=0, fit=(0, 800), val=(900, 1200), test=(1300, 1499))

    cands = [Candidate(label=l, overrides={}, cfg=None) for l in ("flat", "signal", "signal-again")]  # type: ignore[arg-type]
    policies = {"flat": _Fixed(0.0), "signal": _Fixed(0.5), "signal-again": _Fixed(0.5)}
    sel, trained = select(cands, lambda c: (policies[c.label], []), synth, fold)
    assert sel.scores[0] == 0.0 and sel.scores[1] > 1.0  # the synthetic feature predicts the return
    assert sel.scores[1] == sel.scores[2] and sel.chosen == 1


def test_candidates_may_not_change_the_inputs(repo_root) -> None:
    from training.candidates import resolve_candidates

    cfg = load_config(repo_root / "configs" / "demo.yaml", ["training.candidates=[{data.clock.step: 1h}]"])
    with pytest.raises(ConfigError, match="not allowed"):
        resolve_candidates(cfg)
    # tsmom reads logret over 30 days = 720 hourly rows, which the perps feature set lacks
    cfg = load_config(repo_root / "configs" / "perps_5m.yaml", ["training.candidates=[{}, {model.base.kind: tsmom}]"])
    with pytest.raises(ConfigError, match="other features"):
        resolve_candidates(cfg)
    ok = resolve_candidates(load_config(repo_root / "configs" / "demo.yaml"))  # automatic candidates
    assert [c.label for c in ok] == ["configured", "kind=forecast",
                                     "kind=forecast,base.kind=none,vol_scaling=True,max_tilt=2.0", "kind=base"]
    assert [c.cfg.model.kind for c in ok] == ["mlp", "forecast", "forecast", "base"]
    # the forecast alone may hold what base plus adjustment could: max_tilt 0.5 + 1 + max_scale 0.5
    alone = ok[2].cfg.model
    assert alone.base.kind == "none" and alone.adjust.vol_scaling and alone.adjust.max_tilt == 2.0
    # the one-standard-error rule's order: base alone < forecast alone < forecast over the base < mlp over it
    assert [c.complexity for c in ok] == [3.5, 1.5, 1.0, 0.0]
    # a configured forecast policy with no base is not listed twice; no base candidate without a base
    plain = load_config(repo_root / "configs" / "demo.yaml", ["model.kind=forecast", "model.base.kind=none"])
    assert [c.label for c in resolve_candidates(plain)] == ["configured"]
    # a policy that is not volatility-sized has no volatility feature for the forecast candidate
    legacy = load_config(repo_root / "configs" / "demo.yaml", ["model.base.kind=none", "model.adjust.vol_scaling=false"])
    assert [c.label for c in resolve_candidates(legacy)] == ["configured"]


def test_pooled_forecast_shares_one_coefficient_per_stem_across_instruments() -> None:
    """Each instrument's target depends on its own 'sig' column with the same slope 0.2 and on a
    global column with slope -0.1; its 'noise' column is irrelevant. Pooled, the forecast layer
    puts one slope on every instrument's own column (and none on the others' columns); per
    instrument, each row is fitted separately on every column."""
    from training.forecast_policy import ridge_forecast

    rng = np.random.default_rng(0)
    names = ("sig@A", "sig@B", "sig@C", "noise@A", "noise@B", "noise@C", "macro")
    inst = ("A", "B", "C")
    X = rng.standard_normal((4000, 7))
    y = 0.2 * X[:, :3] - 0.1 * X[:, [6]] + 0.5 * rng.standard_normal((4000, 3))
    coef, inter, alpha = ridge_forecast(X, y, names, inst, "pooled")
    assert coef.shape == (3, 7) and inter.shape == (3,) and alpha > 0
    for i in range(3):
        assert coef[i, i] == pytest.approx(coef[0, 0]) and coef[i, 6] == pytest.approx(coef[0, 6])
        others = [j for j in range(3) if j != i]
        assert np.all(coef[i, others] == 0.0) and np.all(coef[i, [3 + j for j in others]] == 0.0)
    assert coef[0, 0] == pytest.approx(0.2, abs=0.02) and coef[0, 6] == pytest.approx(-0.1, abs=0.02)
    assert abs(coef[0, 3]) < 0.03
    sep, _, _ = ridge_forecast(X, y, names, inst, "per_instrument")
    assert np.count_nonzero(sep[0, [1, 2]]) == 2  # separate fits give weight to the other instruments' columns
    # one instrument, or only global columns: the pooled request falls back to the plain fit
    one, _, _ = ridge_forecast(X[:, :1], y[:, :1], ("sig@A",), ("A",), "pooled")
    assert one.shape == (1, 1) and one[0, 0] == pytest.approx(0.2, abs=0.03)
    glob, _, _ = ridge_forecast(X[:, 6:], y, ("macro",), inst, "pooled")
    assert glob.shape == (3, 1) and np.allclose(glob[:, 0], -0.1, atol=0.04)


def test_one_standard_error_rule_prefers_the_simpler_candidate_unless_clearly_beaten(make_data) -> None:
    from training.candidates import Candidate, select, sharpe_difference_se
    from training.splits import Fold

    fold = Fold(index=0, fit=(0, 800), val=(900, 1200), test=(1300, 1499))
    cands = [Candidate(label="flat", overrides={}, cfg=None, complexity=0),  # type: ignore[arg-type]
             Candidate(label="deep", overrides={}, cfg=None, complexity=3),  # type: ignore[arg-type]
             Candidate(label="forecast", overrides={}, cfg=None, complexity=1)]  # type: ignore[arg-type]
    pols = {"flat": _Fixed(0.0), "deep": _Fixed(0.5), "forecast": _Fixed(0.5)}
    strong = make_data(strength=0.3)
    sel, _ = select(cands, lambda c: (pols[c.label], []), strong, fold, rule="one_se")
    # a clear signal (Sharpe ~4 against a standard error ~1.1 on 300 daily rows) beats flat; of the two
    # identical signal candidates (difference 0, standard error 0) the less complex one is taken
    assert sel.scores[1] == sel.scores[2] > sel.scores[0] + sel.std_errors[0] and sel.chosen == 2
    assert select(cands, lambda c: (pols[c.label], []), strong, fold, rule="best")[0].chosen == 1
    weak = make_data(strength=0.02, seed=2)  # validation Sharpe 0.96 after costs: noise level
    sel, _ = select(cands, lambda c: (pols[c.label], []), weak, fold, rule="one_se")
    # a noise-level edge: the best score is the signal's, but flat is within one standard error of it
    assert max(sel.scores) > sel.scores[0] >= max(sel.scores) - sel.std_errors[0] and sel.chosen == 0
    # the flat candidate's standard error is that of the signal's Sharpe alone: sqrt(periods / n)
    assert sel.std_errors[0] == pytest.approx(math.sqrt(365.0 / 300), rel=0.01)
    assert sharpe_difference_se(np.array([1.0, np.nan]), np.array([1.0, 2.0]), 1.0) == math.inf
    with pytest.raises(ConfigError, match="selection_rule"):
        select(cands, lambda c: (pols[c.label], []), weak, fold, rule="first")


def test_selection_doc_examples_run() -> None:
    import doctest

    import training.candidates

    assert doctest.testmod(training.candidates).failed == 0


# ----------------------------------------------------------------------------- the ridge base
def test_ridge_base_by_hand() -> None:
    sigma = np.array([[0.01, 0.02, 0.0]])
    lo, hi = np.array([-1.0, 0.0, -1.0]), np.ones(3)
    unit = 0.3 / (3 * sigma[0, :2] * math.sqrt(365.0))
    fc = np.array([[0.5, -2.0, 3.0]])
    w = base_weights(np, "ridge", sigma, None, lo, hi, target_vol=0.3, periods_per_year=365.0, budget=2.0, forecast=fc)
    # budget x tanh(forecast) x unit; long-only clips the short; unknown volatility -> 0
    np.testing.assert_allclose(w[0], [2.0 * math.tanh(0.5) * unit[0], 0.0, 0.0])
    with pytest.raises(ConfigError, match="fit_ridge_base"):
        base_weights(np, "ridge", sigma, None, lo, hi, target_vol=0.3, periods_per_year=365.0)


@pytest.fixture(scope="module")
def ridge_demo(demo):
    from training.prepare import prepare_data
    from training.splits import Fold

    cfg, prepared = demo
    cfg = cfg.with_overrides({"model.base.kind": "ridge"})
    prepared = prepare_data(cfg, panel=prepared.panel)
    T = len(prepared.data.features)
    fold = Fold(index=0, fit=(0, int(T * 0.6)), val=(int(T * 0.6) + 30, int(T * 0.8)), test=(int(T * 0.8) + 5, T))
    return cfg, prepared, fold


def test_the_ridge_base_is_the_stage_one_forecast_fitted_on_the_fit_block_and_frozen(ridge_demo) -> None:
    """The ridge base equals the two-stage forecast policy's aim (same closed-form fit, sized in
    vol units) and is the same after the adjustment has trained over it: buffers, not parameters."""
    from training.fit import fit_fold, fold_policy
    from training.forecast_policy import fit_forecast_policy

    cfg, prepared, fold = ridge_demo
    data = prepared.data
    policy = fold_policy(cfg, data, fold)
    assert policy.ridge_weight.abs().sum() > 0 and not policy.ridge_weight.requires_grad
    assert all(p.data_ptr() != policy.ridge_weight.data_ptr() for p in policy.parameters())
    x = torch.as_tensor(np.nan_to_num(data.features[fold.test[0]:]))
    # the forecast policy alone (no base, vol-sized tilt of at most budget = 1 unit), fitted the same way
    alone_cfg = cfg.with_overrides({"model.kind": "forecast", "model.base.kind": "none",
                                    "model.adjust.vol_scaling": True, "model.adjust.max_tilt": 1.0})
    alone = fold_policy(alone_cfg, data, fold)
    fit_forecast_policy(alone, alone_cfg, data, fold)
    with torch.no_grad():
        base = policy.base_exposure(x).numpy()
        aim = alone.desired(alone.head(alone.scale_features(x)), x).numpy()
    np.testing.assert_allclose(base, aim, atol=1e-6)
    assert (np.abs(base) > 1e-4).mean() > 0.3  # the forecast takes positions
    # train an adjustment over it: the base does not move
    short = cfg.with_overrides({"model.kind": "linear", "training.epochs": 1, "training.min_epochs": 1})
    fitted = fit_fold(short, data, fold, seed=0).policy
    np.testing.assert_array_equal(fitted.ridge_weight.numpy(), policy.ridge_weight.numpy())
    np.testing.assert_array_equal(fitted.ridge_bias.numpy(), policy.ridge_bias.numpy())


def test_ridge_base_graph_equals_numpy_and_exports_to_onnx(ridge_demo, tmp_path) -> None:
    import onnxruntime as ort

    from dea.allocation.base import linear_forecast
    from training.export import export_trained_policy
    from training.fit import fold_policy
    from training.policies import load_policy, save_policy

    cfg, prepared, fold = ridge_demo
    data = prepared.data
    policy = fold_policy(cfg.with_overrides({"model.kind": "mlp"}), data, fold)
    policy.eval()
    X = np.nan_to_num(data.features[fold.test[0]:]).astype(np.float32)
    fc = linear_forecast(X, policy.center.numpy(), policy.scale.numpy(), policy.clip, policy.ridge_weight.numpy(),
                         policy.ridge_bias.numpy())
    vol_rows, mom_rows = cfg.base_rows
    cols = base_columns(policy.feature_names, cfg.data.symbols, "ridge", vol_rows, mom_rows)
    ref = base_from_features("ridge", X, cols, policy.lower.numpy(), policy.caps.numpy(),
                             target_vol=cfg.model.base.target_vol, periods_per_year=policy.periods_per_year, forecast=fc)
    with torch.no_grad():
        np.testing.assert_allclose(policy.base_exposure(torch.as_tensor(X)).numpy(), ref, rtol=1e-4, atol=1e-6)
    e = np.zeros((X.shape[0], 3), np.float32)
    report = export_trained_policy(policy, feature_spec_hash="h", train_window=("a", "b"), config_hash="c",
                                   data_fingerprint="d", validation_inputs=(X, e), path=tmp_path / "ridge.onnx",
                                   model_name="t", model_version="1")
    got = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"]).run(
        None, {"features": X, "exposure": e})[0]
    np.testing.assert_allclose(got, policy.trade_rate.detach().numpy() * ref, atol=1e-5)  # untrained head: the base
    # saved and reloaded, the frozen forecast travels with the weights
    again = load_policy(save_policy(policy, tmp_path / "saved")["spec"].parent)
    np.testing.assert_array_equal(again.ridge_weight.numpy(), policy.ridge_weight.numpy())
