"""Coin Metrics community CSVs (one file per asset: ``time`` + ``PriceUSD`` + on-chain metrics).

- kind ``bars``: a close-only daily price series. ``PriceUSD`` dated D is the price as of 00:00
  UTC of D+1, i.e. the close of day D, so the bar is stamped D (its open) and available at
  ``D + 1d + publication_lag``. ``open``/``high``/``low`` are NaN by construction (not a data
  problem, so not counted by the NaN rule); ``volume`` is NaN unless a metric is mapped
  (``columns: {volume: TxTfrValAdjUSD}``). Instrument: ``instrument`` or the asset code
  from the file name (``btc.csv`` -> ``BTC``).
- kind ``exogenous``: every metric (or the ``series`` list) as long rows with ``entity`` = the
  asset code (``entity`` overrides), available at ``D + 1d + publication_lag``.
"""

from __future__ import annotations

import pyarrow as pa

from dea.data.loaders.build import canonical, file_stem, nan_array
from dea.data.loaders.coerce import event_time, to_float64
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.daily import day_available, long_exogenous, select_series
from dea.data.loaders.tabular import column, read_any

KINDS = frozenset({"bars", "exogenous"})


def asset_code(ctx: LoadContext) -> str:
    return file_stem(ctx.path).upper()


def load_coinmetrics(ctx: LoadContext) -> pa.Table:
    ctx.options(NoOptions)
    table = read_any(ctx)
    tcol, ts = event_time(ctx, table, "time")
    available = day_available(ctx, ts)
    if ctx.kind == "exogenous":
        series = select_series(ctx, table, tcol)
        return long_exogenous(ctx, table, ts, available, series, ctx.src.entity or asset_code(ctx))
    n = table.num_rows
    close_col = ctx.src.columns.get("close", "PriceUSD")
    vol_col = ctx.src.columns.get("volume")
    ctx.nan_exempt.update({"open", "high", "low"})
    if vol_col is None:
        ctx.nan_exempt.add("volume")
    cols = {
        "ts_event": ts,
        "available_at": available,
        "instrument": ctx.src.instrument or asset_code(ctx),
        "open": nan_array(n),
        "high": nan_array(n),
        "low": nan_array(n),
        "close": to_float64(column(table, close_col, ctx, "close price"), close_col, ctx),
        "volume": to_float64(column(table, vol_col, ctx, "volume"), vol_col, ctx) if vol_col else nan_array(n),
    }
    return canonical("bars", cols, table["_row"])
