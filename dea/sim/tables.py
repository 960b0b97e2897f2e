"""Canonical tables from a simulated market (pyarrow is imported here, lazily, only).

``sim_tables(options)`` is what the data layer calls for a source with ``format: sim``: the
options are validated as a :class:`~dea.sim.config.SimConfig` (unknown keys are a ConfigError),
the market is simulated once per distinct config (memoised on its canonical JSON, so several
sources sharing the options cost one simulation), and every table kind comes back conformed to
:mod:`dea.data.schema`. Rows are in time order (then instrument / series order).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.errors import ConfigError
from dea.sim.config import SimConfig
from dea.sim.book import BookSnapshots, book_snapshots
from dea.sim.market import SimMarket, simulate_cached
from dea.timeutil import parse_duration

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

BASE_KINDS = ("bars", "funding", "mark", "exogenous")
BOOK_KINDS = ("book", "quotes")


def available_kinds(cfg: SimConfig) -> tuple[str, ...]:
    """Table kinds this config produces (the book only when ``book.enabled``)."""
    return BASE_KINDS + (BOOK_KINDS if cfg.book.enabled else ())


def sim_tables(options: dict[str, Any] | None) -> dict[str, "pa.Table"]:
    """Validate ``options`` as a SimConfig and return its canonical tables keyed by kind."""
    cfg = SimConfig.from_options(options)
    return dict(_tables_json(cfg.model_dump_json()))


@functools.lru_cache(maxsize=4)
def _tables_json(config_json: str) -> Mapping[str, "pa.Table"]:
    cfg = SimConfig.model_validate_json(config_json)
    return MappingProxyType(market_tables(simulate_cached(cfg)))


def market_tables(market: SimMarket, kinds: tuple[str, ...] | None = None) -> dict[str, "pa.Table"]:
    """Build the requested canonical tables (default: all the config produces)."""
    allowed = available_kinds(market.config)
    wanted = allowed if kinds is None else tuple(kinds)
    unknown = [k for k in wanted if k not in allowed]
    if unknown:
        hint = " (enable the book with book.enabled: true)" if set(unknown) & set(BOOK_KINDS) else ""
        raise ConfigError(f"simulator cannot produce table kinds {unknown}; it produces {list(allowed)}{hint}")
    out: dict[str, "pa.Table"] = {}
    snaps = book_snapshots(market) if set(wanted) & set(BOOK_KINDS) else None
    for kind in wanted:
        if kind == "book":
            out[kind] = _book(market, snaps)
        elif kind == "quotes":
            out[kind] = _quotes(market, snaps)
        else:
            out[kind] = _BUILDERS[kind](market)
    return out


# ---- helpers ---------------------------------------------------------------------------------


def _latency(market: SimMarket) -> int:
    return parse_duration(market.config.latency)


def _labels(names: tuple[str, ...], codes: np.ndarray) -> "pa.Array":
    """String column from small-integer codes (dictionary-decoded: fast for millions of rows)."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(list(names), pa.string())).cast(
        pa.string()
    )


