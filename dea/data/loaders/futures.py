"""Perpetual-futures side data in exchange layouts: funding, mark, index and premium index.

Why one module: freqtrade and Binance store these as OHLCV-shaped candles that a bar loader
would misread (a funding file's rate sits in ``open``, a mark file's volume is 0), so the
candle type is decided here, from the file name and confirmed by the values
(:func:`candle_type`), and both the loaders and ``dea data inspect`` use the same decision.

- freqtrade futures (``<BASE>_<QUOTE>_<SETTLE>-<tf>-<candle>.feather``, candle ``futures``,
  ``mark``, ``index``, ``premiumIndex``, ``funding_rate``; 8h and 1h variants):
  ``funding_rate``: the settled rate is in ``open`` (other columns 0), stamped at settlement
  (Binance adds a few ms of processing; stamps within 1 s after the interval grid are snapped
  onto it, reported as ``settlement_snapped``); ``mark`` / ``index``: a kline's ``close`` is the
  price at the kline's close, so ``ts_event = open + step``.
- Binance funding history (REST ``/fapi/v1/fundingRate`` JSON or CSV: ``symbol, fundingTime,
  fundingRate[, markPrice]``; data.binance.vision CSV: ``calc_time, funding_interval_hours,
  last_funding_rate``) as ``funding`` (and ``mark`` from ``markPrice``).
- Binance REST ``/fapi/v1/premiumIndex`` snapshots (JSON list: ``markPrice, indexPrice,
  lastFundingRate, time``) as ``mark`` with both prices; their ``lastFundingRate`` is only the
  predicted rate, so reading them as ``funding`` is refused.
- Binance kline CSVs (``open_time, open, high, low, close, volume, close_time, ...``; the older
  data.binance.vision files have no header line, the 2025 spot files stamp in microseconds) and
  the REST kline responses (JSON lists of lists): trade klines as ``bars``, mark or index prices
  as ``mark``, the premium index as the exogenous series ``premium_index`` of the symbol.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from dea.config.base import StrictModel, duration_field
from dea.data.loaders.build import canonical, file_stem, freqtrade_pair, nan_array, resolve_step, step_from_name
from dea.data.loaders.coerce import event_time, to_float64, to_int64, to_ns
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.funding import funding_table, instrument_of
from dea.data.loaders.ohlcv import load_bars
from dea.data.loaders.tabular import column, first_present, read_any
from dea.data.validate import ROW_COLUMN
from dea.timeutil import NS_PER_HOUR, format_duration, parse_duration

CANDLES = ("futures", "mark", "index", "premiumIndex", "funding_rate")
_CANDLE_IN_NAME = re.compile(r"-(futures|mark|index|premiumIndex|funding_rate)(?:\.|$)", re.IGNORECASE)
_FUNDING_MAX = 0.05  # |rate| per settlement above 5 % is not a funding rate


def candle_from_name(path: Path) -> str | None:
    """freqtrade / Binance candle type named by the file (``-funding_rate``, ``-mark`` ...)."""
    m = _CANDLE_IN_NAME.search(path.name)
    if m:
        return next(c for c in CANDLES if c.lower() == m.group(1).lower())
    low = str(path).lower()
    for word, candle in (("premiumindex", "premiumIndex"), ("markprice", "mark"), ("indexprice", "index"), ("fundingrate", "funding_rate")):
        if word in low.replace("_", ""):
            return candle
    return None


def candle_by_values(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray | None) -> tuple[str, str]:
    """What OHLCV-shaped values are, from the values alone, and why."""
    fin = lambda a: a[np.isfinite(a)]  # noqa: E731
    zero_rest = all(len(fin(x)) and np.all(fin(x) == 0) for x in (h, lo, c))
    if zero_rest and len(fin(o)) and np.all(np.abs(fin(o)) < _FUNDING_MAX):
        return "funding_rate", "high/low/close are all 0 and open holds small signed rates"
    prices = np.concatenate([fin(o), fin(c)])
    if len(prices) and (prices < 0).any() and np.all(np.abs(prices) < 1):
        return "premiumIndex", "values are small and partly negative (a premium index)"
    if v is not None and len(fin(v)) and np.all(fin(v) == 0) and len(prices) and np.all(prices > 0):
        return "mark", "positive prices with volume 0 throughout (mark/index klines)"
    return "futures", "positive OHLC prices with traded volume"


def candle_type(path: Path, table: pa.Table) -> tuple[str, str]:
    """(candle type, reason) of an OHLCV-shaped table: the values decide between trade bars,
    funding rates and premium index; the name tells mark from index (same values)."""
    def col(n: str) -> np.ndarray | None:
        name = first_present(table, [n])
        if name is None:
            return None
        a = table[name].slice(0, 5000)
        try:
            return np.asarray(a.to_numpy(zero_copy_only=False), dtype=np.float64)
        except (TypeError, ValueError):
            return None

    o, h, lo, c, v = (col(n) for n in ("open", "high", "low", "close", "volume"))
    if o is None or h is None or lo is None or c is None:
        return "futures", "no numeric OHLC columns"
    by_values, why = candle_by_values(o, h, lo, c, v)
    named = candle_from_name(path)
    if named is None or named == by_values:
        return by_values, why
    small = bool(np.all(np.abs(np.concatenate([o[np.isfinite(o)], c[np.isfinite(c)]])) < _FUNDING_MAX))
    if by_values == "mark" and (named in ("mark", "index", "futures") or (named == "premiumIndex" and small)):
        # the values cannot tell mark from index (or a premium that stayed positive); the name can
        return named, f"{why}; '{named}' in the file name"
    return by_values, f"{why} (the file name says {named!r}; the values decide)"


class FreqtradeOptions(StrictModel):
    """``snap_settlement``: move funding stamps at most this long after the interval grid onto it."""

    snap_settlement: str = "1s"
    _dur = duration_field("snap_settlement")


def _snap(ctx: LoadContext, ts: np.ndarray, interval: int, tolerance: int) -> np.ndarray:
    off = np.mod(ts, interval)
    near = (off > 0) & (off <= tolerance)
    if near.any():
        ctx.report.add(
            "settlement_snapped", int(near.sum()), None,
            f"settlement stamps up to {format_duration(int(off[near].max()))} after the {format_duration(interval)} grid",
            "moved onto the grid",
        )
    return np.where(near, ts - off, ts)


def mark_rows(ctx: LoadContext, table: pa.Table, ts: np.ndarray, avail: np.ndarray, price: pa.Array, which: str, instrument: str | pa.Array) -> pa.Table:
    """A ``mark`` table with ``which`` (mark_price or index_price) filled, the other NaN by construction."""
    other = "index_price" if which == "mark_price" else "mark_price"
    ctx.nan_exempt.add(other)
    cols = {"ts_event": ts, "available_at": avail, "instrument": instrument, which: price, other: nan_array(len(ts))}
    return canonical("mark", cols, table[ROW_COLUMN])


def load_freqtrade_futures(ctx: LoadContext) -> pa.Table:
    """freqtrade futures candles as ``bars`` (trades), ``funding`` (rate in open) or ``mark``."""
    opts = ctx.options(FreqtradeOptions if ctx.kind == "funding" else NoOptions)
    table = read_any(ctx)
    candle, why = candle_type(ctx.path, table)
    wanted = {"bars": ("futures",), "funding": ("funding_rate",), "mark": ("mark", "index"), "exogenous": ("premiumIndex",)}[ctx.kind]
    if candle not in wanted:
        ctx.fail(f"this is a freqtrade {candle!r} file ({why}), not {ctx.kind}; declare the source as kind {_KIND_OF[candle]}")
    if ctx.kind == "bars":
        return load_bars(ctx, default_time="date", default_instrument=freqtrade_pair(ctx.path), step_hint=step_from_name(ctx.path), table=table)
    _, ts = event_time(ctx, table, "date")
    instrument = instrument_of(ctx, table, freqtrade_pair(ctx.path))
    step = resolve_step(ctx, ts, None, step_from_name(ctx.path))
    if ctx.kind == "funding":
        ts = _snap(ctx, ts, step, parse_duration(opts.snap_settlement))  # type: ignore[attr-defined]
        rate = to_float64(column(table, "open", ctx, "rate"), "open", ctx)
        return funding_table(ctx, table, ts, rate, step, instrument)
    close = to_float64(column(table, "close", ctx, "close"), "close", ctx)
    if ctx.kind == "mark":
        at = ts + step
        return mark_rows(ctx, table, at, at + ctx.lag_ns, close, "mark_price" if candle == "mark" else "index_price", instrument)
    return premium_rows(ctx, table, ts + step, close, instrument)


_KIND_OF = {"futures": "bars", "funding_rate": "funding", "mark": "mark", "index": "mark", "premiumIndex": "exogenous"}


def kind_of_candle(candle: str) -> str:
    return _KIND_OF[candle]


def premium_rows(ctx: LoadContext, table: pa.Table, at: np.ndarray, value: pa.Array, instrument: str | pa.Array) -> pa.Table:
    entity = ctx.src.entity or (instrument if isinstance(instrument, str) else "")
    cols = {"ts_event": at, "available_at": at + ctx.lag_ns, "series": "premium_index", "entity": entity.replace("/", "").split(":")[0], "value": value}
    return canonical("exogenous", cols, table[ROW_COLUMN])


# ---------------------------------------------------------------------------------- Binance
def read_rest_or_table(ctx: LoadContext) -> pa.Table:
    """A Binance REST dump (a JSON list of objects) or any table file."""
    head = ctx.path.read_bytes()[:64].lstrip()
    if head.startswith(b"["):
        try:
            rows = json.loads(ctx.path.read_bytes())
        except ValueError as exc:
            ctx.fail(f"not a JSON list of funding records: {exc}")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            ctx.fail("a REST dump must be a JSON list of objects")
        ctx.line_offset = None
        names = sorted({k for r in rows for k in r})
        cols = {k: [None if r.get(k) is None else str(r.get(k)) for r in rows] for k in names}
        table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}) if names else pa.table({})
        if table.num_rows == 0:
            ctx.fail("the REST dump holds no records")
        return table.append_column(ROW_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return read_any(ctx)


def load_binance_funding(ctx: LoadContext) -> pa.Table:
    """Binance funding history (REST JSON/CSV or data.binance.vision CSV) as funding or mark."""
    ctx.options(NoOptions)
    table = read_rest_or_table(ctx)
    snapshot = first_present(table, ["lastFundingRate"]) is not None  # /fapi/v1/premiumIndex polls
    tcol = ctx.src.timestamp.column or first_present(table, ["fundingTime", "calc_time", "funding_time"] + (["time"] if snapshot else []))
    if tcol is None:
        ctx.fail("no fundingTime / calc_time column; set the source's timestamp.column")
    t = column(table, tcol, ctx, "time")
    unit = ctx.src.timestamp.unit if "unit" in ctx.src.timestamp.model_fields_set else "ms"
    ts = to_ns(t, tcol, unit, ctx)
    instrument = instrument_of(ctx, table, file_stem(ctx.path).split("-")[0])
    if ctx.kind == "mark":
        pcol = ctx.column("mark_price", "markPrice")
        price = to_float64(column(table, pcol, ctx, "mark price"), pcol, ctx)
        out = mark_rows(ctx, table, ts, ts + ctx.lag_ns, price, "mark_price", instrument)
        icol = ctx.src.columns.get("index_price") or first_present(table, ["indexPrice"])
        if icol is not None:  # premiumIndex snapshots carry both prices
            ctx.nan_exempt.discard("index_price")
            index = to_float64(column(table, icol, ctx, "index price"), icol, ctx)
            out = out.set_column(out.schema.get_field_index("index_price"), "index_price", index)
        return out
    rcol = ctx.src.columns.get("rate") or first_present(table, ["fundingRate", "last_funding_rate", "funding_rate"])
    if rcol is None and snapshot:
        ctx.fail("a premiumIndex snapshot's lastFundingRate is the rate predicted for the next settlement, not a "
                 "settled one; read it as kind mark, and funding from /fapi/v1/fundingRate history")
    if rcol is None:
        ctx.fail("no fundingRate / last_funding_rate column; map it with columns: {rate: <column>}")
    rate = to_float64(column(table, rcol, ctx, "rate"), rcol, ctx)
    icol = first_present(table, ["funding_interval_hours"])
    if icol is not None:
        hours = to_int64(column(table, icol, ctx, "interval"), icol, ctx, nullable=False).to_numpy(zero_copy_only=False)
        if (hours <= 0).any():
            ctx.fail(f"column {icol!r} must hold positive hours", row=int(np.argmax(hours <= 0)))
        interval: int | np.ndarray = hours.astype(np.int64) * NS_PER_HOUR
    else:
        interval = resolve_step(ctx, ts, None, None)
    return funding_table(ctx, table, ts, rate, interval, instrument)


KLINE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume", "close_time",
                 "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"]
_NUMBER = re.compile(rb"^\s*-?\d+(\.\d*)?([eE][+-]?\d+)?\s*$")


def headerless_klines(first_line: bytes) -> bool:
    """A Binance kline CSV without its header line (data.binance.vision files before 2022):
    11 or 12 numeric cells, the first an epoch in ms or us."""
    cells = first_line.strip().split(b",")
    return len(cells) in (11, 12) and all(_NUMBER.match(c) for c in cells) and cells[0].strip().isdigit() and 13 <= len(cells[0].strip()) <= 16


def rest_klines_table(raw: bytes) -> pa.Table | None:
    """A Binance REST kline response (``/fapi/v1/klines``, ``markPriceKlines``, ``indexPriceKlines``,
    ``premiumIndexKlines``: a JSON list of 11/12-element lists) as a table of text cells, or None."""
    if not raw.lstrip().startswith(b"[["):
        return None
    try:
        rows = json.loads(raw)
    except ValueError:
        return None
    if not rows or not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return None
    n = len(rows[0])
    if n not in (11, 12) or any(len(r) != n for r in rows):
        return None
    cols = {name: pa.array([None if r[k] is None else str(r[k]) for r in rows], pa.string()) for k, name in enumerate(KLINE_COLUMNS[:n])}
    return pa.table(cols)


def _read_klines(ctx: LoadContext) -> pa.Table:
    from dea.data.loaders.tabular import read_bytes, read_csv

    if ctx.path.suffix.lower() in (".feather", ".parquet", ".arrow", ".ipc"):
        return read_any(ctx)
    raw = read_bytes(ctx.path)
    rest = rest_klines_table(raw)
    if rest is not None:
        ctx.line_offset = None
        ctx.report.add("rest_klines", 1, None, "Binance REST kline response (JSON lists): columns named by position", "read")
        return rest.append_column(ROW_COLUMN, pa.array(np.arange(rest.num_rows, dtype=np.int64)))
    first = raw.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    if not headerless_klines(first):
        return read_any(ctx)
    n = len(first.split(b","))
    ctx.report.add("no_header", 1, None, f"Binance kline CSV without a header line: columns {KLINE_COLUMNS[0]} .. {KLINE_COLUMNS[n - 1]}", "named by position")
    return read_csv(ctx, data=raw, column_names=KLINE_COLUMNS[:n])


def _kline_time(ctx: LoadContext, table: pa.Table) -> np.ndarray:
    """open_time in ns: the configured unit, else ms or us from the magnitude (Binance spot files
    switched to microseconds in 2025), every row checked to be of the same unit."""
    from dea.data.loaders.coerce import time_ns

    explicit = "unit" in ctx.src.timestamp.model_fields_set
    return time_ns(table, "open_time", ctx.src.timestamp.unit if explicit else "iso", ctx, explicit=explicit)


def load_binance_klines(ctx: LoadContext) -> pa.Table:
    """Binance mark / index / premium-index kline CSV (``open_time ... close_time``, with or without
    the header line)."""
    ctx.options(NoOptions)
    table = _read_klines(ctx)
    if first_present(table, ["open_time"]) is None:
        cols = [c for c in table.column_names if c != ROW_COLUMN]
        ctx.fail(f"no 'open_time' column; Binance kline CSVs have open_time, open, high, low, close, volume, close_time (found {cols[:8]})")
    candle, why = candle_type(ctx.path, table)
    want = {"bars": "futures", "mark": ("mark", "index"), "exogenous": "premiumIndex"}.get(ctx.kind)
    if want is None or candle not in (want if isinstance(want, tuple) else (want,)):
        ctx.fail(f"this is a Binance {candle!r} kline file ({why}), not {ctx.kind}; declare kind {_KIND_OF[candle]}")
    ts = _kline_time(ctx, table)
    instrument = instrument_of(ctx, table, file_stem(ctx.path).split("-")[0])
    if ctx.kind == "bars":
        return load_bars(ctx, default_time="open_time", default_instrument=instrument if isinstance(instrument, str) else "",
                         step_hint=step_from_name(ctx.path), table=table, ts=ts)
    step = resolve_step(ctx, ts, None, step_from_name(ctx.path))
    close = to_float64(column(table, "close", ctx, "close"), "close", ctx)
    if ctx.kind == "exogenous":
        return premium_rows(ctx, table, ts + step, close, instrument)
    at = ts + step
    return mark_rows(ctx, table, at, at + ctx.lag_ns, close, "mark_price" if candle == "mark" else "index_price", instrument)
