"""Tuning building blocks without training: search space, storage URLs, pruning steps, best YAML."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml

from dea.config import load_config
from dea.errors import ConfigError
from training.tuning import METRICS_ATTR, best_config_yaml, spawn_safe, check_space, deflated_sharpe_of_best, pruning_callback, storage_url, suggest


def test_space_is_sampled_and_checked(tiny_config) -> None:
    cfg = load_config(tiny_config)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = suggest(study.ask(), cfg.tuning.space)
    assert set(params) == {"training.lr", "model.hidden.0"}
    assert 0.0005 <= params["training.lr"] <= 0.01 and 4 <= params["model.hidden.0"] <= 16
    trial_cfg = cfg.with_overrides(params)
    assert trial_cfg.training.lr == params["training.lr"] and trial_cfg.model.hidden == [params["model.hidden.0"]]
    check_space(cfg)
    with pytest.raises(ConfigError, match="tuning.space does not fit"):
        check_space(cfg.with_overrides({"tuning.space": {"training.lrr": {"type": "float", "low": 0.1, "high": 1}}}))
    with pytest.raises(ConfigError, match="empty"):
        check_space(cfg.with_overrides({"tuning.space": {}}))


def test_storage_urls(tmp_path) -> None:
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert storage_url("postgresql://u:p@h:5432/db", tmp_path) == "postgresql+psycopg://u:p@h:5432/db"
    assert storage_url("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_pruning_reports_along_the_walk_forward() -> None:
    """Fold 1's epoch 2 is step epochs*1 + 2 for the pruner; a trial far below the median is pruned."""
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    for value in (1.0, 1.2):  # completed trials with good curves
        t = study.ask()
        for step in range(6):
            t.report(value, step)
        study.tell(t, value)
    trial = study.ask()
    cb = pruning_callback(trial, "val_sharpe", step_offset=3)
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val_sharpe": torch.tensor(-2.0)})
    cb.is_ddp_backend = False
    with pytest.raises(optuna.TrialPruned):
        cb.on_validation_end(trainer, SimpleNamespace(current_epoch=2))
    assert list(study.trials[-1].intermediate_values) == [5]


def test_best_config_is_the_base_plus_the_best_values(tmp_path, repo_root) -> None:
    src = repo_root / "configs" / "demo.yaml"
    out = tmp_path / "elsewhere"
    out.mkdir()
    text = best_config_yaml(src, ["training.epochs=2"], {"training.lr": 0.004, "model.hidden.0": 12}, out_dir=out)
    (out / "best.yaml").write_text(text)
    base = load_config(src)
    cfg = load_config(out / "best.yaml")  # loads from another folder: relative paths were re-based
    assert cfg.training.lr == 0.004 and cfg.model.hidden[0] == 12
    # the --set of the tuning run is not baked in; the header names it
    assert cfg.training.epochs == base.training.epochs != 2
    assert "--set training.epochs=2" in text
    raw = yaml.safe_load(text)
    paths = [s["path"] for s in raw["data"]["sources"]] + [raw["data"]["store"]]
    assert not any(p.startswith("/") for p in paths), paths
    for mine, theirs in zip(cfg.data.sources, base.data.sources):
        assert cfg.resolve_path(mine.path) == base.resolve_path(theirs.path) and cfg.resolve_path(mine.path).is_file()
    assert cfg.resolve_path(cfg.data.store) == base.resolve_path(base.data.store)
    # written beside its base, the paths are exactly as the user wrote them
    beside = yaml.safe_load(best_config_yaml(src, [], {"training.lr": 0.004}))
    assert [s["path"] for s in beside["data"]["sources"]] == [s["path"] for s in yaml.safe_load(src.read_text())["data"]["sources"]]


@pytest.mark.parametrize("name", ["demo", "sim", "perps_5m"])
def test_every_bundled_config_has_a_space_that_fits(name, repo_root) -> None:
    """Values drawn anywhere in each bundled space make a valid config (not only the low end)."""
    cfg = load_config(repo_root / "configs" / f"{name}.yaml")
    assert len(cfg.tuning.space) >= 3 and cfg.tuning.study == name
    check_space(cfg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):
        params = suggest(study.ask(), cfg.tuning.space)
        trial_cfg = cfg.with_overrides(params)
        for key, value in params.items():
            node = trial_cfg.to_dict()
            for part in key.split("."):
                node = node[int(part)] if isinstance(node, list) else node[part]
            assert node == pytest.approx(value)
    for key, p in cfg.tuning.space.items():
        if p.log:
            assert p.high / p.low >= 10, f"{key}: a log range should span at least a decade"


def test_deflated_sharpe_falls_with_the_number_of_trials() -> None:
    """The same best Sharpe is less convincing when it is the best of more trials."""

    def trial(sharpe: float) -> SimpleNamespace:
        return SimpleNamespace(user_attrs={METRICS_ATTR: {"sharpe": sharpe, "periods_per_year": 8766.0, "n_periods": 2000,
                                                          "skew": 0.0, "kurtosis": 3.0}})

    trials = [trial(x) for x in (0.5, 1.0, 1.5, 2.0, 3.0)]
    best = trials[-1]
    d = [deflated_sharpe_of_best(trials, best, n) for n in (1, 5, 50, 500)]
    assert all(0.0 <= x <= 1.0 for x in d)
    assert d[0] > d[1] > d[2] > d[3]
    assert deflated_sharpe_of_best(trials, trial(-1.0), 5) < d[1] / 2


def test_ddp_becomes_ddp_spawn_inside_a_trial(tiny_config) -> None:
    cfg = load_config(tiny_config, ["training.trainer.strategy=ddp", "training.trainer.devices=2"])
    assert spawn_safe(cfg).training.trainer == {"strategy": "ddp_spawn", "devices": 2}
    plain = load_config(tiny_config)
    assert spawn_safe(plain) is plain