def _grid(times: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Time-major (time, instrument) row keys for [len(times), n] arrays flattened in C order."""
    return np.repeat(times, n), np.tile(np.arange(n), times.size)


def _table(kind: str, columns: dict[str, Any]) -> "pa.Table":
    import pyarrow as pa

    from dea.data.schema import conform

    return conform(kind, pa.table(columns), source=f"sim:{kind}")


def _bars(m: SimMarket) -> "pa.Table":
    ts, inst = _grid(m.clock, m.n_assets)
    return _table(
        "bars",
        {
            "ts_event": ts,
            "available_at": ts + m.step_ns + _latency(m),
            "instrument": _labels(m.symbols, inst),
            "open": m.open.ravel(),
            "high": m.high.ravel(),
            "low": m.low.ravel(),
            "close": m.close.ravel(),
            "volume": m.volume.ravel(),
        },
    )


def _mark(m: SimMarket) -> "pa.Table":
    ts, inst = _grid(m.price_times, m.n_assets)
    return _table(
        "mark",
        {
            "ts_event": ts,
            "available_at": ts + _latency(m),
            "instrument": _labels(m.symbols, inst),
            "mark_price": m.mark.ravel(),
            "index_price": m.index.ravel(),
        },
    )


def _funding(m: SimMarket) -> "pa.Table":
    ts, inst = _grid(m.funding_times, m.n_assets)
    interval = parse_duration(m.config.funding.interval)
    return _table(
        "funding",
        {
            "ts_event": ts,
            "available_at": ts + _latency(m),
            "instrument": _labels(m.symbols, inst),
            "rate": m.funding_rate.ravel(),
            "interval_ns": np.full(ts.size, interval, dtype=np.int64),
        },
    )


def _exogenous(m: SimMarket) -> "pa.Table":
    series_names = tuple(m.exogenous)
    entity_names = tuple(dict.fromkeys(e for s in m.exogenous.values() for e in s.entities))
    parts: list[tuple[np.ndarray, ...]] = []
    for code, s in enumerate(series_names):
        ser = m.exogenous[s]
        ts, ent = _grid(ser.ts_event, len(ser.entities))
        avail, _ = _grid(ser.available_at, len(ser.entities))
        ent_codes = np.array([entity_names.index(e) for e in ser.entities])[ent]
        parts.append((ts, avail, np.full(ts.size, code), ent_codes, ser.values.ravel()))
    if parts:
        ts, avail, ser_codes, ent_codes, values = (np.concatenate(c) for c in zip(*parts))
    else:
        ts = avail = ser_codes = ent_codes = np.zeros(0, dtype=np.int64)
        values = np.zeros(0)
    order = np.lexsort((ent_codes, ser_codes, ts))
    return _table(
        "exogenous",
        {
            "ts_event": ts[order].astype(np.int64),
            "available_at": avail[order].astype(np.int64),
            "series": _labels(series_names, ser_codes[order]),
            "entity": _labels(entity_names, ent_codes[order]),
            "value": values[order],
        },
    )


def _book(m: SimMarket, snaps: BookSnapshots) -> "pa.Table":
    k, n, levels = snaps.seq.size, m.n_assets, m.config.book.levels
    # rows laid out [K, N, side, L]: each snapshot block (same ts, instrument, seq) is contiguous
    shape = (k, n, 2, levels)
    seq = np.broadcast_to(snaps.seq[:, None, None, None], shape).ravel()
    inst = np.broadcast_to(np.arange(n)[None, :, None, None], shape).ravel()
    side = np.broadcast_to(np.array([1, -1], dtype=np.int8)[None, None, :, None], shape).ravel()
    ts = m.price_times[seq]
    return _table(
        "book",
        {
            "ts_event": ts,
            "available_at": ts + _latency(m),
            "instrument": _labels(m.symbols, inst),
            "seq": seq.astype(np.int64),
            "side": side,
            "price": snaps.prices.transpose(1, 2, 0, 3).ravel(),
            "size": snaps.sizes.transpose(1, 2, 0, 3).ravel(),
            "is_snapshot": np.ones(ts.size, dtype=bool),
        },
    )


def _quotes(m: SimMarket, snaps: BookSnapshots) -> "pa.Table":
    ts, inst = _grid(snaps.times, m.n_assets)
    px, sz = snaps.prices[:, :, :, 0], snaps.sizes[:, :, :, 0]
    return _table(
        "quotes",
        {
            "ts_event": ts,
            "available_at": ts + _latency(m),
            "instrument": _labels(m.symbols, inst),
            "bid_price": px[0].ravel(),
            "bid_size": sz[0].ravel(),
            "ask_price": px[1].ravel(),
            "ask_size": sz[1].ravel(),
        },
    )


_BUILDERS = {"bars": _bars, "funding": _funding, "mark": _mark, "exogenous": _exogenous}
