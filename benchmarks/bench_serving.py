"""Serving benchmark: the live loop replaying the Binance USDT-M BTCUSDT capture with an MLP policy.

Figures (all from the same process and the same model):

- ``decision_p50/p99/p999_us``: features ready -> target exposure after the risk engine (ONNX
  policy through the bound runner + fallback checks + :class:`~dea.risk.engine.RiskEngine`),
  measured inside the loop on every decision of the replay (cold caches: ~70 events of parsing and
  book updates run between two decisions) and on 20,000 back-to-back decisions over the replay's
  own feature rows (``iso_`` figures, warm caches). Target p99 <= 15 µs.
- ``runner_*`` / ``risk_*``: the two parts of that path on their own; ``ort_alone_*``:
  onnxruntime's bound call alone (the runner's ``_run`` on inputs in place: the floor that
  decide's copies and the model's caps add to).
- ``event_to_decision_*``: the event that closes a decision interval arrives -> orders generated
  (panel row, order-book snapshot, streaming features, missing-data policy, model, risk, orders).
- ``torch_eager_*``: the same MLP's torch forward (``inference_mode``, batch 1) on the same
  inputs; ``onnx_vs_torch_p50`` is the speed-up of the runner (target >= 3x).
- ``replay_events_per_s``: raw capture -> parse -> book -> features -> decisions -> paper fills
  -> journal, end to end (``replay_events_per_cpu_s``: the same per CPU second, steadier on a
  shared machine); ``parse_events_per_cpu_s`` / ``loop_events_per_cpu_s``: its two halves, the
  capture parser alone and the loop on already parsed events; ``rss_mb_*``: resident memory at
  25/50/100 % of the replay (flat).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np

# the goals of issue 17 (python -m benchmarks shows each figure's against its goal)
GOALS = {
    "iso_decision_p99_us": ("<=", 15.0),
    "decision_p99_us": ("<=", 40.0),
    "event_to_decision_p99_us": ("<=", 100.0),
    "replay_events_per_s": (">=", 300_000),
    "onnx_vs_torch_p50": (">=", 3.0),
}

SHARED = Path(os.environ.get("DEA_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CAPTURE = SHARED / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"

CONFIG = """
name: bench-serving
data:
  instruments:
    - {symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001, min_notional: 5}
  sources:
    - {name: btc_book, kind: book, format: binance_ws, path: capture.gz, instrument: BTCUSDT}
  clock: {step: 250ms}
features:
  set:
    - {name: ob_spread_bps}
    - {name: ob_microprice_dev_bps}
    - {name: ob_imbalance, params: {level: 1}}
    - {name: ob_imbalance, params: {level: 5}}
    - {name: ob_imbalance, params: {level: 10}}
    - {name: ob_imbalance, params: {level: null, bps: 5}}
    - {name: ob_depth, params: {bps: 5}}
    - {name: ob_slope, params: {level: 10}}
    - {name: ob_rv, params: {horizon: 10s}}
    - {name: ob_rv, params: {horizon: 1m}}
    - {name: ob_ofi}
    - {name: ob_trade_flow}
    - {name: ob_trade_imbalance}
    - {name: ob_book_age_s}
  missing: {policy: fill, fill_value: 0.0, indicator: true}
