"""Recognise a data file's format from its name and columns (for ``dea data inspect PATH``).

``detect(path)`` reads only the first line / the schema and returns what to load: the format
and the table kinds it yields (a Coin Metrics file gives both ``bars`` and ``exogenous``), or
that the file is not data (LICENSE, README, the Coin Metrics ``metrics.csv`` dictionary), or
that it is not recognised (with the reason). It never raises for a file it cannot read.
"""

from __future__ import annotations

import csv
import gzip
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

_NON_DATA = ("license", "licence", "readme", "notice", "copying", "sources.tsv")
_NON_DATA_SUFFIX = (".md", ".txt", ".rst", ".py", ".yaml", ".yml", ".json", ".tsv", ".html")
_WS_LINE = re.compile(rb"^\d{15,20} [\[{]")


@dataclass(frozen=True)
class Detection:
    """``status``: ``data`` (load ``format`` as each of ``kinds``), ``skip`` or ``unknown``."""

    path: Path
    status: Literal["data", "skip", "unknown"]
    note: str = ""
    format: str | None = None
    kinds: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


def _first_line(path: Path) -> bytes:
    with path.open("rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        line = fh.readline(1 << 20)
    return line.lstrip(b"\xef\xbb\xbf").rstrip(b"\r\n")


def _columns(path: Path) -> list[str] | None:
    suffix = path.suffix.lower()
    if suffix in (".feather", ".arrow", ".ipc"):
        import pyarrow.feather as feather

        return list(feather.read_table(path, memory_map=True).schema.names)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    line = _first_line(path)
    from dea.data.loaders.futures import KLINE_COLUMNS, headerless_klines

    if headerless_klines(line):
        return KLINE_COLUMNS[: len(line.split(b","))]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "," not in text:
        return None
    return [c.strip() for c in next(csv.reader([text]))]


def _data(path: Path, fmt: str, kinds: tuple[str, ...], note: str = "", **options: Any) -> Detection:
    return Detection(path, "data", note, fmt, kinds, dict(options))


def _from_columns(path: Path, cols: list[str]) -> Detection:
    """The detection of :func:`_match_columns`, with the reason stated when the rule gave none."""
    det = _match_columns(path, cols)
    if det.status == "data" and not det.note:
        shown = ", ".join(cols[:6]) + (", ..." if len(cols) > 6 else "")
        det = Detection(det.path, det.status, f"recognised by its columns ({shown})", det.format, det.kinds, det.options)
    return det


def _match_columns(path: Path, cols: list[str]) -> Detection:
    s = set(cols)
    low = {c.lower() for c in cols}
    name = path.name.lower()
    if {"instrument_name", "mark_price", "underlying_price"} <= s and ("greeks" in s or "greeks.delta" in s):
        return _data(path, "deribit_ticker", ("option_chain",), note="Deribit public-ticker option chain (instrument_name, greeks)")
    if low == {"date", "dvol"}:
        return _data(path, "deribit_dvol", ("exogenous",), note="Deribit DVOL implied-volatility index (Date,DVOL)")
    if {"exchange", "symbol", "timestamp", "local_timestamp"} <= s:
        if {"strike_price", "expiration", "mark_iv"} <= s:
            return _data(path, "tardis_options_chain", ("option_chain",))
        if any(c.startswith(("asks[", "bids[")) for c in cols):
            return _data(path, "tardis_book_snapshot", ("book",))
        if "is_snapshot" in s:
            return _data(path, "tardis_incremental_l2", ("book",))
        if {"ask_price", "bid_price"} <= s:
            return _data(path, "tardis_quotes", ("quotes",))
        if {"side", "price", "amount"} <= s:
            return _data(path, "tardis_trades", ("trades",))
        return Detection(path, "unknown", "Tardis CSV of a data type DEA does not read")
    if {"first_update_id", "last_update_id", "update_type", "price", "qty"} <= s:
        return _data(path, "binance_depth_csv", ("book",), sequence_gap_policy="report")
    if {"id", "name", "category", "description"} <= s:
        return Detection(path, "skip", "metric dictionary (not a data series)")
    if "priceusd" in low and "time" in low:
        return _data(path, "coinmetrics", ("bars", "exogenous"))
    if {"fundingrate", "fundinginterval"} <= low:
        return _data(path, "bitmex_funding", ("funding",))
    if {"interest_1h", "interest_8h"} <= low:
        return _data(path, "deribit_funding", ("funding", "mark"))
    if {"tickdirection", "price", "side", "size"} <= low:
        return _data(path, "bitmex_prices", ("mark",))
    if {"buyer_maker", "price"} <= low or {"is_buyer_maker", "price"} <= low:
        return _data(path, "binance_trades", ("trades",))
    if {"bid", "ask"} <= low:
        return _data(path, "binance_quotes", ("quotes",))
    if low == {"date", "data"} or low == {"date", "value"}:
        stem = name.split(".")[0].replace("-", "_")
        if "open_interest" in stem or "openinterest" in stem or stem.endswith("_oi") or "_oi_" in stem:
            return _data(path, "date_data", ("open_interest",), note="vendor Date,Data export; 'open interest' in the file name")
        return _data(path, "date_data", ("exogenous",), note="vendor Date,Data export: one metric, named by the file")
    if low & {"sumopeninterest", "sum_open_interest", "openinterest", "open_interest"}:
        return _data(path, "open_interest", ("open_interest",), note="an open-interest column")
    if {"fundingtime", "fundingrate"} <= low or {"calc_time", "last_funding_rate"} <= low:
        return _data(path, "binance_funding", ("funding",), note="Binance funding history (fundingTime/fundingRate columns)")
    if {"open", "high", "low", "close"} <= low:
        return _ohlc(path, low)
    if "rate" in low or "funding_rate" in low:
        return _data(path, "funding", ("funding",), note="a rate / funding_rate column")
    if "fear_greed_index" in low:
        return _data(path, "fear_greed", ("exogenous",))
    if name.startswith("google_trends") or "trend_log_return" in low:
        return _data(path, "google_trends", ("exogenous",))
    if "observation_date" in low:
        return _data(path, "fred", ("exogenous",))
    if "btc_social" in str(path).lower() or any("sentiment" in c.lower() for c in cols):
        return _data(path, "social", ("exogenous",))
    if low & {"date", "time", "timestamp", "datetime"} and len(cols) >= 2:
        return _data(path, "daily", ("exogenous",), note="generic dated series")
    return Detection(path, "unknown", f"columns {cols[:8]} match no known format")


def _rest_dump(path: Path) -> Detection | None:
    """A JSON list of exchange records (Binance REST funding / open-interest history), or None."""
    try:
        head = _head_bytes(path, 1 << 16).lstrip()
    except OSError:
        return None
    if not head.startswith(b"["):
        return None
    if head.startswith(b"[["):
        return _rest_klines(path)
    if b'"fundingRate"' in head and b'"fundingTime"' in head:
        return _data(path, "binance_funding", ("funding",), note="Binance REST funding-rate dump (fundingTime/fundingRate)")
    if b'"sumOpenInterest"' in head or b'"openInterest"' in head:
        return _data(path, "open_interest", ("open_interest",), note="REST open-interest dump")
    if b'"markPrice"' in head and b'"indexPrice"' in head and b'"lastFundingRate"' in head:
        return _data(path, "binance_funding", ("mark",), note="Binance REST premiumIndex snapshots (mark and index price)")
    if head.startswith(b"[{"):
        return Detection(path, "unknown", "a JSON list of records that is not a REST dump DEA reads (funding, open interest, klines, premiumIndex)")
    return None


def _rest_klines(path: Path) -> Detection | None:
    from dea.data.loaders.futures import candle_type, kind_of_candle, rest_klines_table

    try:
        table = rest_klines_table(_head_bytes(path, 64 << 20))
    except Exception as exc:  # noqa: BLE001 - detection never raises (corrupt gzip, zlib errors ...)
        return Detection(path, "unknown", f"unreadable: {type(exc).__name__}: {str(exc)[:120]}")
    if table is None:
        return Detection(path, "unknown", "a JSON list of lists that is not a Binance kline response (11 or 12 fields per row)")
    try:
        candle, why = candle_type(path, table)
    except Exception as exc:  # noqa: BLE001 - as above
        return Detection(path, "unknown", f"Binance REST klines with unreadable values: {str(exc)[:100]}")
    return _data(path, "binance_klines", (kind_of_candle(candle),), note=f"Binance REST kline response, {candle} candles: {why}")


def _head_bytes(path: Path, size: int = 4 << 20) -> bytes:
    with path.open("rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        return fh.read(size)


def _head_table(path: Path, rows: int = 5000):  # noqa: ANN202 - pyarrow table
    suffix = path.suffix.lower()
    if suffix in (".feather", ".arrow", ".ipc"):
        import pyarrow.feather as feather

        return feather.read_table(path, memory_map=True).slice(0, rows)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).read_row_group(0).slice(0, rows)
    import io

    import pyarrow.csv as pacsv

    with path.open("rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        head = b"".join(fh.readline(1 << 16) for _ in range(rows + 1)).lstrip(b"\xef\xbb\xbf")
    from dea.data.loaders.futures import KLINE_COLUMNS, headerless_klines

    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    names = KLINE_COLUMNS[: len(first.split(b","))] if headerless_klines(first) else None
    return pacsv.read_csv(io.BytesIO(head), read_options=pacsv.ReadOptions(column_names=names))


def _ohlc(path: Path, low: set[str]) -> Detection:
    """OHLCV-shaped files: trade bars, funding rates, mark/index or premium index, by values."""
    from dea.data.loaders.futures import candle_type, kind_of_candle

    try:
        candle, why = candle_type(path, _head_table(path))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for foreign files
        return Detection(path, "unknown", f"OHLC columns but unreadable values: {type(exc).__name__}: {str(exc)[:100]}")
    kind = kind_of_candle(candle)
    if "open_time" in low and "close_time" in low:
        fmt = "binance_klines"
    elif "date" in low and path.suffix.lower() in (".feather", ".parquet"):
        fmt = "freqtrade"
    elif kind == "bars":
        fmt = "ohlcv"
    else:
        fmt = "freqtrade"
    return _data(path, fmt, (kind,), note=f"{candle} candles: {why}")


def detect(path: Path) -> Detection:
    """What ``path`` is and how to load it (never raises for unreadable files)."""
    name = path.name.lower()
    if name.endswith(".json") and not name.startswith("."):
        rest = _rest_dump(path)
        if rest is not None:
            return rest
    if name.startswith(_NON_DATA) or name.endswith(_NON_DATA_SUFFIX) or name.startswith("."):
        return Detection(path, "skip", "not a data file (licence / documentation)")
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                head = zf.open(members[0]).readline(4096) if members else b""
            if b'"topic":"orderbook.' in head.replace(b" ", b""):
                return _data(path, "bybit_ob", ("book",), sequence_gap_policy="report")
            return Detection(path, "unknown", "zip archive without a recognised recording")
        if name.endswith(".gz") and not name.endswith((".csv.gz", ".tsv.gz")):
            line = _first_line(path)
            if _WS_LINE.match(line):
                if "hyperliquid" in name:
                    return _data(path, "hyperliquid", ("book",), note="Hyperliquid websocket capture")
                head = _head_bytes(path)
                streams = [k for k, tag in (("book", b"depthUpdate"), ("trades", b'"trade"'), ("quotes", b"bookTicker")) if tag in head]
                if b'"lastUpdateId"' in line and "book" not in streams:
                    streams.insert(0, "book")
                if b"markPriceUpdate" in head:
                    streams += ["mark", "funding"]
                kinds = tuple(streams) or ("book", "trades", "quotes")
                return _data(path, "binance_ws", kinds, note=f"Binance websocket capture with {', '.join(kinds)} messages")
            return Detection(path, "unknown", "gzip file that is neither CSV nor a timestamped websocket capture")
        cols = _columns(path)
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, StopIteration, csv.Error) as exc:
        return Detection(path, "unknown", f"unreadable: {str(exc)[:120]}")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for foreign files
        return Detection(path, "unknown", f"unreadable: {type(exc).__name__}: {str(exc)[:120]}")
    if not cols:
        try:
            head = _head_bytes(path, 1 << 16)
        except (OSError, EOFError) as exc:
            return Detection(path, "unknown", f"unreadable: {str(exc)[:120]}")
        if not head.strip():
            return Detection(path, "unknown", "the file is empty")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end
                return Detection(path, "unknown", f"not UTF-8 text (byte {head[exc.start]:#04x} at offset {exc.start}) and not a table format DEA reads")
        return Detection(path, "unknown", "no header of comma-separated column names")
    return _from_columns(path, cols)
