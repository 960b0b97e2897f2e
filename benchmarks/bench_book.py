"""Order-book benchmark on the Binance USDT-M BTCUSDT capture (93,954 messages, 443,262 L2 level
updates): ``python -m benchmarks book``.

Figures (speed is wall-clock, best of several runs after one warm-up run that loads the cached
numba code; ``*_cpu_*`` figures use the thread's CPU time, which a busy shared machine disturbs
less; everything runs on one core):

- from the raw capture: read + gunzip + validating scan + sequence checks + book + every
  order-book feature at every book event (sampled on a 100 ms clock) + the bookTicker
  cross-check -> messages/s (target >= 300,000);
- replay from the cached columnar form (the ``.npz`` written by :mod:`dea.book.capture`): every
  level update applied and every feature computed at every book event -> level updates/s
  (target >= 10,000,000), with and without loading the cache file;
- correctness on every run: sequence gaps, crossed books and bookTicker mismatches (must be 0);
- streaming memory: tracemalloc current/peak of the live (streaming) execution at 25/50/100 %
  of the replay, with the two things it holds: book levels and volatility-window entries. Both
  are bounded (the book by the instrument's real depth, which diffs reveal beyond the
  1,000-level snapshot as prices are touched; the windows by the longest horizon), so memory
  does not grow with the length of the replay, only with what the book currently holds.
"""

from __future__ import annotations

import gzip
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

CAPTURE = "orderbook/binance_ws_2024/usdm_btcusdt_20240808.gz"
CLOCK_STEP_NS = 100_000_000
REPEATS = 5


