"""Feature-engine benchmark: ``python -m benchmarks features``.

Figures (one process, this machine):
- panel assembly of the Binance USDT-M BTC/ETH/LTC 5-minute perpetuals (~144k bars each, full
  history) with Fear & Greed joined;
- batch build of a >= 40-column feature set over that panel (target <= 2 s; the first call also
  loads/compiles the numba kernels and is reported separately);
- streaming: microseconds per decision-time row (the compiled execution serving uses, and the
  generic per-feature execution it is tested against), and traced memory after 5k and 20k rows
  (flat means the per-row state does not grow with the replay);
- the order-book engineer's ``benchmarks.bench_book.run()`` figures, prefixed ``book.``, when
  that module exists.
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

SYMBOLS = ("BTC", "ETH", "LTC")


def shared_data() -> Path:
    return Path(os.environ.get("DEA_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def feature_items() -> list[dict[str, Any]]:
    return [
        {"name": "logret", "params": {"horizon": 1}},
        {"name": "logret", "params": {"horizon": 12}},
        {"name": "logret", "params": {"horizon": 288}},
        {"name": "rvol_cc", "params": {"window": 48}},
        {"name": "rvol_cc", "params": {"window": 288}},
        {"name": "rvol_parkinson", "params": {"window": 48}},
        {"name": "rvol_gk", "params": {"window": 48}},
        {"name": "volume_z", "params": {"window": 288}},
        {"name": "ewma_trend", "params": {"fast": 12, "slow": 96}},
        {"name": "ewma_mom", "params": {"span": 48}},
        {"name": "dist_high", "params": {"window": 288, "use": "high"}},
        {"name": "corr", "params": {"window": 288}, "instruments": ["ETH", "LTC"]},
        {"name": "beta", "params": {"window": 288}, "instruments": ["ETH", "LTC"]},
        {"name": "rel_strength", "params": {"horizon": 48}},
        {"name": "time_to_funding"},
        {"name": "level", "series": "fear_greed_index"},
        {"name": "change", "series": "fear_greed_index", "params": {"horizon": 288}},
        {"name": "zscore", "series": "fear_greed_index", "params": {"window": 2016}},
        {"name": "hour_of_day"},
        {"name": "day_of_week"},
    ]


def experiment() -> Any:
    from dea.config.experiment import validate_config

    d = shared_data()
    raw = {
        "name": "bench-features",
        "data": {
            "instruments": [{"symbol": s, "kind": "perpetual", "base": s, "funding": "none"} for s in SYMBOLS],
            "sources": [
                {"name": f"{s}_5m", "kind": "bars", "format": "freqtrade", "instrument": s, "step": "5m",
                 "path": str(d / "perps_5m_15m" / f"{s}_USDT_USDT-5m-futures.feather")}
                for s in SYMBOLS
            ]
            + [{"name": "fear_greed", "kind": "exogenous", "format": "fear_greed", "step": "1d",
                "series": ["fear_greed_index"], "max_staleness": "5d",
                "path": str(d / "sentiment" / "fear_greed_index_2018_2025.csv")}],
            "clock": {"step": "5m"},
        },
        "features": {"set": feature_items()},
    }
    return validate_config(raw)


def _replay(streaming: Any, panel: Any, start: int, stop: int) -> None:
    fields = {k: v for k, v in panel.fields.items()}
    series = {k: v for k, v in panel.series.items()}
    clock = panel.clock
    for i in range(start, stop):
        streaming.update(int(clock[i]), {k: v[i] for k, v in fields.items()}, {k: float(v[i]) for k, v in series.items()})


def run() -> dict[str, float | int | str]:
    from dea.data.panel import build_panel
    from dea.features import FeatureSet

    cfg = experiment()
    t0 = time.perf_counter()
    panel = build_panel(cfg)
    panel_s = time.perf_counter() - t0
    fs = FeatureSet.from_config(cfg.features, panel.instruments)

    t0 = time.perf_counter()
    fs.batch(panel)
    first_s = time.perf_counter() - t0
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        matrix = fs.batch(panel)
        runs.append(time.perf_counter() - t0)
    batch_s = statistics.median(runs)

    # streaming speed (after warm-up state exists) and memory as the replay grows
    st = fs.streaming(step_ns=panel.step_ns)
    _replay(st, panel, 0, 2_000)
    n_timed = 5_000
    t0 = time.perf_counter()
    _replay(st, panel, 2_000, 2_000 + n_timed)
    us_row = (time.perf_counter() - t0) / n_timed * 1e6

    # the generic execution (every feature's own stream: the reference of the compiled one)
    gen = fs.streaming(step_ns=panel.step_ns, compiled=False)
    _replay(gen, panel, 0, 2_000)
    n_gen = 1_000
    t0 = time.perf_counter()
    _replay(gen, panel, 2_000, 2_000 + n_gen)
    us_row_generic = (time.perf_counter() - t0) / n_gen * 1e6

    st2 = fs.streaming(step_ns=panel.step_ns)
    tracemalloc.start()
    _replay(st2, panel, 0, 5_000)
    mem_5k = tracemalloc.get_traced_memory()[0]
    _replay(st2, panel, 5_000, 20_000)
    mem_20k = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    figures: dict[str, float | int | str] = {
        "rows": len(panel),
        "instruments": len(panel.instruments),
        "features": len(fs.names),
        "panel_build_s": round(panel_s, 3),
        "batch_first_call_s": round(first_s, 3),
        "batch_build_s": round(batch_s, 3),
        "batch_target_s": 2.0,
        "batch_cells_per_s": round(matrix.values.size / batch_s, 0),
        "stream_us_per_row": round(us_row, 1),
        "stream_generic_us_per_row": round(us_row_generic, 1),
        "stream_compiled_speedup": round(us_row_generic / us_row, 1),
        "stream_compiled_features": len(st.plan.compiled),
        "stream_fallback_features": len(st.plan.fallback),
        "stream_mem_kib_after_5k_rows": round(mem_5k / 1024, 1),
        "stream_mem_kib_after_20k_rows": round(mem_20k / 1024, 1),
        "stream_mem_growth_kib": round((mem_20k - mem_5k) / 1024, 1),
    }
    try:
        book = importlib.import_module("benchmarks.bench_book")
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks.bench_book":
            raise
    else:
        for k, v in book.run().items():
            figures[f"book.{k}"] = v
    return figures
