"""Serving imports and runs with numpy + onnxruntime: a fresh interpreter imports every serving
module and replays the recorded Binance capture through the live loop (order-book features,
ONNX policy, risk engine, paper fills, journal, metrics); torch, lightning, pandas, MLflow,
Optuna, scikit-learn, numba and onnx never enter ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from serving_helpers import build_onnx_policy, write_config

from dea.config import load_config
from dea.features.featureset import FeatureSet
from dea.features.missing import input_names

FORBIDDEN = ("torch", "lightning", "pandas", "mlflow", "optuna", "sklearn", "numba", "onnx", "scipy")

CONFIG = """
name: purity
data:
  instruments:
    - {symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001}
  sources:
    - {name: btc_book, kind: book, format: binance_ws, path: capture.gz, instrument: BTCUSDT}
  clock: {step: 1s}
features:
  set:
    - {name: ob_spread_bps}
    - {name: ob_imbalance, params: {level: 5}}
    - {name: ob_ofi}
    - {name: ob_rv, params: {horizon: 10s}}
    - {name: ob_trade_imbalance}
  missing: {policy: fill, fill_value: 0.0, indicator: true}
costs: {impact: {model: book}, initial_equity: 100000.0}
risk: {max_exposure: 0.5, no_trade_band: 0.05, stale: {max_age: 1h}}
serving: {journal_sync: normal}
"""

CHILD = """
import importlib, json, pkgutil, sys
import serving
for m in pkgutil.walk_packages(serving.__path__, "serving."):
    importlib.import_module(m.name)
from dea.config import load_config
from serving.exchanges.paper import PaperExchange
from serving.feeds.replay import capture_events
from serving.journal import Journal
from serving.loop import LiveLoop
from serving.runner import PolicyRunner
cfg = load_config({config!r})
loop = LiveLoop(cfg, PolicyRunner.load({model!r}), PaperExchange(cfg.data.instruments, cfg.costs),
                Journal({journal!r}, synchronous="NORMAL"))
summary = loop.run(capture_events([({capture!r}, 0)]), max_events=20000)
print(json.dumps({{"decisions": summary.decisions, "fills": summary.fills, "events": summary.events,
                  "loaded": sorted(m for m in {forbidden!r} if m in sys.modules),
                  "metrics": "dea_decision_latency_seconds_count" in loop.metrics.render().decode()}}))
"""


def test_serving_runs_a_replay_without_heavy_libraries(tmp_path, repo_root, shared_data):
    cfg_path = write_config(tmp_path, CONFIG)
    cfg = load_config(cfg_path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    model = build_onnx_policy(tmp_path / "m.onnx", input_names(fs.names, cfg.features.missing), cfg.data.symbols,
                              spec_hash=fs.spec_hash, gain=3.0)
    code = textwrap.dedent(CHILD).format(
        config=str(cfg_path), model=str(model), journal=str(tmp_path / "j.sqlite"),
        capture=str(shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"),
        forbidden=FORBIDDEN,
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["events"] == 20000 and out["decisions"] > 10 and out["fills"] > 0
    assert out["metrics"]
