"""Data-layer benchmark: ``python -m benchmarks data``.

Figures (one process, this machine, real files from ``../shared/data``):

- ingestion of the three Binance USDT-M 5-minute perpetuals (BTC, ETH, LTC; ~144k bars each):
  load + validate + write into a fresh canonical store, and the idempotent re-ingestion that
  finds every fingerprint current and writes nothing;
- loading + validation alone, and reading the three datasets back from the store;
- assembling them onto a 5-minute decision clock with Fear & Greed joined, with
  :func:`dea.data.panel.build_panel` (loads the sources) and with
  :func:`dea.data.panel.assemble_panel` on the tables read from the store. The set has no
  funding history, which the config declares (``funding: none``).
- the Binance capture replay rate (messages/s, L2 level updates/s with book rebuild) from the
  order-book engineer's ``benchmarks.bench_book.replay_figures()``, when that module exists.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

SYMBOLS = ("BTC", "ETH", "LTC")


def shared_data() -> Path:
    return Path(os.environ.get("DEA_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def experiment(store: Path) -> Any:
    from dea.config.experiment import validate_config

    d = shared_data()
    raw = {
        "name": "bench-data",
        "data": {
            "store": str(store),
            "instruments": [
                {"symbol": s, "venue": "binance", "kind": "perpetual", "base": s, "quote": "USDT", "funding": "none"}
                for s in SYMBOLS
            ],
            "sources": [
                {"name": f"{s}_5m", "kind": "bars", "format": "freqtrade", "instrument": s, "step": "5m",
                 "path": str(d / "perps_5m_15m" / f"{s}_USDT_USDT-5m-futures.feather")}
                for s in SYMBOLS
            ]
            + [{"name": "fear_greed", "kind": "exogenous", "format": "fear_greed", "step": "1d",
                "publication_lag": "1h", "series": ["fear_greed_index"], "max_staleness": "5d",
                "path": str(d / "sentiment" / "fear_greed_index_2018_2025.csv")}],
            "clock": {"step": "5m"},
        },
        "features": {"set": [{"name": "logret", "params": {"horizon": 1}}]},
    }
    return validate_config(raw)


def _timed(fn):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run() -> dict[str, float | int | str]:
    from dea.data.sources import load_source
    from dea.data.store import DataStore

    figures: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = experiment(Path(tmp) / "store")
        bar_sources = [s for s in cfg.data.sources if s.kind == "bars"]
        load_source(bar_sources[0], cfg.base_dir)  # warm imports and file cache

        results, load_s = _timed(lambda: [load_source(s, cfg.base_dir) for s in bar_sources])
        rows = sum(r.table.num_rows for r in results)
        store = DataStore(Path(tmp) / "store")
        outcomes, ingest_s = _timed(lambda: [store.ingest_source(s, cfg.base_dir) for s in bar_sources])
        assert all(o.status == "added" for o in outcomes)
        again, reingest_s = _timed(lambda: [store.ingest_source(s, cfg.base_dir) for s in bar_sources])
        assert all(o.status == "unchanged" for o in again)
        store.ingest_source(cfg.data.sources[-1], cfg.base_dir)
        tables, read_s = _timed(lambda: {s.name: store.read(s.name, s.kind) for s in cfg.data.sources})

        figures.update({
            "bars_rows": rows,
            "load_validate_s": round(load_s, 4),
            "ingest_s": round(ingest_s, 4),
            "ingest_rows_per_s": round(rows / ingest_s),
            "reingest_unchanged_s": round(reingest_s, 4),
            "store_read_s": round(read_s, 4),
        })
        try:
            from dea.data.panel import assemble_panel, build_panel
        except ImportError as exc:  # pragma: no cover - the panel is another engineer's module
            figures["panel"] = f"unavailable: {exc}"
        else:
            panel, panel_s = _timed(lambda: build_panel(cfg))
            fps = {s.name: store.fingerprint(s.name, s.kind) for s in cfg.data.sources}
            _, assemble_s = _timed(lambda: assemble_panel(cfg.data, tables, fps))
            figures.update({
                "panel_build_s": round(panel_s, 4),
                "panel_from_store_s": round(assemble_s + read_s, 4),
                "panel_clock_rows": int(len(panel.clock)),
                "panel_instruments": len(panel.instruments),
            })
    try:
        book = importlib.import_module("benchmarks.bench_book")
    except ModuleNotFoundError:
        figures["book_replay"] = "benchmarks.bench_book not available"
    else:
        replay = getattr(book, "replay_figures", None)
        if replay is not None:
            figures.update({f"book.{k}": v for k, v in replay().items()})
    return figures
