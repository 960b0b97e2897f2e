"""Replay recorded data through the live loop: canonical tables and raw Binance captures.

:class:`TableReplay` takes the canonical tables of an experiment's sources (read from the
Parquet store, or loaded from the original files by :mod:`dea.data.sources`, so any format the
loaders read can be replayed) and emits their rows as events in ``available_at`` order, routed to
the streaming panel's slots. It also derives what the batch panel derives from whole tables (the
clock bounds and native sampling steps), so a replay decides on exactly the batch clock.

:func:`capture_events` streams a raw capture (``<receive ns> <raw JSON>`` lines, gzip or plain)
through the same parser the live websocket feed uses, line by line (memory independent of the
file's length); several captures merge by receive time.

Only pyarrow (via the loaders/store) is touched here, and only when tables are loaded: pandas,
torch and MLflow are never imported, so a serve-only install (the ``serve`` extra: pyarrow, no
pandas) replays the canonical store; loading a source from its original file needs the ``data``
extra and says so.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dea.book.binance import parse_capture_line
from dea.config.experiment import ExperimentConfig
from dea.data.config import DataConfig
from dea.errors import DataError, DeaError
from dea.timeutil import parse_duration, parse_timestamp
from serving.events import BarEvent, BookMsg, ExogEvent, FundingEvent, MarkEvent
from serving.market_state import StreamingPanel, median_step

TABLE_KINDS = ("bars", "mark", "exogenous", "funding")


def load_tables(cfg: ExperimentConfig, *, store: str | Path | None = None) -> dict[str, Any]:
    """Canonical tables for every source of ``cfg`` (store first, else the loaders)."""
    from dea.data.sources import load_source

    tables: dict[str, Any] = {}
    ds = None
    if store is not None:
        from dea.data.store import DataStore

        ds = DataStore(store)
    for src in cfg.data.sources:
        if ds is not None and ds.entry(src.name, src.kind) is not None:
            check_store_current(ds, src, cfg)
            tables[src.name] = ds.read(src.name, src.kind)
            continue
        try:
            tables[src.name] = load_source(src, cfg.base_dir).table
        except ModuleNotFoundError as exc:  # a serve-only install reads the store, not the raw files
            where = f"the store {store}" if store is not None else "a store (none given)"
            raise DataError(
                f"replay: source {src.name!r} is not in {where}, and loading it from its original file needs "
                f"{exc.name}, which is in the `data` extra (pip install 'dea-allocation[data]'); or ingest it "
                f"where that extra is installed (dea data ingest --config ...) and replay the store"
            ) from exc
    return tables


def check_store_current(ds: Any, src: Any, cfg: ExperimentConfig) -> None:
    """Refuse to replay a stored dataset that no longer matches the config's source.

    The store's fingerprint (content hash of the source files + loader options) must equal the
    fingerprint of the source as the config describes it now: a source file that changed, went
    missing, or whose format/options changed means the store is stale, and replaying it would
    serve data the config does not describe."""
    from dea.data.sources import source_fingerprint

    hint = "run `dea data ingest --config CONFIG` (this config) to refresh the store"
    try:
        want = source_fingerprint(src, cfg.base_dir)
    except DeaError as exc:
        raise DataError(f"replay: store {ds.root} holds source {src.name!r}, but the config's source cannot be "
                        f"read to check it is current ({exc}); {hint}") from None
    have = ds.fingerprint(src.name, src.kind)
    if have != want:
        raise DataError(f"replay: store {ds.root} is stale for source {src.name!r} (stored fingerprint {have[:12]}, "
                        f"the config's source now {want[:12]}); {hint}")


class TableReplay:
    """Events of canonical tables in arrival order (see module docstring).

    ``start``/``end`` (int ns) restrict the *decision clock*; every row available before the
    end is replayed (earlier rows warm the features up).
    """

    def __init__(self, data: DataConfig, tables: Mapping[str, Any], *, start: int | None = None, end: int | None = None) -> None:
        self.data = data
        self.tables = dict(tables)
        self.step = parse_duration(data.clock.step)
        missing = [s.name for s in data.sources if s.name not in self.tables]
        if missing:
            raise DataError(f"replay: no table for sources {missing}")
        self.native_steps = self._native_steps()
        self.clock_start, self.clock_end = self._clock(start, end)

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, *, store: str | Path | None = None,
                    start: int | None = None, end: int | None = None) -> TableReplay:
        return cls(cfg.data, load_tables(cfg, store=store), start=start, end=end)

    # -- what the batch panel derives from whole tables ----------------------------------------------
    def _native_steps(self) -> dict[str, int | None]:
        from dea.data.panel import _rows_for

        out: dict[str, int | None] = {}
        for src in self.data.sources:
            t = self.tables[src.name]
            if src.step is not None or t.num_rows == 0:
                continue
            ts_all = t["ts_event"].to_numpy()
            if src.kind in ("bars", "mark"):
                for j, rows in _rows_for(src, t, self.data).items():
                    out[f"{src.name}|{self.data.symbols[j]}"] = median_step(ts_all[rows])
            elif src.kind == "exogenous":
                names = np.asarray(t["series"].to_numpy(zero_copy_only=False), dtype=object)
                ents = np.asarray(t["entity"].to_numpy(zero_copy_only=False), dtype=object)
                for key in dict.fromkeys(zip(names.tolist(), ents.tolist())):
                    rows = np.nonzero((names == key[0]) & (ents == key[1]))[0]
                    out[f"{src.name}|{key[0]}|{key[1]}"] = median_step(ts_all[rows])
        return out

    def _clock(self, start: int | None, end: int | None) -> tuple[int, int]:
        from dea.data.panel import _make_clock

        clock = _make_clock(self.data, self.tables, self.step)
        lo, hi = int(clock[0]), int(clock[-1])
        if start is not None and int(start) > lo:  # first clock time at or after start
            lo += -(-(int(start) - lo) // self.step) * self.step
        if end is not None:
            hi = min(hi, int(end))
        return lo, hi

    # -- events ----------------------------------------------------------------------------------------
    def bind(self, panel: StreamingPanel) -> list[tuple[np.ndarray, list[Any]]]:
        """Register every series/instrument with ``panel``; returns per-source (available_at, events)."""
        from dea.data.panel import _funding_rows, _rows_for, _table_interval

        data = self.data
        out: list[tuple[np.ndarray, list[Any]]] = []
        for s_idx, src in enumerate(data.sources):
            t = self.tables[src.name]
            if src.kind not in TABLE_KINDS or t.num_rows == 0:
                continue
            ts = t["ts_event"].to_numpy()
            av = t["available_at"].to_numpy()
            if src.kind in ("bars", "mark"):
                for j, rows in _rows_for(src, t, data).items():
                    if src.kind == "bars":
                        panel.bar_instrument(s_idx, j)
                        cols = [t[c].to_numpy()[rows].tolist() for c in ("open", "high", "low", "close", "volume")]
                        evs = [BarEvent(a, e, s_idx, j, *vals) for a, e, *vals in zip(av[rows].tolist(), ts[rows].tolist(), *cols)]
                    else:
                        panel.mark_instrument(s_idx, j)
                        cols = [t[c].to_numpy()[rows].tolist() for c in ("mark_price", "index_price")]
                        evs = [MarkEvent(a, e, s_idx, j, *vals) for a, e, *vals in zip(av[rows].tolist(), ts[rows].tolist(), *cols)]
                    out.append((av[rows], evs))
            elif src.kind == "exogenous":
                names = np.asarray(t["series"].to_numpy(zero_copy_only=False), dtype=object)
                ents = np.asarray(t["entity"].to_numpy(zero_copy_only=False), dtype=object)
                vals = t["value"].to_numpy()
                slots = np.full(len(names), -1, dtype=np.int64)
                for key in dict.fromkeys(zip(names.tolist(), ents.tolist())):
                    slot = panel.exog_slot(s_idx, str(key[0]), str(key[1]))
                    if slot is not None:
                        slots[(names == key[0]) & (ents == key[1])] = slot
                keep = np.nonzero(slots >= 0)[0]
                evs = [ExogEvent(a, e, s, v) for a, e, s, v in zip(av[keep].tolist(), ts[keep].tolist(),
                                                                  slots[keep].tolist(), vals[keep].tolist())]
                out.append((av[keep], evs))
            elif src.kind == "funding":
                for j, inst in enumerate(data.instruments):
                    if not (inst.has_funding and inst.funding == src.name):
                        continue
                    rows = _funding_rows(src, t, data, j)
                    if len(rows) == 0:
                        continue
                    panel.funding_instrument(s_idx, j, _table_interval(t, rows) or median_step(ts[rows]))
                    rates = t["rate"].to_numpy()[rows].tolist()
                    evs = [FundingEvent(a, e, s_idx, j, r) for a, e, r in zip(av[rows].tolist(), ts[rows].tolist(), rates)]
                    out.append((av[rows], evs))
        return out

    def events(self, panel: StreamingPanel) -> Iterator[Any]:
        """All rows as events, sorted by ``available_at`` (stable: source order, then row order)."""
        parts = self.bind(panel)
        if not parts:
            return iter(())
        av = np.concatenate([p[0] for p in parts]).astype(np.int64)
        evs: list[Any] = [e for p in parts for e in p[1]]
        order = np.argsort(av, kind="stable")
        order = order[av[order] <= self.clock_end]  # later rows cannot reach any decision
        return (evs[i] for i in order.tolist())


# -- raw captures ------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # noqa: SIM115


def capture_file_events(path: str | Path, instrument: int, *, until: int | None = None) -> Iterator[BookMsg]:
    """One capture file as :class:`BookMsg` events (unknown messages skipped; malformed ones raise
    :class:`~dea.errors.DataFormatError` naming the file and line)."""
    path = Path(path)
    with _open(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            ev = parse_capture_line(line, f"{path.name}, line {n}")
            if ev is None:
                continue
            if until is not None and ev.available_at > until:
                return
            yield BookMsg(ev.available_at, instrument, ev)


def capture_events(files: Sequence[tuple[str | Path, int]], *, until: int | str | None = None) -> Iterator[BookMsg]:
    """Several captures ``(path, instrument index)`` merged by receive time (each file in order)."""
    limit = None if until is None else parse_timestamp(until)
    streams = [capture_file_events(p, j, until=limit) for p, j in files]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda m: m.available_at)
