"""Fixtures for the serving tests: real-data configs and small exported policies.

Policies are small ONNX graphs written with ``onnx.helper`` to the same contract as a training
export (the export itself, with torch, is tested in ``tests/export``): building them takes
milliseconds and imports no torch, so the serving tests stay fast and the import-purity test can
build one too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dea.config import load_config
from dea.config.experiment import ExperimentConfig

BARS_CONFIG = """
name: serving-bars
data:
  instruments:
    - {symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001, min_notional: 5}
    - {symbol: ETHUSDT, venue: binance, kind: perpetual, base: ETH, quote: USDT, funding: none, lot_size: 0.001, min_notional: 5}
  sources:
    - {name: btc, kind: bars, format: freqtrade, path: "{shared}/perps_5m_15m/BTC_USDT_USDT-5m-futures.feather", instrument: BTCUSDT, step: 5m}
    - {name: eth, kind: bars, format: freqtrade, path: "{shared}/perps_5m_15m/ETH_USDT_USDT-5m-futures.feather", instrument: ETHUSDT, step: 5m}
    - {name: fng, kind: exogenous, format: fear_greed, path: "{shared}/sentiment/fear_greed_index_2018_2025.csv", step: 1d, publication_lag: 1h}
    - {name: dgs10, kind: exogenous, format: fred, path: "{shared}/macro/DGS10.csv", step: 1d, publication_lag: 1d, max_staleness: 5d}
  clock: {step: 1h, start: "2024-02-20", end: "2024-03-02"}
# a plain policy contract: these tests hand-build ONNX graphs over exactly the features below
model: {base: {kind: none}, adjust: {vol_scaling: false}}
features:
  set:
    - {name: logret, params: {horizon: 1}}
    - {name: logret, params: {horizon: 12}}
    - {name: rvol_cc, params: {window: 12}}
    - {name: volume_z, params: {window: 24}}
    - {name: change, series: DGS10, params: {horizon: 5}}
  missing: {policy: fill, fill_value: 0.0, indicator: true}
costs: {fee_side: taker, half_spread_bps: 1.0, impact: {model: sqrt, k: 0.5}, initial_equity: 100000.0}
risk: {max_exposure: 1.0, max_gross: 1.5, max_net: 1.0, max_leverage: 2.0, no_trade_band: 0.01, stale: {max_age: 7d}}
serving: {journal_sync: normal, model_poll: null}
"""


def write_config(folder: Path, text: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def bars_config_path(tmp_path_factory, shared_data) -> Path:
    return write_config(tmp_path_factory.mktemp("bars"), BARS_CONFIG.replace("{shared}", str(shared_data)))


@pytest.fixture(scope="session")
def bars_cfg(bars_config_path) -> ExperimentConfig:
    return load_config(bars_config_path)


def sim_config(tmp_path: Path, repo_root: Path, n_steps: int = 300, **risk) -> ExperimentConfig:
    """The repository's simulated perpetuals (funding, mark, exogenous), shortened."""
    raw = yaml.safe_load((repo_root / "configs" / "sim.yaml").read_text())
    for src in raw["data"]["sources"]:
        src["options"] = dict(src["options"], n_steps=n_steps)
    raw["data"]["store"] = str(tmp_path / "store")
    # a few hundred steps: too short for the bundled base's volatility window; a plain policy
    raw["model"]["base"] = {"kind": "none"}
    raw["model"]["adjust"] = {"vol_scaling": False}
    raw["serving"] = {"journal_sync": "normal", "model_poll": None}
    raw.setdefault("risk", {}).update(risk)
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)


