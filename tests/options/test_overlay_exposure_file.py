"""The overlay on a learned exposure: a `dea backtest` exposure CSV read point-in-time.

A hand-made hourly file gives exactly the run of the equivalent array (and a file of 1.0 the run
of ``exposure: 1.0``); a file that does not cover the window, or has a hole, is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dea.backtest.exposure_file import exposure_at
from dea.backtest.options_overlay import load_config, load_inputs, run_experiment, run_overlay
from dea.errors import ConfigError, DataError
from dea.timeutil import NS_PER_DAY, parse_timestamp

H = 3_600_000_000_000


def _write(path: Path, ts: np.ndarray, cols: dict[str, np.ndarray]) -> Path:
    """The layout `dea backtest` writes (pandas to_csv of UTC times, one column per instrument)."""
    import pandas as pd

    frame = pd.DataFrame({"time": pd.to_datetime(ts, unit="ns", utc=True), **cols})
    frame.to_csv(path, index=False)
    return path


def test_point_in_time_lookup(tmp_path: Path) -> None:
    t0 = parse_timestamp("2024-01-01T00:00:00Z")
    ts = t0 + H * np.arange(48)
    f = _write(tmp_path / "p_exposure.csv", ts, {"BTCUSDT": np.arange(48) / 100.0, "ETHUSDT": -np.ones(48)})
    clock = np.array([t0 + 8 * H, t0 + 8 * H + H // 2, t0 + 32 * H])
    # at 08:00 the 08:00 row; at 08:30 still the 08:00 row (09:00 is not decided yet)
    np.testing.assert_array_equal(exposure_at(f, "BTCUSDT", clock), [0.08, 0.08, 0.32])
    with pytest.raises(DataError, match=r"no column 'BTC'.*\['BTCUSDT', 'ETHUSDT'\]"):
        exposure_at(f, "BTC", clock)


def test_a_file_not_covering_the_window_is_refused(tmp_path: Path) -> None:
    t0 = parse_timestamp("2024-01-01T00:00:00Z")
    ts = t0 + H * np.arange(48)
    f = _write(tmp_path / "p_exposure.csv", ts, {"BTCUSDT": np.ones(48)})
    with pytest.raises(DataError, match=r"starts at 2024-01-01T00:00:00Z, after the overlay decision at 2023-12-31T08:00:00Z"):
        exposure_at(f, "BTCUSDT", np.array([t0 - 16 * H, t0 + 8 * H]))
    with pytest.raises(DataError, match=r"no row between 2024-01-02T23:00:00Z and the end of the file .* 2024-01-03T08:00:00Z"):
        exposure_at(f, "BTCUSDT", np.array([t0 + 8 * H, t0 + 56 * H]))
    hole = np.delete(ts, np.arange(20, 40))
    g = _write(tmp_path / "hole_exposure.csv", hole, {"BTCUSDT": np.ones(len(hole))})
    with pytest.raises(DataError, match=r"no row between 2024-01-01T19:00:00Z and 2024-01-02T16:00:00Z"):
        exposure_at(g, "BTCUSDT", np.array([t0 + 8 * H, t0 + 32 * H]))
    vals = np.ones(48)
    vals[32] = np.nan
    n = _write(tmp_path / "nan_exposure.csv", ts, {"BTCUSDT": vals})
    with pytest.raises(DataError, match=r"BTCUSDT at 2024-01-02T08:00:00Z .* is missing; a missing exposure is never taken as 0"):
        exposure_at(n, "BTCUSDT", np.array([t0 + 8 * H, t0 + 32 * H]))


def _short_config(repo_root: Path, tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((repo_root / "configs" / "btc_put_overlay.yaml").read_text())
    for key in ("prices", "funding"):
        raw[key]["path"] = str((repo_root / "configs" / raw[key]["path"]).resolve())
    raw["iv"]["dvol"] = str((repo_root / "configs" / raw["iv"]["dvol"]).resolve())
    raw["start"], raw["end"] = "2023-03-26", "2023-05-20"
    raw.update(changes)
    path = tmp_path / f"overlay_{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_exposure_file_equals_the_array_run(repo_root: Path, shared_data: Path, tmp_path: Path) -> None:
    # an hourly file over the window (and a day either side), in the folder of the config: its
    # 08:00 rows are the daily target, every other hour something else the overlay must not read
    t0 = parse_timestamp("2023-03-25T00:00:00Z")
    ts = t0 + H * np.arange(24 * 58)
    hours = (ts - t0) // H
    daily = 0.4 + 0.6 * ((hours // 24) % 3) / 2.0  # 0.4, 0.7, 1.0, 0.4, ...
    decoy = np.where(hours % 24 == 8, daily, 5.0)
    _write(tmp_path / "policy_exposure.csv", ts, {"BTCUSDT": decoy, "ETHUSDT": np.zeros(len(ts))})
    path = _short_config(repo_root, tmp_path, exposure="policy_exposure.csv", exposure_column="BTCUSDT")
    cfg = load_config(path)
    inp = load_inputs(cfg, path.parent)
    want = 0.4 + 0.6 * (((inp.clock - t0) // NS_PER_DAY) % 3) / 2.0
    np.testing.assert_array_equal(inp.exposure, want)
    _, res, alone = run_experiment(path)
    ref = run_overlay(inp.clock, inp.price, inp.iv, want, cfg.overlay, cfg.budgets, cfg.option_fees, underlying=cfg.underlying,
                      initial_equity=cfg.initial_equity, perp_taker_fee=cfg.perp_taker_fee, funding=inp.funding)
    np.testing.assert_array_equal(res.equity, ref.equity)
    np.testing.assert_array_equal(res.option_contracts, ref.option_contracts)
    assert res.events == ref.events and len(res.events) >= 2
    np.testing.assert_array_equal(res.perp_exposure, want)
    # a file of 1.0 is the constant run, exactly
    _write(tmp_path / "ones_exposure.csv", ts, {"BTCUSDT": np.ones(len(ts))})
    _, ones, _ = run_experiment(_short_config(repo_root, tmp_path, exposure="ones_exposure.csv", exposure_column="BTCUSDT"))
    _, const, _ = run_experiment(_short_config(repo_root, tmp_path, exposure=1.0))
    np.testing.assert_array_equal(ones.equity, const.equity)
    assert ones.events == const.events


def test_the_window_must_be_covered_and_the_column_named(repo_root: Path, shared_data: Path, tmp_path: Path) -> None:
    t0 = parse_timestamp("2023-03-25T00:00:00Z")
    ts = t0 + H * np.arange(24 * 30)  # ends 2023-04-23, the window runs to 2023-05-20
    _write(tmp_path / "short_exposure.csv", ts, {"BTCUSDT": np.ones(len(ts))})
    with pytest.raises(DataError, match=r"no row between 2023-04-23T23:00:00Z and the end of the file"):
        run_experiment(_short_config(repo_root, tmp_path, exposure="short_exposure.csv", exposure_column="BTCUSDT"))
    with pytest.raises(ConfigError, match="exposure_column must name its column"):
        load_config(_short_config(repo_root, tmp_path, exposure="short_exposure.csv"))
    with pytest.raises(ConfigError, match="exposure_column is used only with an exposure file"):
        load_config(_short_config(repo_root, tmp_path, exposure=1.0, exposure_column="BTCUSDT"))
    with pytest.raises(ConfigError, match="cannot read it"):
        run_experiment(_short_config(repo_root, tmp_path, exposure="missing_exposure.csv", exposure_column="BTCUSDT"))


def test_learned_config_documents_the_chain(repo_root: Path) -> None:
    """The second worked config loads, and names the commands (and the file) that produce its input."""
    path = repo_root / "configs" / "btc_put_overlay_learned.yaml"
    cfg = load_config(path)
    assert cfg.exposure == "../backtests/perps_5m/policy_exposure.csv" and cfg.exposure_column == "BTCUSDT"
    text = path.read_text()
    for cmd in ("dea train --config configs/perps_5m.yaml --out runs/perps_5m",
                "dea backtest --config configs/perps_5m.yaml --policy runs/perps_5m/policy.onnx",
                "--out backtests/perps_5m", "dea options-overlay configs/btc_put_overlay_learned.yaml"):
        assert cmd in text
