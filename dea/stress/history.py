"""Real price history for stress scenarios: readers and the automatic worst-drawdown finder.

Readers return the price on the clock at which it was *known* (a Coin Metrics ``PriceUSD`` of
day D is the close at 00:00 of D+1; a freqtrade bar's close is known at open + step), so a
replayed window never shows a price before it existed.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dea.errors import DataError, DataFormatError
from dea.timeutil import NS_PER_DAY, iso, parse_timestamp


def read_coinmetrics(path: str | Path, column: str = "PriceUSD") -> tuple[np.ndarray, np.ndarray]:
    """(clock ns, values) of one Coin Metrics column; leading empty values (before the series
    starts) are skipped, an empty value later on is an error naming its date."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "time" not in reader.fieldnames or column not in reader.fieldnames:
                raise DataFormatError(f"{path}: Coin Metrics file needs columns 'time' and {column!r}")
            stamps, values = [], []
            for line, row in enumerate(reader, start=2):
                text = (row[column] or "").strip()
                if not text:
                    if values:
                        raise DataError(f"{path}:{line}: {column} is empty on {row['time']} inside the series")
                    continue
                stamps.append(parse_timestamp(row["time"]) + NS_PER_DAY)  # close of day D, known at D+1 00:00
                values.append(float(text))
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read: {exc}") from None
    if len(values) < 2:
        raise DataError(f"{path}: fewer than two {column} values")
    return np.asarray(stamps, dtype=np.int64), np.asarray(values)


def read_freqtrade_close(path: str | Path, column: str = "close") -> tuple[np.ndarray, np.ndarray]:
    """(clock ns, close) of a freqtrade feather of bars, stamped at each bar's close."""
    import pyarrow.feather as feather  # lazy: batch-only

    try:
        table = feather.read_table(str(path), columns=["date", column])
    except (OSError, KeyError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot read freqtrade bars ({column!r}): {exc}") from None
    opens = table.column("date").cast("int64").to_numpy()
    if opens.size < 2 or np.any(np.diff(opens) <= 0):
        raise DataError(f"{path}: bar open times must be strictly increasing")
    step = int(np.median(np.diff(opens)))
    return opens + step, table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)


def read_prices(path: str | Path, fmt: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    if fmt == "coinmetrics":
        return read_coinmetrics(path, column)
    if fmt == "freqtrade":
        return read_freqtrade_close(path, column)
    raise DataError(f"unknown price history format {fmt!r}; expected coinmetrics or freqtrade")


def slice_window(clock: np.ndarray, values: np.ndarray, start: str | int, end: str | int, source: str = "<series>") -> np.ndarray:
    """Values with ``start <= clock <= end``; refuses an empty window or missing values."""
    lo, hi = parse_timestamp(start), parse_timestamp(end)
    sel = (clock >= lo) & (clock <= hi)
    out = values[sel]
    if out.size < 2:
        raise DataError(f"{source}: fewer than two values between {iso(lo)} and {iso(hi)}")
    if not np.isfinite(out).all():
        raise DataError(f"{source}: missing values between {iso(lo)} and {iso(hi)}")
    return out


def rolling_max(x: np.ndarray, length: int) -> np.ndarray:
    """max(x[t-length+1 .. t]) for every t (window truncated at the start), O(T log length)."""
    x = np.asarray(x, dtype=np.float64)
    if length < 1:
        raise DataError("rolling window must be >= 1")
    table = x.copy()  # table[t] = max of x[t-w+1..t] for the current power of two w
    w = 1
    while 2 * w <= length:
        shifted = np.concatenate([np.full(w, -np.inf), table[:-w]])
        table = np.maximum(table, shifted)
        w *= 2
    rest = length - w  # cover the remaining span with a second, overlapping block
    if rest == 0:
        return table
    shifted = np.concatenate([np.full(rest, -np.inf), table[:-rest]])
    return np.maximum(table, shifted)


@dataclass(frozen=True)
class Drawdown:
    peak: int
    trough: int
    depth: float  # trough / peak - 1 (negative)


def worst_drawdowns(price: np.ndarray, max_length: int, k: int = 3) -> list[Drawdown]:
    """The ``k`` deepest non-overlapping peak-to-trough falls lasting at most ``max_length`` steps.

    Greedy: take the deepest fall over any window, then exclude every window that overlaps it,
    and repeat. Deepest first.
    """
    p = np.asarray(price, dtype=np.float64)
    if p.ndim != 1 or p.size < 2 or not np.isfinite(p).all():
        raise DataError("worst_drawdowns needs a 1-D series of >= 2 finite prices")
    dd = p / rolling_max(p, max_length + 1) - 1
    out: list[Drawdown] = []
    for _ in range(k):
        t = int(np.argmin(dd))
        if not dd[t] < 0:
            break
        lo = max(0, t - max_length)
        peak = lo + int(np.argmax(p[lo : t + 1]))
        out.append(Drawdown(peak, t, float(p[t] / p[peak] - 1)))
        dd[peak : min(p.size, t + max_length + 1)] = 0.0  # windows ending here overlap [peak, t]
    return out