costs: {impact: {model: book}, initial_equity: 1000000.0}
risk: {max_exposure: 0.5, max_gross: 1.0, no_trade_band: 0.02, stale: {max_age: 1h}}
serving: {journal_sync: "off", model_poll: null}
"""


def _pct(ns: np.ndarray, prefix: str) -> dict[str, float]:
    us = np.asarray(ns, dtype=np.float64) / 1e3
    return {
        f"{prefix}_p50_us": round(float(np.percentile(us, 50)), 2),
        f"{prefix}_p99_us": round(float(np.percentile(us, 99)), 2),
        f"{prefix}_p999_us": round(float(np.percentile(us, 99.9)), 2),
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _export_mlp(cfg, folder: Path):
    import torch

    from dea.features.featureset import FeatureSet
    from dea.features.missing import input_names
    from training.export import export_policy
    from training.policies import PolicySpec, build_policy

    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    names = input_names(fs.names, cfg.features.missing)
    torch.manual_seed(0)
    policy = build_policy(PolicySpec(kind="mlp", feature_names=tuple(names), instruments=tuple(cfg.data.symbols),
                                     caps=(0.5,), max_gross=1.0, hidden=(128, 128)))
    with torch.no_grad():  # untrained weights scaled up so the policy's targets move and it trades
        for p in policy.parameters():
            p.mul_(3.0)
    rng = np.random.default_rng(0)
    f = len(names)
    path = export_policy(
        policy, feature_names=names, feature_spec_hash=fs.spec_hash, instruments=cfg.data.symbols,
        exposure_caps=0.5, model_name="bench", model_version="1", train_window="a/b", config_hash="bench",
        data_fingerprint="bench", example_inputs=(np.zeros((2, f)), np.zeros((2, 1))),
        validation_inputs=(rng.normal(size=(256, f)), rng.uniform(-0.5, 0.5, size=(256, 1))), path=folder / "mlp.onnx",
    )
    return policy, path


def run() -> dict[str, float | int | str]:
    from dea.config import load_config
    from dea.risk.engine import RiskEngine
    from serving.exchanges.paper import PaperExchange
    from serving.feeds.replay import capture_events
    from serving.journal import Journal
    from serving.loop import LiveLoop
    from serving.runner import PolicyRunner

    if not CAPTURE.is_file():
        return {"skipped": f"capture not found: {CAPTURE}"}
    tmp = Path(tempfile.mkdtemp(prefix="dea-bench-serving-"))
    (tmp / "config.yaml").write_text(CONFIG)
    cfg = load_config(tmp / "config.yaml")
    policy, model_path = _export_mlp(cfg, tmp)

    # -- the replay through the live loop ------------------------------------------------------------
    n_total = sum(1 for _ in capture_events([(CAPTURE, 0)]))
    marks = {int(n_total * q): q for q in (0.25, 0.5, 1.0)}
    rss: dict[float, float] = {}
    feats: list[np.ndarray] = []
    loop = LiveLoop(cfg, PolicyRunner.from_path(model_path), PaperExchange(cfg.data.instruments, cfg.costs),
                    Journal(tmp / "journal.sqlite", synchronous="OFF"))
    loop.keep_latencies = True
    runner = loop.slot.current
    real_decide = runner.decide

    def recording_decide(x, e):  # keeps the replay's model inputs for the isolated figures
        feats.append(np.array(x, dtype=np.float32))
        return real_decide(x, e)

    runner.decide = recording_decide

    probe = [0.0, 0.0]  # wall and CPU seconds spent measuring memory, left out of the rates

    def events():
        for i, ev in enumerate(capture_events([(CAPTURE, 0)]), 1):
            yield ev
            if i in marks:
                w, c = time.perf_counter(), time.process_time()
                gc.collect()
                rss[marks[i]] = _rss_mb()
                probe[0] += time.perf_counter() - w
                probe[1] += time.process_time() - c

    t0, c0 = time.perf_counter(), time.process_time()
    summary = loop.run(events())
    wall, cpu = time.perf_counter() - t0 - probe[0], time.process_time() - c0 - probe[1]
    runner.decide = real_decide
    dec_ns, ev_ns = loop.latencies()
    out: dict[str, float | int | str] = {
        "events": summary.events,
        "decisions": summary.decisions,
        "fills": summary.fills,
        "replay_events_per_s": round(summary.events / wall),
        "replay_events_per_cpu_s": round(summary.events / cpu),
        "rss_probe_s": round(probe[0], 3),
    }
    out.update(_pct(dec_ns, "decision"))
    out.update(_pct(ev_ns, "event_to_decision"))

    # -- isolated decision path on the replay's feature rows ----------------------------------------
    X = np.stack(feats) if feats else np.zeros((1, runner.n_features), np.float32)
    risk = RiskEngine(cfg.risk, cfg.data.instruments)
    cur = np.zeros(1)
    prices = np.array([61_800.0])
    n = 20_000
    t_dec = np.empty(n, np.int64)
    t_run = np.empty(n, np.int64)
    t_risk = np.empty(n, np.int64)
    t_torch = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        x = X[i % len(X)]
        a = clock()
        target = runner.decide(x, cur)
        b = clock()
        risk.apply(1_000_000_000 * (i + 1), target[0].astype(np.float64), cur, 1e6, feature_age_ns=1e8, prices=prices)
        c = clock()
        t_run[i], t_risk[i], t_dec[i] = b - a, c - b, c - a
    t_ort = np.empty(n, np.int64)
    infer = runner._run  # onnxruntime's bound call alone, on inputs already in place (no copies, no caps)
    for i in range(n):
        a = clock()
        infer()
        t_ort[i] = clock() - a
    import torch

    torch.set_num_threads(1)
    policy.eval()
    xt = torch.from_numpy(X)
    et = torch.zeros(1, 1)
    with torch.inference_mode():
        for i in range(n):
            row = xt[i % len(X)].unsqueeze(0)
            a = clock()
            policy(row, et)
            t_torch[i] = clock() - a
    out.update(_pct(t_dec, "iso_decision"))
    # this machine is shared: a preemption (a ~4 ms scheduler slice) lands in ~1 % of samples and
    # owns the tail. The best of 10 windows of 2,000 decisions estimates the uncontended tail.
    windows = t_dec.reshape(10, -1) / 1e3
    out["iso_decision_p99_best_window_us"] = round(float(np.percentile(windows, 99, axis=1).min()), 2)
    out["iso_decision_p999_best_window_us"] = round(float(np.percentile(windows, 99.9, axis=1).min()), 2)
    out.update(_pct(t_run, "runner"))
    out.update(_pct(t_risk, "risk"))
    out.update(_pct(t_ort, "ort_alone"))
    out.update(_pct(t_torch, "torch_eager"))
    out["onnx_vs_torch_p50"] = round(float(np.median(t_torch) / np.median(t_run)), 2)
    out["onnx_vs_torch_p99"] = round(float(np.percentile(t_torch, 99) / np.percentile(t_run, 99)), 2)
    # the replay split in two: parsing the capture, and the loop on already parsed events
    # (CPU seconds, so the figures hold on a shared machine)
    c0 = time.process_time()
    parsed = list(capture_events([(CAPTURE, 0)]))
    out["parse_events_per_cpu_s"] = round(len(parsed) / (time.process_time() - c0))
    loop2 = LiveLoop(cfg, PolicyRunner.from_path(model_path), PaperExchange(cfg.data.instruments, cfg.costs),
                     Journal(tmp / "journal2.sqlite", synchronous="OFF"))
    c0 = time.process_time()
    s2 = loop2.run(iter(parsed))
    out["loop_events_per_cpu_s"] = round(s2.events / (time.process_time() - c0))
    del parsed
    for q in (0.25, 0.5, 1.0):
        out[f"rss_mb_at_{int(q * 100)}pct"] = round(rss.get(q, float("nan")), 1)
    out["rss_growth_50_to_100pct_mb"] = round(rss.get(1.0, 0) - rss.get(0.5, 0), 1)
    out["model"] = f"MLP {runner.n_features}->128->128->1 (onnxruntime intra=1 inter=1, IOBinding)"
    return out
