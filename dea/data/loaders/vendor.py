"""Open interest and single-metric vendor exports.

- ``open_interest``: exchange open-interest dumps -> the ``open_interest`` kind. Binance REST
  ``/futures/data/openInterestHist`` (JSON list or CSV: ``symbol, sumOpenInterest,
  sumOpenInterestValue, timestamp``), data.binance.vision ``*-metrics-*.csv`` (``create_time,
  symbol, sum_open_interest, sum_open_interest_value, ...``), Bybit ``openInterest, timestamp``,
  or any table with an ``open_interest`` / ``oi`` column (map others with ``columns``).
- ``date_data``: the two-column ``Date,Data`` layout of on-chain data vendors, one metric per
  file. As ``exogenous`` the series is named by the file (``btc_active_addresses.csv`` ->
  ``btc_active_addresses``; ``series: [name]`` renames it) with ``entity`` from the source; as
  ``open_interest`` the value is the open interest of the source's ``instrument``.

Time: a configured ``step`` means each value describes the period starting at its stamp, so it
is available at ``ts + step + publication_lag``; without it, a file whose stamps are all
midnights is read as daily values (step 1d, reported as ``step_inferred``; weekly or monthly
dates get their spacing, see :func:`dea.data.loaders.daily.dated_period`) and any other file
as snapshots, available at ``ts + publication_lag``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dea.data.loaders.build import canonical, file_stem, nan_array
from dea.data.loaders.coerce import event_time, to_float64
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.daily import snake
from dea.data.loaders.funding import instrument_of
from dea.data.loaders.futures import read_rest_or_table
from dea.data.loaders.tabular import column, first_present
from dea.data.validate import ROW_COLUMN
from dea.timeutil import NS_PER_DAY, parse_duration

OI_COLUMNS = ["open_interest", "sumOpenInterest", "sum_open_interest", "openInterest", "oi"]
OI_VALUE_COLUMNS = ["open_interest_value", "sumOpenInterestValue", "sum_open_interest_value", "openInterestValue"]
OI_TIME = ["timestamp", "create_time", "time", "date", "datetime", "ts"]


def _period(ctx: LoadContext, ts: np.ndarray) -> int:
    """The period a value describes (0 for snapshots), see the module docstring."""
    if ctx.src.step is not None:
        return parse_duration(ctx.src.step)
    if len(ts) and np.all(np.mod(ts, NS_PER_DAY) == 0):
        from dea.data.loaders.daily import dated_period

        period = dated_period(ctx, ts)
        if period == NS_PER_DAY:
            ctx.report.add("step_inferred", 1, None, "every stamp is a midnight: daily values, available at the day's end", "used")
        return period
    return 0


def _oi_table(ctx: LoadContext, table: pa.Table, ts: np.ndarray, oi: pa.Array, value: pa.Array, instrument: str | pa.Array) -> pa.Table:
    at = ts + _period(ctx, ts)
    cols = {"ts_event": ts, "available_at": at + ctx.lag_ns, "instrument": instrument, "open_interest": oi, "open_interest_value": value}
    return canonical("open_interest", cols, table[ROW_COLUMN])


def load_open_interest(ctx: LoadContext) -> pa.Table:
    """Exchange open-interest history (REST JSON / CSV / metrics CSV)."""
    ctx.options(NoOptions)
    table = read_rest_or_table(ctx)
    _, ts = event_time(ctx, table, None, candidates=OI_TIME)
    ocol = ctx.src.columns.get("open_interest") or first_present(table, OI_COLUMNS)
    if ocol is None:
        ctx.fail(f"no open-interest column (one of {OI_COLUMNS}); map it with columns: {{open_interest: <column>}}")
    oi = to_float64(column(table, ocol, ctx, "open interest"), ocol, ctx)
    vcol = ctx.src.columns.get("open_interest_value") or first_present(table, OI_VALUE_COLUMNS)
    if vcol is None:
        ctx.nan_exempt.add("open_interest_value")
        value = nan_array(table.num_rows)
    else:
        value = to_float64(column(table, vcol, ctx, "open interest value"), vcol, ctx)
    return _oi_table(ctx, table, ts, oi, value, instrument_of(ctx, table, file_stem(ctx.path).split("-")[0]))


def _date_data_columns(ctx: LoadContext, table: pa.Table) -> tuple[str, str]:
    cols = [c for c in table.column_names if c != ROW_COLUMN]
    tcol = ctx.src.timestamp.column or first_present(table, ["Date"])
    vcol = ctx.src.columns.get("value") or first_present(table, ["Data", "Value"])
    if tcol is None or vcol is None or len(cols) != 2:
        ctx.fail(f"expected the two columns Date,Data (found {cols[:6]})")
    return tcol, vcol  # type: ignore[return-value]


def load_date_data(ctx: LoadContext) -> pa.Table:
    """A vendor ``Date,Data`` file: one metric, named by the file."""
    from dea.data.loaders.tabular import read_any

    ctx.options(NoOptions)
    table = read_any(ctx)
    tcol, vcol = _date_data_columns(ctx, table)
    if not ctx.src.timestamp.column:
        ctx.src = ctx.src.model_copy(update={"timestamp": ctx.src.timestamp.model_copy(update={"column": tcol})})
    _, ts = event_time(ctx, table)
    value = to_float64(column(table, vcol, ctx, "value"), vcol, ctx)
    if ctx.kind == "open_interest":
        ctx.nan_exempt.add("open_interest_value")  # a Date,Data export has no notional column
        return _oi_table(ctx, table, ts, value, nan_array(table.num_rows), instrument_of(ctx, table, file_stem(ctx.path).split("-")[0]))
    series = ctx.src.series[0] if ctx.src.series else snake(file_stem(ctx.path))
    if ctx.src.series and len(ctx.src.series) != 1:
        ctx.fail(f"a Date,Data file holds one metric; series lists {ctx.src.series}")
    at = ts + _period(ctx, ts)
    cols = {"ts_event": ts, "available_at": at + ctx.lag_ns, "series": series, "entity": ctx.src.entity or "", "value": value}
    return canonical("exogenous", cols, table[ROW_COLUMN])
