"""A backtest's exposure series read point-in-time onto another decision clock.

Why: the option overlay (:mod:`dea.backtest.options_overlay`) protects a *learned* exposure as
well as a constant one. ``dea backtest`` writes each strategy's exposures beside its tearsheet
(``<strategy>_exposure.csv``, :func:`dea.backtest.series_out.write_series`: a ``time`` column,
the decision time in UTC, and one column per instrument, the exposure held after the trades
decided at that time). The overlay decides daily; at each of its decisions it must use the
exposure decided at or before it, never a later one, and never a value that is not there: a
decision the file does not cover (before its first row, after its last, or in a gap longer than
the file's own step) is refused, naming the gap, and a missing value is an error, not a 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dea.errors import ConfigError, DataError

TIME_COLUMN = "time"


def _iso(t: int) -> str:
    return str(np.datetime64(int(t), "ns").astype("datetime64[s]")) + "Z"


def read_exposure_series(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(time ns int64 strictly increasing, {column: float64 values}) of an exposure CSV."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"exposure file {path}: cannot read it ({exc}); write it with `dea backtest --out DIR` "
                          "(DIR/<strategy>_exposure.csv)") from None
    if TIME_COLUMN not in frame.columns:
        raise DataError(f"exposure file {path}: no {TIME_COLUMN!r} column (columns: {list(frame.columns)}); "
                        "expected the <strategy>_exposure.csv that `dea backtest` writes")
    try:
        when = pd.to_datetime(frame[TIME_COLUMN], utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"exposure file {path}: column {TIME_COLUMN!r} is not a time ({exc})") from None
    if when.isna().any():
        raise DataError(f"exposure file {path}: row {int(np.argmax(when.isna().to_numpy())) + 2} has no time")
    ts = when.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)  # whatever unit pandas inferred
    if len(ts) == 0:
        raise DataError(f"exposure file {path}: no rows")
    if np.any(np.diff(ts) <= 0):
        k = int(np.argmax(np.diff(ts) <= 0))
        raise DataError(f"exposure file {path}: times must increase; row {k + 3} ({_iso(ts[k + 1])}) is not after "
                        f"row {k + 2} ({_iso(ts[k])})")
    cols = {str(c): pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
            for c in frame.columns if c != TIME_COLUMN}
    return ts, cols


def exposure_at(path: str | Path, column: str, clock: np.ndarray) -> np.ndarray:
    """The ``column`` exposure of the file at ``path`` known at each time of ``clock`` (the
    latest row at or before it). Refuses a clock the file does not cover and missing values."""
    path = Path(path)
    ts, cols = read_exposure_series(path)
    if column not in cols:
        raise DataError(f"exposure file {path}: no column {column!r}; its columns are {sorted(cols)} "
                        "(exposure_column names the instrument)")
    values = cols[column]
    clock = np.asarray(clock, dtype=np.int64)
    step = int(np.median(np.diff(ts))) if len(ts) > 1 else 0
    j = np.searchsorted(ts, clock, "right") - 1
    if (j < 0).any():
        k = int(np.argmax(j < 0))
        raise DataError(f"exposure file {path} starts at {_iso(ts[0])}, after the overlay decision at "
                        f"{_iso(clock[k])}: it does not cover {_iso(clock[k])} .. {_iso(ts[0])}; start the "
                        "overlay later or backtest from earlier (dea backtest --start)")
    age = clock - ts[j]
    if step == 0 or (age >= step).any():
        k = int(np.argmax(age >= step)) if step else 0
        last = int(ts[j[k]])
        nxt = _iso(ts[j[k] + 1]) if j[k] + 1 < len(ts) else "the end of the file"
        raise DataError(f"exposure file {path} has no row between {_iso(last)} and {nxt} (its step is "
                        f"{step / 3.6e12:g}h), so the exposure decided for the overlay decision at {_iso(clock[k])} "
                        "is unknown; cover the overlay's start..end")
    out = values[j]
    bad = ~np.isfinite(out)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"exposure file {path}: {column} at {_iso(ts[j[k]])} (used by the overlay decision at "
                        f"{_iso(clock[k])}) is missing; a missing exposure is never taken as 0")
    return out


__all__ = ["exposure_at", "read_exposure_series"]