def build_onnx_policy(
    path: Path,
    feature_names: list[str] | tuple[str, ...],
    instruments: list[str] | tuple[str, ...],
    *,
    spec_hash: str = "spec",
    seed: int = 0,
    hidden: int = 16,
    gain: float = 1.5,
    recurrent: bool = False,
    dispersion: bool = False,
    version: str = "1",
    nan_above: float | None = None,
    manifest: bool = True,
    caps: float | dict[str, float] | None = 1.0,
    constant: float | None = None,
) -> Path:
    """A small policy graph written with ``onnx.helper`` (no torch: fast, and usable where torch
    must not be imported). Same contract as an export: raw ``features`` scaled inside the graph,
    ``exposure`` input, ``target_exposure = tanh(...)``, optional ``state_in/state_out`` and
    ``dispersion``, ``dea.*`` metadata. ``nan_above``: the target is NaN when the first feature
    exceeds it (a model that fails on some inputs). ``constant``: the target is that exposure
    for every instrument, whatever the inputs (buy and hold at a fixed exposure)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from dea.onnx_contract import PolicyMetadata

    rng = np.random.default_rng(seed)
    f, n = len(feature_names), len(instruments)
    width = f + n + (hidden if recurrent else 0)
    inits = {
        "center": np.zeros(f, np.float32),
        "scale": np.ones(f, np.float32),
        "w1": (rng.normal(size=(width, hidden)) * gain / np.sqrt(width)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.normal(size=(hidden, n)) * gain / np.sqrt(hidden)).astype(np.float32),
        "b2": np.zeros(n, np.float32),
        "clip_lo": np.array(-5.0, np.float32),
        "clip_hi": np.array(5.0, np.float32),
        "half": np.array(0.5, np.float32),
    }
    nodes = [
        helper.make_node("Sub", ["features", "center"], ["centered"]),
        helper.make_node("Div", ["centered", "scale"], ["z0"]),
        helper.make_node("Clip", ["z0", "clip_lo", "clip_hi"], ["z"]),
    ]
    cat = ["z", "exposure"] + (["state_in"] if recurrent else [])
    nodes += [
        helper.make_node("Concat", cat, ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Tanh", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o1"]),
    ]
    target_src = "o2"
    nodes.append(helper.make_node("Tanh", ["o1"], ["o2"]))
    if nan_above is not None:
        inits["thr"] = np.array([nan_above], np.float32)
        inits["nan"] = np.full(n, np.nan, np.float32)
        inits["start"], inits["end"], inits["axes"] = (np.array([0], np.int64), np.array([1], np.int64),
                                                       np.array([1], np.int64))
        nodes += [
            helper.make_node("Slice", ["features", "start", "end", "axes"], ["f0"]),
            helper.make_node("Greater", ["f0", "thr"], ["bad"]),
            helper.make_node("Where", ["bad", "nan", "o2"], ["o3"]),
        ]
        target_src = "o3"
    if constant is not None:
        inits["zero_n"] = np.zeros(n, np.float32)
        inits["const_n"] = np.full(n, constant, np.float32)
        nodes += [helper.make_node("Mul", [target_src, "zero_n"], ["oz"]), helper.make_node("Add", ["oz", "const_n"], ["oc"])]
        target_src = "oc"
    nodes.append(helper.make_node("Identity", [target_src], ["target_exposure"]))
    outputs = [helper.make_tensor_value_info("target_exposure", TensorProto.FLOAT, ["batch", n])]
    inputs = [
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", f]),
        helper.make_tensor_value_info("exposure", TensorProto.FLOAT, ["batch", n]),
    ]
    if recurrent:
        inputs.append(helper.make_tensor_value_info("state_in", TensorProto.FLOAT, ["batch", hidden]))
        nodes.append(helper.make_node("Identity", ["h"], ["state_out"]))
        outputs.append(helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["batch", hidden]))
    if dispersion:
        nodes += [helper.make_node("Abs", ["o1"], ["a1"]), helper.make_node("Mul", ["a1", "half"], ["dispersion"])]
        outputs.append(helper.make_tensor_value_info("dispersion", TensorProto.FLOAT, ["batch", n]))
    graph = helper.make_graph(nodes, "policy", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = PolicyMetadata(
        feature_names=tuple(feature_names), feature_spec_hash=spec_hash, instruments=tuple(instruments),
        exposure_caps=caps, model_name="dea-test", model_version=version, train_window="2023-01-01/2024-01-01",
        config_hash="test", data_fingerprint="test",
    )
    helper.set_model_props(model, meta.to_props())
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    if manifest:  # what a DEA export writes beside the file: serving refuses a model without it
        from dea.model_artifact import write_manifest

        write_manifest(path, model_name="dea-test", model_version=version)
    return path


def export_config_policy(cfg: ExperimentConfig, path: Path, *, seed: int = 0, **kwargs) -> Path:
    """A small policy graph for ``cfg``'s live feature spec (names incl. missing indicators)."""
    from dea.features.featureset import FeatureSet
    from dea.features.missing import input_names

    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    names = input_names(fs.names, cfg.features.missing)
    return build_onnx_policy(path, names, cfg.data.symbols, spec_hash=fs.spec_hash, seed=seed, **kwargs)


@pytest.fixture(scope="session")
def bars_model(bars_cfg, tmp_path_factory) -> Path:
    return export_config_policy(bars_cfg, tmp_path_factory.mktemp("model") / "bars.onnx")


@pytest.fixture(scope="session")
def bars_tables(bars_cfg):
    """The real tables, cut to rows from 10 days before the clock (keeps replays short; the
    backtest side of every comparison gets the same cut tables)."""
    import pyarrow.compute as pc

    from dea.timeutil import parse_timestamp
    from serving.feeds.replay import load_tables

    since = parse_timestamp("2024-02-10")
    return {k: t.filter(pc.greater_equal(t["ts_event"], since)) for k, t in load_tables(bars_cfg).items()}
