"""Daily exogenous series (sentiment, macro, any dated CSV) -> long ``exogenous`` rows.

A daily value dated D describes day D and is known at the earliest when that day has ended, so
``available_at = start of D + step + publication_lag``, the step being the configured one, else
1d, else the dates' typical spacing when longer (weekly or monthly values: :func:`dated_period`); the lag (e.g.
``1d`` for FRED's next-business-day publication) is set per source.

Which columns become series: ``series`` (a list of series or file column names) when given,
otherwise every column except the time columns; text columns whose cells are mostly not numbers
(labels such as Fear & Greed's ``value_classification``) are left out and reported
(``label_column``); a numeric column holding a stray text cell is refused naming the cell.
``columns`` renames: ``{series_name: file_column}``. Missing cells (FRED holidays) are NaN,
never 0, and go through the source's ``nan_policy``.

Presets: ``daily`` (generic, names kept), ``fred`` (``observation_date``), ``fear_greed``
(``date``), ``google_trends`` (the search-term column is named ``trend``; entity from the file
name, ``google_trends_BTC.csv`` -> ``BTC``; see *look-ahead* below), ``social``
(btc_social_2014_2021: a file with one value column is named after the file, ``direct__reddit_comments_sentiment.csv`` ->
``reddit_comments_sentiment``; several columns are snake_cased).

Look-ahead in vendor scaling: Google Trends scales a file's levels so that the maximum of the
*whole requested window* is 100, so a raw level tells how far today is from a peak that may lie
in the future. The ``trend`` series is therefore rescaled causally by default
(``options.level: causal``): divided by the mean of the series' first ``anchor_days`` finite
values (expanding until that many exist), so the provider's constant cancels and appending
future data cannot change a past value. Ratios (``trend_relative_diff``, ``trend_log_return``)
are scale-free already. ``level: raw_lookahead`` keeps the provider's levels and marks the series
as look-ahead (:func:`lookahead_series`; the panel lists it under ``report["lookahead"]``) --
an explicit opt-in, never a default.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dea.config.base import StrictModel
from dea.data.config import SourceConfig
from dea.data.loaders.build import canonical, file_stem
from dea.data.loaders.coerce import TIME_CANDIDATES, NUMBER_PATTERN, event_time, to_float64
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.tabular import column, read_any
from dea.data.validate import ROW_COLUMN
from dea.timeutil import NS_PER_DAY, parse_duration

KINDS = frozenset({"exogenous"})


def dated_period(ctx: LoadContext, ts: np.ndarray) -> int:
    """The period a dated value describes when no ``step`` is configured: one day, or the
    typical spacing of the dates in whole days when that is longer. A weekly value stamped at its
    week's start read as daily would be visible six days before its week is over (look-ahead);
    read this way it is visible when the week ends (reported as ``period_inferred``)."""
    u = np.unique(ts)
    if len(u) < 3:
        return NS_PER_DAY
    days = max(1, int(round(float(np.median(np.diff(u))) / NS_PER_DAY)))
    if days > 1:
        ctx.report.add("period_inferred", 1, None,
                       f"dates every {days}d: each value is available at the end of its {days}-day period (set step to override)", "used")
    return days * NS_PER_DAY


def day_available(ctx: LoadContext, ts: np.ndarray) -> np.ndarray:
    """End of the period the row describes plus the publication lag."""
    if ctx.src.step is None:
        start = ts - np.mod(ts, NS_PER_DAY)
        return start + dated_period(ctx, start) + ctx.lag_ns
    return ts + parse_duration(ctx.src.step) + ctx.lag_ns


def _mostly_text(arr: pa.ChunkedArray) -> bool:
    a = arr.combine_chunks()
    if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
        return False
    valid = a.drop_null()
    if len(valid) == 0:
        return False
    numeric = pc.sum(pc.match_substring_regex(valid, NUMBER_PATTERN)).as_py() or 0
    return numeric < 0.5 * len(valid)


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def select_series(
    ctx: LoadContext, table: pa.Table, time_col: str, rename: Callable[[str], str] = lambda c: c
) -> dict[str, str]:
    """series name -> file column."""
    mapping = dict(ctx.src.columns)  # explicit renames: series -> file column
    taken = set(mapping.values())
    skip = {time_col, ROW_COLUMN} | {c for c in table.column_names if c.lower() in TIME_CANDIDATES}
    auto: dict[str, str] = {}
    for c in table.column_names:
        if c in skip or c in taken:
            continue
        auto[rename(c)] = c
    if ctx.src.series is not None:
        out: dict[str, str] = {}
        for s in ctx.src.series:
            if s in mapping:
                out[s] = mapping[s]
            elif s in auto:
                out[s] = auto[s]
            elif s in table.column_names:
                out[s] = s
            else:
                ctx.fail(f"series {s!r} not found; available: {sorted(set(auto) | set(mapping))}")
        return out
    out = dict(mapping)
    for name, c in auto.items():
        if _mostly_text(table[c]):
            ctx.report.add("label_column", 1, None, f"text column {c!r} is not a numeric series", "not loaded")
            continue
        out[name] = c
    if not out:
        ctx.fail("no numeric value columns besides the time column")
    return out


def long_exogenous(ctx: LoadContext, table: pa.Table, ts: np.ndarray, available: np.ndarray, series: dict[str, str], entity: str) -> pa.Table:
    """Wide (one column per series) -> long canonical exogenous rows, vectorised."""
    n = table.num_rows
    k = len(series)
    values = [to_float64(column(table, c, ctx, f"series {s}"), c, ctx) for s, c in series.items()]
    names = pa.array(np.repeat(np.array(list(series), dtype=object), n), pa.string())
    cols = {
        "ts_event": np.tile(ts, k),
        "available_at": np.tile(available, k),
        "series": names,
        "entity": entity,
        "value": pa.concat_arrays(values) if values else pa.array([], pa.float64()),
    }
    return canonical("exogenous", cols, np.tile(table[ROW_COLUMN].to_numpy(), k))


def _load(ctx: LoadContext, preset_time: str | None, entity: str, rename: Callable[[str], str] = lambda c: c) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    tcol, ts = event_time(ctx, table, preset_time)
    series = select_series(ctx, table, tcol, rename)
    return long_exogenous(ctx, table, ts, day_available(ctx, ts), series, ctx.src.entity or entity)


def load_daily(ctx: LoadContext) -> pa.Table:
    """Generic dated CSV (one row per day, one column per series).

    A vendor ``Date,Data`` file (one metric) names its series after the file, as the
    ``date_data`` format does. A Google Trends export read this way would bring in its level
    with the provider's whole-window scaling (look-ahead) unflagged, so its level is refused
    here (see :func:`load_google_trends`).
    """
    ctx.options(NoOptions)
    table = read_any(ctx)
    tcol, ts = event_time(ctx, table, None)
    values = [c for c in table.column_names if c not in (tcol, ROW_COLUMN)]
    if len(values) == 1 and values[0].lower() in ("data", "value") and not ctx.src.columns and ctx.src.series is None:
        series = {snake(file_stem(ctx.path)): values[0]}
    else:
        series = select_series(ctx, table, tcol)
    _refuse_trends_level(ctx, table, series)
    return long_exogenous(ctx, table, ts, day_available(ctx, ts), series, ctx.src.entity or "")


def _refuse_trends_level(ctx: LoadContext, table: pa.Table, series: dict[str, str]) -> None:
    """Refuse a Google Trends level (a ``google_trends`` file's term column, or a ``Search Volume``)."""
    trends = "google_trends" in file_stem(ctx.path).lower() or {"trend_relative_diff", "trend_log_return"} & set(table.column_names)
    level = [c for c in series.values() if c.lower() in TRENDS_COLUMNS or (trends and not c.startswith("trend"))]
    if trends and level:
        ctx.fail(
            f"column {level[0]!r} is a Google Trends level, scaled by the provider over the whole file's "
            "window, so a past value depends on later data (look-ahead); use format: google_trends (or social for "
            "the btc_social files), which rescale it causally (options to accept the look-ahead explicitly), or "
            "leave it out with series: [...]"
        )


def load_fred(ctx: LoadContext) -> pa.Table:
    """FRED download (``observation_date, <SERIES>``); empty cells on holidays are missing."""
    return _load(ctx, "observation_date", "")


def load_fear_greed(ctx: LoadContext) -> pa.Table:
    """alternative.me Crypto Fear & Greed (``fear_greed_index``, derived ``fear_greed_log_return``)."""
    return _load(ctx, "date", "")


def trends_entity(ctx: LoadContext) -> str:
    m = re.search(r"_([A-Za-z0-9]+)$", file_stem(ctx.path))
    return m.group(1).upper() if m else ""


class TrendsOptions(StrictModel):
    """``level``: ``causal`` rescaling of the search-term level, or ``raw_lookahead`` (see above)."""

    level: Literal["causal", "raw_lookahead"] = "causal"
    anchor_days: int = Field(default=30, ge=1)


def causal_rescale(values: np.ndarray, anchor: int) -> np.ndarray:
    """``values`` divided by the mean of their first ``anchor`` finite values, using at row t
    only the finite values up to t (expanding until ``anchor`` exist): a constant scale factor
    cancels and no value depends on a later one. Rows before the first non-zero anchor are NaN."""
    v = np.asarray(values, dtype=np.float64)
    fin = np.isfinite(v)
    count = np.cumsum(fin)
    total = np.cumsum(np.where(fin, v, 0.0))
    # anchor mean: expanding while fewer than `anchor` finite values, then frozen
    frozen_at = np.flatnonzero(count >= anchor)
    if len(frozen_at):
        k = int(frozen_at[0])
        total[k:] = total[k]
        count[k:] = count[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        out = v / mean
    out[~np.isfinite(out)] = np.nan
    return out


def load_google_trends(ctx: LoadContext) -> pa.Table:
    """Google Trends daily interest (``date, <term>, trend_relative_diff, trend_log_return``)."""
    opts = ctx.options(TrendsOptions)
    table = read_any(ctx)
    tcol, ts = event_time(ctx, table, "date")

    def rename(c: str) -> str:
        return c if c.startswith("trend") else "trend"

    terms = [c for c in table.column_names if c not in (tcol, ROW_COLUMN) and not c.startswith("trend") and c.lower() not in TIME_CANDIDATES]
    if len(terms) > 1 and not ctx.src.columns:
        ctx.fail(f"several search-term columns {terms}; map one with columns: {{trend: <column>}}")
    series = select_series(ctx, table, tcol, rename)
    level = series.get("trend")
    if level is not None and opts.level == "causal":
        table = _rescale_column(ctx, table, ts, level, opts.anchor_days)
    out = long_exogenous(ctx, table, ts, day_available(ctx, ts), series, ctx.src.entity or trends_entity(ctx))
    if level is not None and opts.level == "raw_lookahead":
        ctx.report.add("lookahead", 1, None, f"{level!r} keeps the provider's whole-window scaling", "marked look-ahead")
    return out


def _rescale_column(ctx: LoadContext, table: pa.Table, ts: np.ndarray, name: str, anchor: int) -> pa.Table:
    """``table`` with column ``name`` rescaled causally (:func:`causal_rescale`, in time order)."""
    order = np.argsort(ts, kind="stable")
    raw = to_float64(column(table, name, ctx, name), name, ctx).to_numpy(zero_copy_only=False)
    scaled = np.empty_like(raw)
    scaled[order] = causal_rescale(raw[order], anchor)
    ctx.report.add("causal_rescale", 1, None, f"{name!r} divided by its first {anchor} days' mean (provider scaling is look-ahead)", "rescaled")
    return table.set_column(table.schema.get_field_index(name), name, pa.array(scaled))


# Social-data columns that are Google Trends levels (pytrends "Search Volume", stitched and scaled
# over the whole download window), and the series names the social loader gives them.
TRENDS_COLUMNS = ("search volume", "search_volume")
SOCIAL_TRENDS_SERIES = ["search_volume", "google_trends"]


def lookahead_series(src: "SourceConfig") -> list[str]:
    """Series a source declares look-ahead (Google Trends levels read with ``level: raw_lookahead``)."""
    if src.format == "google_trends" and src.options.get("level") == "raw_lookahead":
        return ["trend"]
    if src.format == "social" and src.options.get("trends_level") == "raw_lookahead":
        return list(SOCIAL_TRENDS_SERIES)
    return []


class SocialOptions(StrictModel):
    """``trends_level``: a Google Trends search-volume column is rescaled ``causal``-ly (default) or
    kept with the provider's scaling and marked look-ahead (``raw_lookahead``), as for Google Trends."""

    trends_level: Literal["causal", "raw_lookahead"] = "causal"
    anchor_days: int = Field(default=30, ge=1)


def social_name(path_stem: str) -> str:
    return re.sub(r"^(direct|indirect)__", "", path_stem)


def load_social(ctx: LoadContext) -> pa.Table:
    """btc_social_2014_2021 sentiment / volume / index CSVs.

    Its Google Trends ``Search Volume`` (in ``indirect__google_trends.csv`` and
    ``final_dataset.csv``) is scaled by the provider over the whole window: rescaled causally
    unless ``options.trends_level: raw_lookahead`` (then marked look-ahead)."""
    opts = ctx.options(SocialOptions)
    table = read_any(ctx)
    tcol, ts = event_time(ctx, table, None)
    for c in [c for c in table.column_names if c.lower() in TRENDS_COLUMNS]:
        if opts.trends_level == "causal":
            table = _rescale_column(ctx, table, ts, c, opts.anchor_days)
        else:
            ctx.report.add("lookahead", 1, None, f"{c!r} keeps the provider's whole-window scaling", "marked look-ahead")
    value_cols = [c for c in table.column_names if c not in (tcol, ROW_COLUMN)]
    stem = social_name(file_stem(ctx.path))

    def rename(c: str) -> str:
        return snake(stem) if len(value_cols) == 1 else snake(c)

    series = select_series(ctx, table, tcol, rename)
    return long_exogenous(ctx, table, ts, day_available(ctx, ts), series, ctx.src.entity or "")
