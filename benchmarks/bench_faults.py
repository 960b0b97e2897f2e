"""Fault injection at larger counts: ``python -m benchmarks faults``.

Three families, each row: tried, guarded, errors, lost fills, duplicated orders, wrong trades
(lost, duplicated and wrong must be 0):

- market-data attacks (:data:`serving.faults.ATTACKS`) x ``DEA_BENCH_FAULT_SEEDS`` seeds (default
  10) through the live loop (:func:`serving.faults.run_market_data_attack`); errors = an exception
  out of the loop;
- tampered models (weights x50, negated, one flipped bit, spoofed version, flipped metadata byte)
  x seeds: guarded = refused at load with a :class:`~dea.errors.ModelError`; a wrong trade would
  be a tampered model that loaded;
- failover: ``DEA_BENCH_FAILOVER_KILLS`` (default 10) SIGKILLs of a primary ``dea serve`` at
  random points with a ``--standby`` running (:func:`serving.failover.failover_trial`), each
  compared with an uninterrupted run: lost / duplicated / extra fills, duplicated orders, and
  decisions that differ (wrong trades);
- failover against a venue that outlives the primary: the same kills with ``--exchange
  ccxt:binance`` on the local fake of Binance USDT-M (``tests/serving/fake_binance.py``, ccxt's
  real binance class over 127.0.0.1); duplicated orders also count order placements the venue
  received twice, lost fills also count venue fills missing from the journal.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("tried", "guarded", "errors", "lost_fills", "duplicated_orders", "wrong_trades")
GOALS = {f"{family}_{k}": ("<=", 0) for family in ("market_data", "tampered_models", "failover", "failover_ccxt")
         for k in ("lost_fills", "duplicated_orders", "wrong_trades")}


def _sim_config(tmp: Path, n_steps: int) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    for src in raw["data"]["sources"]:
        src["options"] = dict(src["options"], n_steps=n_steps)
    raw["data"]["store"] = str(tmp / "store")
    raw["model"]["base"] = {"kind": "none"}
    raw["model"]["adjust"] = {"vol_scaling": False}
    raw["serving"] = {"journal_sync": "normal", "model_poll": None}
    path = tmp / "sim.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _policy(path: Path, names: list[str], instruments: list[str], spec_hash: str, seed: int) -> Path:
    """A small tanh(W [features, exposure]) policy to the DEA contract, with its manifest."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from dea.model_artifact import write_manifest
    from dea.onnx_contract import PolicyMetadata

    rng = np.random.default_rng(seed)
    f, n = len(names), len(instruments)
    w = (rng.normal(size=(f + n, n)) * 1.5 / np.sqrt(f + n)).astype(np.float32)
    nodes = [helper.make_node("Clip", ["features", "lo", "hi"], ["z"]),
             helper.make_node("Concat", ["z", "exposure"], ["x"], axis=1),
             helper.make_node("MatMul", ["x", "w1"], ["o"]),
             helper.make_node("Tanh", ["o"], ["target_exposure"])]
    inits = [numpy_helper.from_array(w, "w1"), numpy_helper.from_array(np.array(-5.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(5.0, np.float32), "hi")]
    graph = helper.make_graph(
        nodes, "policy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", f]),
         helper.make_tensor_value_info("exposure", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("target_exposure", TensorProto.FLOAT, ["batch", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = PolicyMetadata(tuple(names), spec_hash, tuple(instruments), exposure_caps=1.0, model_name="bench-faults",
                          model_version=str(seed), train_window="2023-01-01/2024-01-01", config_hash="bench",
                          data_fingerprint="bench")
    helper.set_model_props(model, meta.to_props())
    onnx.save(model, str(path))
    write_manifest(path, model_name="bench-faults", model_version=str(seed))
    return path


def _config_policy(cfg_path: Path, path: Path, seed: int) -> Path:
    from dea.config import load_config
    from dea.features.featureset import FeatureSet
    from dea.features.missing import input_names

    cfg = load_config(cfg_path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    return _policy(path, input_names(fs.names, cfg.features.missing), list(cfg.data.symbols), fs.spec_hash, seed)


def _market_data(seeds: int) -> dict[str, int]:
    from serving.faults import ATTACKS, run_market_data_attack

    row = dict.fromkeys(FIELDS, 0)
    for kind in ATTACKS:
        for seed in range(seeds):
            r = run_market_data_attack(kind, seed)
            row["tried"] += r.tried
            row["guarded"] += r.guarded
            row["errors"] += r.errors
            row["wrong_trades"] += r.wrong_trades
    return row


def _tamper(path: Path, how: str, rng: np.random.Generator) -> None:
    import onnx
    from onnx import numpy_helper

    if how in ("weights_x50", "weights_negated"):
        m = onnx.load(str(path))
        init = next(i for i in m.graph.initializer if i.name == "w1")
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(w * 50 if how == "weights_x50" else -w, "w1"))
        onnx.save(m, str(path))
        return
    data = bytearray(path.read_bytes())
    if how == "bit_flip":
        w = numpy_helper.to_array(next(i for i in onnx.load(str(path)).graph.initializer if i.name == "w1"))
        at = bytes(data).index(w.tobytes()[:16]) + int(rng.integers(0, w.nbytes))
        data[at] ^= 1 << int(rng.integers(0, 8))
    elif how == "spoofed_version":
        at = bytes(data).index(b"bench-faults")
        data[at:at + 12] = b"bench-fault2"
    else:  # metadata_byte: invalid UTF-8 in a metadata string
        data[bytes(data).index(b"bench-faults")] = 0xFF
    path.write_bytes(bytes(data))


def _tampered_models(seeds: int, tmp: Path) -> dict[str, int]:
    from dea.errors import ModelError
    from dea.model_artifact import TrustPolicy
    from serving.runner import PolicyRunner

    row = dict.fromkeys(FIELDS, 0)
    rng = np.random.default_rng(0)
    names, instruments = [f"f{i}" for i in range(6)], ["A", "B"]
    for seed in range(seeds):
        for how in ("weights_x50", "weights_negated", "bit_flip", "spoofed_version", "metadata_byte"):
            path = _policy(tmp / f"m{seed}_{how}.onnx", names, instruments, "spec", seed)
            _tamper(path, how, rng)
            row["tried"] += 1
            try:
                PolicyRunner.load(str(path), trust=TrustPolicy())
            except ModelError:
                row["guarded"] += 1
            except Exception:  # anything but a clear refusal is an error
                row["errors"] += 1
            else:
                row["wrong_trades"] += 1  # a tampered model would have traded
    return row


def _failover(kills: int, tmp: Path) -> dict[str, int]:
    from serving.failover import failover_trial, reference_run

    cfg_path = _sim_config(tmp, 900)
    model = _config_policy(cfg_path, tmp / "sim.onnx", seed=4)
    ref = reference_run(cfg_path, model, tmp / "ref.sqlite")
    n = len(ref["decisions"])
    rng = np.random.default_rng(7)
    row = dict.fromkeys(FIELDS, 0)
    row["took_over"] = 0
    for k in range(kills):
        res = failover_trial(cfg_path, model, tmp / f"kill{k}.sqlite", ref, int(rng.integers(n // 10, (9 * n) // 10)))
        row["tried"] += 1
        row["took_over"] += int(res.took_over)
        row["guarded"] += int(res.error is None and res.took_over and res.killed_after >= 0)
        row["errors"] += int(res.error is not None)
        row["lost_fills"] += res.lost_fills
        row["duplicated_orders"] += res.duplicated_orders + res.duplicated_fills + res.extra_fills
        row["wrong_trades"] += res.wrong_decisions
    return row


def _failover_ccxt(kills: int, tmp: Path) -> dict[str, int]:
    from serving.failover import failover_trial, reference_run
    from tests.serving.fake_binance import FAKE_ENV, failover_venue

    tmp = tmp / "ccxt"
    tmp.mkdir()
    cfg_path, fake = failover_venue(tmp, ROOT, 500)
    row = dict.fromkeys(FIELDS, 0)
    row["took_over"] = 0
    try:
        model = _config_policy(cfg_path, tmp / "m.onnx", seed=4)
        ref = reference_run(cfg_path, model, tmp / "ref.sqlite", exchange="ccxt:binance", env=FAKE_ENV)
        ref_fills = len(fake.sim.fills)
        n = len(ref["decisions"])
        rng = np.random.default_rng(8)
        for k in range(kills):
            fake.reset()
            res = failover_trial(cfg_path, model, tmp / f"kill{k}.sqlite", ref, int(rng.integers(n // 10, (9 * n) // 10)),
                                 exchange="ccxt:binance", env=FAKE_ENV)
            row["tried"] += 1
            row["took_over"] += int(res.took_over)
            row["guarded"] += int(res.error is None and res.took_over and res.killed_after >= 0)
            row["errors"] += int(res.error is not None)
            row["lost_fills"] += res.lost_fills + max(0, ref_fills - len(fake.sim.fills))
            row["duplicated_orders"] += (res.duplicated_orders + res.duplicated_fills + res.extra_fills
                                         + fake.order_posts() - len(fake.ids))
            row["wrong_trades"] += res.wrong_decisions
    finally:
        fake.close()
    return row


def run() -> dict[str, float | int | str]:
    seeds = int(os.environ.get("DEA_BENCH_FAULT_SEEDS", "10"))
    kills = int(os.environ.get("DEA_BENCH_FAILOVER_KILLS", "10"))
    logging.disable(logging.ERROR)  # thousands of guard log lines are the point, not the output
    out: dict[str, float | int | str] = {}
    rows: dict[str, dict[str, int]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dea-bench-faults-") as tmp:
            t0 = time.perf_counter()
            rows["market_data"] = _market_data(seeds)
            out["market_data_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            rows["tampered_models"] = _tampered_models(seeds, Path(tmp))
            out["tampered_models_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            rows["failover"] = _failover(kills, Path(tmp))
            out["failover_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            rows["failover_ccxt"] = _failover_ccxt(kills, Path(tmp))
            out["failover_ccxt_s"] = round(time.perf_counter() - t0, 2)
    finally:
        logging.disable(logging.NOTSET)
    print("\n  family             " + "  ".join(f"{f:>17}" for f in FIELDS))
    for family, row in rows.items():
        print(f"  {family:<18} " + "  ".join(f"{row[f]:>17}" for f in FIELDS))
        for k, v in row.items():
            out[f"{family}_{k}"] = v
    return out
