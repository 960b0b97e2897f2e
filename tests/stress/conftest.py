"""Real base paths for the stress tests (Binance USDT-M perps, 5-minute closes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dea.stress import MarketPath, path_from_prices, read_freqtrade_close


@pytest.fixture(scope="session")
def perps_5m(shared_data):
    """(clock, close [T, 3]) of BTC, ETH, LTC on their common clock."""
    series = [read_freqtrade_close(shared_data / "perps_5m_15m" / f"{s}_USDT_USDT-5m-futures.feather") for s in ("BTC", "ETH", "LTC")]
    common = series[0][0]
    for c, _ in series[1:]:
        common = np.intersect1d(common, c)
    closes = np.column_stack([v[np.searchsorted(c, common)] for c, v in series])
    return common, closes


@pytest.fixture()
def base_path(perps_5m) -> MarketPath:
    """2,000 real 5-minute steps (about a week) from mid-2023, with an 8 h funding of 1 bp."""
    clock, close = perps_5m
    sl = slice(60_000, 62_000)
    c = clock[sl]
    settled = np.where((c % (8 * 3600 * 10**9)) == 0, 1e-4, 0.0)[:, None] * np.ones((1, 3))
    return path_from_prices(
        c, close[sl], ["BTC-PERP", "ETH-PERP", "LTC-PERP"], spread_bps=1.0, depth=5e6,
        funding_rate=np.full((c.size, 3), 1e-4), funding_settled=settled,
    )


STRESS_CONFIG = Path(__file__).with_name("stress_sim.yaml")


def constant_policy_onnx(cfg, path: Path, exposure: float) -> Path:
    """An ONNX policy that always asks for ``exposure`` in every instrument (answers known)."""
    import torch

    from dea.features.featureset import FeatureSet
    from dea.features.missing import input_names
    from training.export import export_policy

    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    names = input_names(fs.names, cfg.features.missing)
    n = len(cfg.data.symbols)

    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.full((1, n), float(exposure)))

        def forward(self, features, exposure_in):  # noqa: ANN001, ANN201
            keep = 0.0 * features.sum(dim=1, keepdim=True) + 0.0 * exposure_in.sum(dim=1, keepdim=True)
            return self.w + keep

    x = np.zeros((4, len(names)), np.float32)
    w = np.zeros((4, n), np.float32)
    export_policy(
        Constant(), feature_names=names, feature_spec_hash=fs.spec_hash, instruments=cfg.data.symbols,
        exposure_caps=1.0, model_name="constant", model_version="1", train_window=("2023-01-01", "2023-02-01"),
        config_hash="test", data_fingerprint="sim", example_inputs=(x, w), validation_inputs=(x, w), path=path,
    )
    return path


@pytest.fixture(scope="session")
def stress_setup(tmp_path_factory):
    """(config, constant-0.5 ONNX model, canonical tables) of the stress sim experiment."""
    import os

    from dea.config import load_config
    from serving.feeds.replay import load_tables

    where = tmp_path_factory.mktemp("stress")
    old = os.getcwd()
    os.chdir(where)
    try:
        cfg = load_config(STRESS_CONFIG)
        model = constant_policy_onnx(cfg, where / "constant.onnx", 0.5)
        tables = load_tables(cfg)
    finally:
        os.chdir(old)
    return cfg, model, tables
