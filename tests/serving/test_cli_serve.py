"""``dea serve`` end to end (replays through the live loop), and the Prometheus endpoint."""

from __future__ import annotations

import json
import urllib.request

from serving_helpers import build_onnx_policy, export_config_policy

from dea.cli.main import main as dea_main
from dea.timeutil import parse_timestamp
from serving.journal import Journal
from serving.observability import LoopMetrics


def _summary(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_dea_serve_replays_held_out_bars_after_a_warm_up(bars_config_path, bars_cfg, tmp_path, capsys):
    model = export_config_policy(bars_cfg, tmp_path / "m.onnx", seed=7)
    code = dea_main([
        "serve", "--config", str(bars_config_path), "--model", str(model), "--feed", "replay", "--exchange", "paper",
        "--journal", str(tmp_path / "j.sqlite"), "--start", "2024-02-26", "--log-format", "text",
    ])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out[captured.out.index("{"):])
    s = report["this_run"]
    # the replay reports its progress like every long step, in decisions (a line per 10 s at
    # most, so a replay of a few seconds writes only its last), and every decision is counted
    progress = [ln for ln in captured.err.splitlines() if ln.startswith("replay: ")]
    n = s["decisions"] + s["warmup_decisions"]  # a first run: no silent (restart) decisions
    assert progress and progress[-1].startswith(f"replay: {n}/{n} decisions, "), captured.err
    # the start line: a file model has no registry version, only the run that trained it
    start = next(ln for ln in captured.err.splitlines() if ln.startswith("serving model "))
    assert "from a file (trained in run " in start and " | feed replay | venue paper | " in start and "metrics off" in start
    assert s["warmup_decisions"] > 100 and s["decisions"] > 50 and s["fills"] > 0
    # the summary is in human units: ISO times, PnL %, costs, the model's digest
    assert s["first_decision"] == "2024-02-26T00:00:00Z" and report["account"]["first_decision"] == s["first_decision"]
    acc = report["account"]
    # rounded for reading: money to the cent, percentages to 0.01
    assert abs(acc["pnl_pct"] - 100 * (acc["equity"] / acc["initial_equity"] - 1)) <= 0.005 + 1e-9
    assert acc["equity"] == round(acc["equity"], 2) and acc["sharpe"] == round(acc["sharpe"], 3)
    assert report["costs"]["total"] > 0 and report["costs"]["total_bps"] > 0 and acc["sharpe"] is not None
    assert len(report["model"]["sha256"]) == 64
    decisions = Journal(tmp_path / "j.sqlite").decisions()
    assert decisions[0]["t_ns"] == parse_timestamp("2024-02-26") and decisions[0]["action"] == "model"


def test_dea_serve_replays_a_raw_capture_and_refuses_a_mismatched_model(tmp_path, shared_data, capsys):
    cfg_text = """
name: cli-ob
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
  missing: {policy: fill, fill_value: 0.0, indicator: false}
costs: {impact: {model: book}}
risk: {max_exposure: 0.5, stale: {max_age: 1h}}
serving: {journal_sync: normal, model_poll: null}
"""
    cfg_path = tmp_path / "ob.yaml"
    cfg_path.write_text(cfg_text)
    from dea.config import load_config
    from dea.features.featureset import FeatureSet

    cfg = load_config(cfg_path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    model = build_onnx_policy(tmp_path / "ob.onnx", fs.names, ["BTCUSDT"], spec_hash=fs.spec_hash, gain=3.0)
    folder = shared_data / "orderbook" / "binance_ws_2024"
    args = ["serve", "--config", str(cfg_path), "--model", str(model), "--feed", f"replay:{folder}",
            "--journal", str(tmp_path / "j.sqlite"), "--max-events", "15000", "--log-format", "text"]
    assert dea_main(args) == 0
    s = _summary(capsys)["this_run"]
    assert s["events"] == 15000 and s["decisions"] > 5  # the folder's BTCUSDT USDT-M capture was picked

    wrong = build_onnx_policy(tmp_path / "wrong.onnx", fs.names, ["ETHUSDT"], spec_hash=fs.spec_hash)
    args[4] = str(wrong)
    args[8] = str(tmp_path / "j2.sqlite")
    assert dea_main(args) == 2
    assert "instruments differ: position 0: model 'ETHUSDT' vs live 'BTCUSDT'" in capsys.readouterr().err


def test_metrics_endpoint_serves_the_loop_metrics():
    m = LoopMetrics(["BTCUSDT"])
    m.decision_latency.observe(7e-6)
    m.set_model("3", "models:/x@champion", "a" * 64)
    m.set_model("4", "models:/x@champion", "b" * 64)  # a swap replaces the info series
    m.set_vector(m.exposure, [0.25])
    server = m.serve(0)
    try:
        port = server.server_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'dea_decision_latency_seconds_bucket{le="1e-05"} 1.0' in text
    assert f'dea_model_info{{sha256="{"b" * 64}",source="models:/x@champion",version="4"}} 1.0' in text
    assert 'version="3"' not in text
    assert 'dea_exposure{instrument="BTCUSDT"} 0.25' in text