def _data_root() -> Path:
    import os

    root = Path(os.environ.get("DEA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / CAPTURE).exists():
        raise FileNotFoundError(f"benchmark capture not found: {root / CAPTURE} (set DEA_SHARED_DATA)")
    return root


def _best(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float, object]:
    """(best wall s, best CPU s, last result) over ``repeats`` runs after one warm-up run."""
    out = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.thread_time()
        out = fn()
        cpus.append(time.thread_time() - c0)
        walls.append(time.perf_counter() - w0)
    return min(walls), min(cpus), out


def _clock(parsed) -> np.ndarray:
    return np.arange(int(parsed.ev_time[0]), int(parsed.ev_time[-1]) + CLOCK_STEP_NS, CLOCK_STEP_NS, dtype=np.int64)


def raw_pipeline(path: Path) -> dict[str, object]:
    """Raw capture -> validated book -> every feature at every event -> panel + checks."""
    from dea.book.capture import parse_capture
    from dea.book.checks import check_book_tickers
    from dea.features.orderbook import capture_panel_fields

    parsed = parse_capture(path)
    fields, info = capture_panel_fields(parsed, _clock(parsed), per_event=True)
    chk = check_book_tickers(parsed, info["event_top"])
    return {"parsed": parsed, "fields": fields, "info": info, "ticker": chk}


def replay_figures(path: Path | None = None) -> dict[str, float | int | str]:
    """Raw-capture and cached-replay speed plus the correctness counts (also merged by
    ``benchmarks/bench_data.py`` and ``benchmarks/bench_features.py``)."""
    from dea.book.capture import ParsedCapture, cached_capture
    from dea.features.orderbook import capture_panel_fields

    path = path or _data_root() / CAPTURE
    raw_wall, raw_cpu, res = _best(lambda: raw_pipeline(path))
    parsed, info, chk = res["parsed"], res["info"], res["ticker"]
    n_msg = parsed.report["messages"]
    figures: dict[str, float | int | str] = {
        "capture": path.name,
        "messages": int(n_msg),
        "raw_pipeline_msg_per_s": round(n_msg / raw_wall),
        "raw_pipeline_cpu_msg_per_s": round(n_msg / raw_cpu),
        "raw_pipeline_s": round(raw_wall, 4),
        "target_raw_msg_per_s": 300_000,
        "sequence_gaps": int(parsed.report["sequence_gaps"]),
        "resyncs": int(parsed.report["resyncs"]),
        "crossed_books": int(info["crossed_books"]),
        "ticker_checked_diffs": int(chk.checked),
        "ticker_mismatches": int(chk.mismatches),
        "applied_diffs": int(parsed.report["applied_diffs"]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cached_capture(path, Path(tmp))  # parse once, write the cache
        cache_file = next(Path(tmp).glob("*.npz"))
        load_wall, _, cached = _best(lambda: ParsedCapture.load(cache_file))
        clock = _clock(cached)
        wall, cpu, (fields, rinfo) = _best(lambda: capture_panel_fields(cached, clock, per_event=True))
        size = cache_file.stat().st_size
    updates = cached.n_level_updates
    figures.update({
        "replay_level_updates": int(updates),
        "replay_book_events": int(rinfo["events"]),
        "replay_features_per_event": int(rinfo["event_features"].shape[1]),
        "replay_level_updates_per_s": round(updates / wall),
        "replay_cpu_level_updates_per_s": round(updates / cpu),
        "replay_with_cache_load_level_updates_per_s": round(updates / (wall + load_wall)),
        "target_replay_level_updates_per_s": 10_000_000,
        "replay_s": round(wall, 5),
        "cache_load_s": round(load_wall, 5),
        "cache_bytes": int(size),
    })
    return figures


def streaming_memory(path: Path) -> dict[str, float | int]:
    """Live execution over the capture, line by line (nothing retained), sampling every 100 ms:
    tracemalloc current and peak bytes at 25/50/100 % of the messages."""
    from dea.book.binance import parse_capture_line
    from dea.book.events import BookTicker, Trade
    from dea.features.orderbook import OrderbookFeatureStream

    with gzip.open(path, "rb") as fh:
        n_lines = sum(1 for line in fh if line.strip())
    marks = {int(n_lines * f): f for f in (0.25, 0.5, 1.0)}
    out: dict[str, float | int] = {}
    tracemalloc.start()
    try:
        stream = OrderbookFeatureStream()
        tracemalloc.reset_peak()
        next_t = None
        n = 0
        with gzip.open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                ev = parse_capture_line(line)
                n += 1
                if ev is not None and not isinstance(ev, BookTicker):
                    t = ev.available_at
                    if next_t is None:
                        next_t = t - t % CLOCK_STEP_NS + CLOCK_STEP_NS
                    while t > next_t:
                        stream.snapshot_features(next_t)
                        stream.reset_interval()
                        next_t += CLOCK_STEP_NS
                    stream.on_trade(ev) if isinstance(ev, Trade) else stream.on_book(ev)
                if n in marks:
                    cur, peak = tracemalloc.get_traced_memory()
                    pct = int(marks[n] * 100)
                    out[f"stream_mem_current_bytes_at_{pct}pct"] = int(cur)
                    out[f"stream_mem_peak_bytes_to_{pct}pct"] = int(peak)
                    book = stream.book.book
                    out[f"stream_book_levels_at_{pct}pct"] = int(len(book))
                    out[f"stream_rv_window_entries_at_{pct}pct"] = int(sum(len(d) for d in stream._rv))
    finally:
        tracemalloc.stop()
    out["stream_mem_growth_50_to_100pct"] = round(
        out["stream_mem_current_bytes_at_100pct"] / max(out["stream_mem_current_bytes_at_50pct"], 1), 3
    )
    return out


def run() -> dict[str, float | int | str]:
    import orjson

    path = _data_root() / CAPTURE
    figures = replay_figures(path)
    with gzip.open(path, "rb") as fh:
        bodies = [line.partition(b" ")[2] for line in fh]

    def orjson_only() -> None:  # for scale: decoding alone, results discarded, no book
        loads = orjson.loads
        for b in bodies:
            if b:
                loads(b)

    ref_wall, _, _ = _best(orjson_only, repeats=3)
    figures["reference_orjson_loads_only_msg_per_s"] = round(len(bodies) / ref_wall)
    figures.update(streaming_memory(path))
    return figures


if __name__ == "__main__":  # pragma: no cover
    for k, v in run().items():
        print(f"{k:<48} {v}")
