"""The default scenario library on a trained policy: every scenario replays through the live
loop without a single hard-limit breach, and the exported model carries its drift reference."""

from __future__ import annotations

from dea.config.stress import default_scenarios
from dea.drift import load_reference
from serving.stress import run_stress


def test_default_library_on_a_trained_policy(stress_setup, tmp_path, monkeypatch) -> None:
    from training.prepare import prepare_data
    from training.retrain import export_challenger, split_windows, train_challenger

    cfg, _, tables = stress_setup
    monkeypatch.chdir(tmp_path)
    cfg = cfg.with_overrides({"retrain.eval_window": "10d"})
    prepared = prepare_data(cfg)
    win = split_windows(cfg, prepared.data.market.clock, prepared.data.usable)
    model = export_challenger(cfg, train_challenger(cfg, prepared, win), prepared, win, tmp_path, "")
    assert load_reference(model).names == list(prepared.data.feature_names)
    run = run_stress(cfg, model, scenarios=default_scenarios(), tables=tables)
    assert [r.scenario for r in run.results] == ["baseline"] + [s.label for s in default_scenarios()]
    for r in run.results:
        assert r.breaches == 0, (r.scenario, r.breach_detail)
        assert r.steps > 100
