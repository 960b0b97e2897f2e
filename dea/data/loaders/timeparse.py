"""Text timestamps in the styles real files use -> int64 ns UTC, or a DataError naming the cell.

Why a module of its own: vendors write dates in many ways and a wrong guess silently shifts
every row. The rules, applied to a whole column at once:

- an explicit ``timestamp.format`` (strptime codes, e.g. ``%d.%m.%Y``) is used as given;
- text that is all integers/decimals is an epoch, its unit found from the magnitude
  (s / ms / us / ns, dates 1973..2286), or ``YYYYMMDD`` when it has eight digits; a column
  whose values are not all of that one unit (a row in seconds among milliseconds would land in
  1970) is refused (:func:`check_one_unit`; integer columns too);
- numeric dates with ``.``, ``/`` or ``-`` separators and parts that need not be zero-padded
  (``2009.10.5``, ``5/10/2009``, ``05.10.2009 13:00``): year first is read Y-M-D; year last is
  read day-first or month-first only when some row proves it (a first part above 12 means
  day-first, a second part above 12 month-first); a column where both readings fit every row is
  refused and asks for ``timestamp.format`` (never a guess);
- anything else is ISO 8601 (``T`` or space, fractional seconds, ``Z``/``+hh:mm`` offsets, or
  the zone as a word: ``13:00 UTC``, ``13:00 GMT``),
  then, failing that, a textual date (``Jan 5 2020``) read month-first;
- naive times are UTC; offsets are converted to UTC, but a column that mixes offsets (or mixes
  offset and naive times) is refused: a file whose rows disagree on their clock cannot be
  placed in time safely.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from dea.data.loaders.context import LoadContext

if TYPE_CHECKING:  # pandas is imported inside the parsers: reading the canonical store
    import pandas as pd  # (a serve-only install replaying it) must not need pandas

_NUMERIC = re.compile(r"^\s*[+-]?\d+(\.\d*)?\s*$")
_DMY = r"^\s*(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})(?:(?:[ T]+)(.*))?\s*$"
_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$"
_EPOCH_BOUNDS = (("ns", 1e17), ("us", 1e14), ("ms", 1e11), ("s", 1e8))
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def epoch_unit(magnitude: float) -> str | None:
    """s / ms / us / ns for a typical absolute epoch value (dates 1973..2286), else None."""
    for unit, lo in _EPOCH_BOUNDS:
        if lo <= magnitude < lo * 1e2:
            return unit
    return None


def check_one_unit(v: np.ndarray, unit: str, name: str, ctx: LoadContext, shown: np.ndarray | None = None) -> None:
    """Refuse a column whose epochs are not all of the unit inferred from its median: a few
    seconds among milliseconds would otherwise land in 1970 and be sorted silently to the front."""
    mag = np.abs(np.asarray(v, dtype=np.float64))
    lo = dict(_EPOCH_BOUNDS)[unit]
    odd = np.isfinite(mag) & ((mag < lo) | (mag >= lo * 1e2))
    if odd.any():
        i = int(np.argmax(odd))
        value = str(shown[i] if shown is not None else v[i])[:40]
        other = epoch_unit(float(mag[i]))
        ctx.fail(
            f"timestamp column {name!r} mixes epoch units: most values are {unit} but {value} "
            f"({int(odd.sum())} of {len(mag)} values) {'reads as ' + other if other else 'fits no epoch unit of the same era'}; "
            "set the source's timestamp.unit if the column is really one unit",
            row=i,
        )


def parse_text_times(values: np.ndarray, name: str, ctx: LoadContext, fmt: str | None = None) -> np.ndarray:
    """int64 ns UTC for an object array of non-null strings (see the module docstring)."""
    import pandas as pd

    s = pd.Series(values, dtype=object).astype(str).str.strip()
    try:
        if fmt:
            parsed = pd.to_datetime(s, format=fmt, utc=True, errors="coerce")
            how = f"with timestamp.format {fmt!r}"
        elif s.str.match(_NUMERIC.pattern).all():
            return _text_epoch(s, name, ctx)
        else:
            parsed, how = _parse_styles(s, name, ctx)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        ctx.fail(f"timestamp column {name!r}: cannot parse its values as dates ({str(exc)[:120]})")
    _check_offsets(s, name, ctx)
    return _to_ns(s, parsed, name, ctx, how)


def _text_epoch(s: pd.Series, name: str, ctx: LoadContext) -> np.ndarray:
    import pandas as pd

    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    med = float(np.median(np.abs(v))) if len(v) else 0.0
    if len(s) and s.str.fullmatch(r"[12]\d{7}").all():
        parsed = pd.to_datetime(s, format="%Y%m%d", utc=True, errors="coerce")
        return _to_ns(s, parsed, name, ctx, "as YYYYMMDD")
    unit = epoch_unit(med)
    if unit is None:
        ctx.fail(
            f"timestamp column {name!r} holds numbers ({s.iloc[0]!r}...) whose magnitude fits no epoch unit; "
            "set the source's timestamp.unit (s, ms, us, ns) or timestamp.format"
        )
    check_one_unit(v, unit, name, ctx, s.to_numpy())
    ns = v * _UNIT_NS[unit]
    bad = ~np.isfinite(ns) | (np.abs(ns) >= 9.2e18)
    if bad.any():
        i = int(np.argmax(bad))
        ctx.fail(f"timestamp column {name!r}: epoch {s.iloc[i][:40]!r} ({unit}) is outside the years 1678-2261", row=i)
    ctx.report.add("timestamp_unit_inferred", 1, None, f"column {name!r} read as epoch {unit} from its magnitude", "used")
    return np.round(ns).astype(np.int64)


def _parse_styles(s: pd.Series, name: str, ctx: LoadContext) -> tuple[pd.Series, str]:
    import pandas as pd

    parts = s.str.extract(_DMY)
    numeric_date = parts[0].notna()
    if numeric_date.all():
        return _parse_numeric_dates(s, parts, name, ctx)
    if numeric_date.any() and not s.str.match(r"^\s*\d{4}-\d{2}-\d{2}").all():
        i = int(np.argmax(~numeric_date.to_numpy()))
        k = int(np.argmax(numeric_date.to_numpy()))
        ctx.fail(f"timestamp column {name!r} mixes date styles ({s.iloc[k]!r} and {s.iloc[i]!r})", row=i)
    parsed = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
    if parsed.isna().any():
        textual = pd.to_datetime(s, utc=True, format="mixed", dayfirst=False, errors="coerce")
        if textual.notna().all() and not s.str.match(r"^\s*\d+\s*[./-]\s*\d+").any():
            return textual, "as textual dates"
    return parsed, "as an ISO 8601 date/time"


def _parse_numeric_dates(s: pd.Series, parts: pd.DataFrame, name: str, ctx: LoadContext) -> tuple[pd.Series, str]:
    import pandas as pd

    a, b, c = (parts[k].astype(int) for k in (0, 2, 3))
    year_first = parts[0].str.len() == 4
    year_last = parts[3].str.len() == 4
    if year_first.all():
        y, m, d = a, b, c
        how = "as year-month-day"
    elif year_last.all():
        day_first_seen = bool((a > 12).any())
        month_first_seen = bool((b > 12).any())
        if day_first_seen and month_first_seen:
            i = int(np.argmax((b > 12).to_numpy()))
            ctx.fail(f"timestamp column {name!r}: dates are neither all day-first nor all month-first ({s.iloc[i]!r})", row=i)
        if not (day_first_seen or month_first_seen) and not (a == b).all():
            ctx.fail(
                f"timestamp column {name!r}: {s.iloc[0]!r} could be day-first or month-first and no row tells; "
                "set the source's timestamp.format (e.g. '%d.%m.%Y' or '%m/%d/%Y')"
            )
        if day_first_seen or (a == b).all():
            y, m, d, how = c, b, a, "day-first"
        else:
            y, m, d, how = c, a, b, "month-first"
    else:
        bad = ~(year_first | year_last)
        i = int(np.argmax(bad.to_numpy())) if bad.any() else int(np.argmax(year_last.to_numpy()))
        ctx.fail(f"timestamp column {name!r}: cannot tell the year in {s.iloc[i]!r}; set timestamp.format", row=i)
    iso = y.map("{:04d}".format) + "-" + m.map("{:02d}".format) + "-" + d.map("{:02d}".format)
    # "13:00 UTC", "13:00 GMT", "13:00 +01:00": the zone written as a word or after a space
    rest = parts[4].fillna("").str.strip()
    rest = rest.str.replace(r"\s*(?:UTC|GMT|utc|gmt)$", "Z", regex=True).str.replace(r"\s+([+-]\d{2}(?::?\d{2})?)$", r"\1", regex=True)
    iso = iso.where(rest == "", iso + "T" + rest.str.strip())
    return pd.to_datetime(iso, utc=True, format="ISO8601", errors="coerce"), how


def _check_offsets(s: pd.Series, name: str, ctx: LoadContext) -> None:
    off = s.str.extract(_OFFSET)[0]
    timed = s.str.contains(r"\d:\d{2}", regex=True)
    if not timed.any():
        return
    norm = off[timed].fillna("naive").str.upper().str.replace("UTC", "Z").str.replace("GMT", "Z").str.replace(":", "", regex=False)
    norm = norm.where(~norm.isin(["Z", "+00", "+0000", "-0000", "-00"]), "+0000")
    norm = norm.where(norm.str.len() != 3, norm + "00")
    kinds = norm.unique()
    if len(kinds) > 1:
        first = norm.iloc[0]
        i = int(np.flatnonzero((norm != first).to_numpy())[0])
        row = int(norm.index[i])
        ctx.fail(
            f"timestamp column {name!r} mixes timezone offsets ({_show(first)} in its first rows, "
            f"{_show(norm.iloc[i])} in {s.iloc[row]!r}); a file must use one offset throughout",
            row=row,
        )


def _show(offset: str) -> str:
    return "no offset" if offset.lower() == "naive" else offset


def _to_ns(s: pd.Series, parsed: pd.Series, name: str, ctx: LoadContext, how: str) -> np.ndarray:
    import pandas as pd

    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        ctx.fail(f"timestamp column {name!r}: cannot parse {str(s.iloc[i])[:40]!r} {how}", row=i)
    years = parsed.dt.year.to_numpy()
    out_of_range = (years < 1678) | (years > 2261)
    if out_of_range.any():
        i = int(np.argmax(out_of_range))
        ctx.fail(f"timestamp column {name!r}: {str(s.iloc[i])[:40]!r} is outside the years 1678-2261", row=i)
    return np.asarray(pd.DatetimeIndex(parsed).as_unit("ns").asi8, dtype=np.int64)
