"""Option chain snapshots: Deribit public-ticker dumps and Tardis ``options_chain`` CSVs.

Both become one table of :data:`OPTION_CHAIN_SCHEMA` (one row per instrument per poll), so the
greeks checks, the marks of :mod:`dea.backtest.options_overlay` and anything downstream are
agnostic to the source. Conventions, checked or converted here rather than trusted downstream:

- ``instrument`` is parsed (:func:`dea.options.contracts.parse_option_name`) into underlying,
  expiry, strike, right, multiplier and premium currency; where the file also states expiry,
  strike or type (the 2020 dump, Tardis) they must agree with the name, or the row is refused.
- prices (``mark_price``, ``bid_price``, ``ask_price``) stay in the premium currency (the coin
  for Deribit's inverse options); ``underlying_price`` is the forward the option prices off.
- volatilities are converted from percent to fractions. Deribit writes ``0`` for the bid/ask
  price and IV of an empty side of the book; those become NaN (reported as ``empty_quote``), never
  a zero price.
- greeks are the exchange's own, per one unit of underlying (delta per coin, vega per vol point,
  theta per day), NaN where the file has none.
- times: ``ts_event`` is the exchange timestamp; ``available_at`` is Tardis's ``local_timestamp``
  (receive time) and, for Deribit dumps that carry no receive time, ``ts_event + publication_lag``.

Formats: ``deribit_ticker`` (flattened ``greeks.delta`` columns, 2021 dumps, or ``greeks`` /
``stats`` Python-dict strings, 2020 dump); ``tardis_options_chain`` (Tardis's documented columns
``exchange, symbol, timestamp, local_timestamp, type, strike_price, expiration, open_interest,
last_price, bid_price, bid_amount, bid_iv, ask_price, ask_amount, ask_iv, mark_price, mark_iv,
underlying_index, underlying_price, delta, gamma, vega, theta, rho``; µs times, IVs in percent).
The chain is the store kind ``option_chain`` (:mod:`dea.data.schema`) and DVOL an ``exogenous``
series (``dvol``, entity the coin), so all three formats are ``data.sources`` formats that ``dea data
ingest`` validates and stores like any other (``format: deribit_ticker | tardis_options_chain``
with ``kind: option_chain``, options ``multipliers`` / ``interest_rate``; ``format: deribit_dvol``
with ``kind: exogenous`` and ``entity: BTC``). The path-based functions below are the same
readers for callers that hold a file (the overlay backtest, the greeks checks).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from pydantic import Field

from dea.config.base import StrictModel
from dea.data.config import SourceConfig
from dea.data.loaders.build import canonical
from dea.data.loaders.coerce import to_float64, to_ns
from dea.data.loaders.context import LoadContext, NoOptions
from dea.data.loaders.tabular import column, read_any
from dea.data.schema import SCHEMAS
from dea.data.validate import ValidationReport
from dea.errors import ConfigError, DataFormatError
from dea.options.black76 import OptionError
from dea.options.contracts import parse_option_names
from dea.timeutil import parse_duration

OPTION_CHAIN_SCHEMA = SCHEMAS["option_chain"]
_GREEKS = ("delta", "gamma", "vega", "theta")


def _context(path: Path, fmt: str, lag: str, kind: str = "option_chain") -> LoadContext:
    """A load context for the path-based readers (no ``data.sources`` entry behind them)."""
    src = SourceConfig(name=path.name, kind=kind, format=fmt, path=str(path), publication_lag=lag)
    return LoadContext(path=path, src=src, report=ValidationReport(source=path.name, path=str(path)), kind=kind)


class ChainOptions(StrictModel):
    """``options`` of a chain source: ``multipliers`` (underlying -> units per contract, for
    underlyings :mod:`dea.options.contracts` does not know) and, for Tardis (which has no rate
    column), the venue's ``interest_rate``."""

    multipliers: dict[str, float] = Field(default_factory=dict)
    interest_rate: float = 0.0


def _num(table: pa.Table, name: str, ctx: LoadContext) -> np.ndarray:
    return to_float64(column(table, name, ctx), name, ctx).to_numpy(zero_copy_only=False)


def _empty_side(ctx: LoadContext, price: np.ndarray, iv: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Deribit's ``0`` price / ``0`` IV for an empty side of the book -> NaN (reported)."""
    empty = ~(price > 0)
    n = int(np.sum(empty & np.isfinite(price)))
    if n:
        ctx.report.add("empty_quote", n, ctx.where(int(np.argmax(empty))), f"no {side} in the book (price 0)", "set to NaN")
    return np.where(empty, np.nan, price), np.where(empty | ~(iv > 0), np.nan, iv / 100.0)


def _contracts(ctx: LoadContext, names: pa.ChunkedArray, multipliers: Mapping[str, float] | None):  # noqa: ANN202
    if names.null_count:
        ctx.fail("instrument name is empty", row=int(np.argmax(names.is_null().to_numpy(zero_copy_only=False))))
    values = names.to_pylist()
    try:
        return parse_option_names(values, "deribit", multipliers)
    except OptionError as exc:
        bad = next(i for i, v in enumerate(values) if _fails(v, multipliers))
        raise DataFormatError(f"{ctx.file}, {ctx.where(bad)}: {exc}") from None


def _contract_columns(c) -> dict[str, object]:  # noqa: ANN001 (the parsed contracts of _contracts)
    """The contract-term columns every chain layout writes, from the parsed instrument names."""
    return {"instrument": c.name, "underlying": c.underlying, "expiry_ns": c.expiry_ns, "strike": c.strike,
            "is_call": c.is_call, "multiplier": c.multiplier, "premium_currency": c.premium_currency}


def _fails(name: str, multipliers: Mapping[str, float] | None) -> bool:
    try:
        parse_option_names([name], "deribit", multipliers)
    except OptionError:
        return True
    return False


def _agree(ctx: LoadContext, what: str, stated: np.ndarray, parsed: np.ndarray) -> None:
    bad = stated != parsed
    if bad.any():
        i = int(np.argmax(bad))
        ctx.fail(f"{what} {stated[i].item()!r} disagrees with the instrument name ({parsed[i].item()!r})", row=i)


def _right(ctx: LoadContext, table: pa.Table, name: str) -> np.ndarray:
    text = np.array([str(v).lower() for v in column(table, name, ctx).to_pylist()], dtype=object)
    bad = ~np.isin(text, ["call", "put"])
    if bad.any():
        ctx.fail(f"column {name!r} must be 'call' or 'put', not {text[int(np.argmax(bad))]!r}", row=int(np.argmax(bad)))
    return text == "call"


def _dict_column(ctx: LoadContext, table: pa.Table, name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Values from a column of Python-dict strings (``"{'delta': 0.5, ...}"``); missing -> NaN."""
    out = {k: np.full(table.num_rows, np.nan) for k in keys}
    for i, cell in enumerate(column(table, name, ctx).to_pylist()):
        if cell is None:
            continue
        try:
            d = ast.literal_eval(cell)
        except (ValueError, SyntaxError):
            ctx.fail(f"column {name!r} is not a dict literal: {str(cell)[:60]!r}", row=i)
        if not isinstance(d, dict):
            ctx.fail(f"column {name!r} is not a dict literal: {str(cell)[:60]!r}", row=i)
        for k in keys:
            v = d.get(k)
            if v is not None:
                out[k][i] = float(v)
    return out


def _table(cols: dict[str, object], n: int) -> pa.Table:
    arrays = []
    for f in OPTION_CHAIN_SCHEMA:
        v = cols[f.name]
        arr = pa.array(v if not isinstance(v, np.ndarray) or v.dtype != object else v.tolist())
        arrays.append(arr.cast(f.type) if arr.type != f.type else arr)
    table = pa.Table.from_arrays(arrays, schema=OPTION_CHAIN_SCHEMA)
    order = np.lexsort((table["instrument"].to_numpy(zero_copy_only=False), table["ts_event"].to_numpy()))
    return table.take(pa.array(order)) if n else table


def load_deribit_ticker(path: str | Path, *, publication_lag: str = "0s", multipliers: Mapping[str, float] | None = None) -> tuple[pa.Table, ValidationReport]:
    """A Deribit public-ticker dump (one row per instrument per poll) as an option-chain table."""
    ctx = _context(Path(path), "deribit_ticker", publication_lag)
    cols, n = _ticker_columns(ctx, multipliers)
    ctx.report.rows_in = ctx.report.rows_out = n
    return _table(cols, n), ctx.report


def load_deribit_ticker_source(ctx: LoadContext) -> pa.Table:
    """``format: deribit_ticker`` (kind ``option_chain``) for ``data.sources`` / ``dea data ingest``."""
    o = ctx.options(ChainOptions)
    if o.interest_rate:
        ctx.fail("option interest_rate applies to tardis_options_chain; the Deribit ticker has its own column", cls=ConfigError)
    cols, n = _ticker_columns(ctx, o.multipliers or None)
    return canonical("option_chain", cols, np.arange(n, dtype=np.int64))


def _ticker_columns(ctx: LoadContext, multipliers: Mapping[str, float] | None) -> tuple[dict[str, object], int]:
    table = read_any(ctx)
    c = _contracts(ctx, column(table, "instrument_name", ctx, "instrument"), multipliers)
    ts = to_ns(column(table, "timestamp", ctx, "exchange time"), "timestamp", "ms", ctx)
    if "greeks.delta" in table.column_names:
        greeks = {k: _num(table, f"greeks.{k}", ctx) for k in _GREEKS}
    elif "greeks" in table.column_names:
        greeks = _dict_column(ctx, table, "greeks", _GREEKS)
    else:
        ctx.fail("no exchange greeks: neither 'greeks.delta' ... columns nor a 'greeks' column")
    if "expiration_timestamp" in table.column_names:
        _agree(ctx, "expiration_timestamp", to_ns(column(table, "expiration_timestamp", ctx), "expiration_timestamp", "ms", ctx), c.expiry_ns)
    if "strike" in table.column_names:
        _agree(ctx, "strike", _num(table, "strike", ctx), c.strike)
    if "option_type" in table.column_names:
        _agree(ctx, "option_type", _right(ctx, table, "option_type"), c.is_call)
    bid, bid_iv = _empty_side(ctx, _num(table, "best_bid_price", ctx), _num(table, "bid_iv", ctx), "bid")
    ask, ask_iv = _empty_side(ctx, _num(table, "best_ask_price", ctx), _num(table, "ask_iv", ctx), "ask")
    cols = {
        "ts_event": ts,
        "available_at": ts + ctx.lag_ns,
        **_contract_columns(c),
        "underlying_price": _num(table, "underlying_price", ctx),
        "index_price": _num(table, "index_price", ctx),
        "interest_rate": _num(table, "interest_rate", ctx),
        "mark_price": _num(table, "mark_price", ctx),
        "mark_iv": _num(table, "mark_iv", ctx) / 100.0,
        "bid_price": bid,
        "ask_price": ask,
        "bid_iv": bid_iv,
        "ask_iv": ask_iv,
        "open_interest": _num(table, "open_interest", ctx),
        **greeks,
    }
    return cols, table.num_rows


def load_tardis_options_chain(
    path: str | Path, *, interest_rate: float = 0.0, multipliers: Mapping[str, float] | None = None
) -> tuple[pa.Table, ValidationReport]:
    """A Tardis ``options_chain`` CSV (plain or gzip). Tardis has no rate column: ``interest_rate``
    is the venue's (Deribit prices its options at 0) and is written into every row."""
    ctx = _context(Path(path), "tardis_options_chain", "0s")
    cols, n = _tardis_columns(ctx, interest_rate, multipliers)
    ctx.report.rows_in = ctx.report.rows_out = n
    return _table(cols, n), ctx.report


def load_tardis_options_chain_source(ctx: LoadContext) -> pa.Table:
    """``format: tardis_options_chain`` (kind ``option_chain``) for ``data.sources``."""
    o = ctx.options(ChainOptions)
    if ctx.lag_ns:
        ctx.fail("Tardis rows carry their receive time (local_timestamp); publication_lag does not apply", cls=ConfigError)
    cols, n = _tardis_columns(ctx, o.interest_rate, o.multipliers or None)
    return canonical("option_chain", cols, np.arange(n, dtype=np.int64))


def _tardis_columns(ctx: LoadContext, interest_rate: float, multipliers: Mapping[str, float] | None) -> tuple[dict[str, object], int]:
    table = read_any(ctx)
    c = _contracts(ctx, column(table, "symbol", ctx, "instrument"), multipliers)
    ts = to_ns(column(table, "timestamp", ctx, "exchange time"), "timestamp", "us", ctx)
    local = to_ns(column(table, "local_timestamp", ctx, "receive time"), "local_timestamp", "us", ctx)
    _agree(ctx, "expiration", to_ns(column(table, "expiration", ctx), "expiration", "us", ctx), c.expiry_ns)
    _agree(ctx, "strike_price", _num(table, "strike_price", ctx), c.strike)
    _agree(ctx, "type", _right(ctx, table, "type"), c.is_call)
    bid, bid_iv = _empty_side(ctx, _num(table, "bid_price", ctx), _num(table, "bid_iv", ctx), "bid")
    ask, ask_iv = _empty_side(ctx, _num(table, "ask_price", ctx), _num(table, "ask_iv", ctx), "ask")
    n = table.num_rows
    cols = {
        "ts_event": ts,
        "available_at": local,
        **_contract_columns(c),
        "underlying_price": _num(table, "underlying_price", ctx),
        "index_price": np.full(n, np.nan),
        "interest_rate": np.full(n, float(interest_rate)),
        "mark_price": _num(table, "mark_price", ctx),
        "mark_iv": _num(table, "mark_iv", ctx) / 100.0,
        "bid_price": bid,
        "ask_price": ask,
        "bid_iv": bid_iv,
        "ask_iv": ask_iv,
        "open_interest": _num(table, "open_interest", ctx),
        **{k: _num(table, k, ctx) for k in _GREEKS},
    }
    return cols, n


def load_deribit_dvol(path: str | Path, *, publication_lag: str = "0s") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deribit DVOL daily settlements (``Date,DVOL`` in percent, any row order) as sorted arrays
    ``(ts_event, available_at, iv)``: ``ts_event`` is the day's open (00:00 UTC), the value is
    known at the day's close plus ``publication_lag``, ``iv`` is a fraction. Duplicated days and
    non-positive or missing values are refused."""
    ctx = _context(Path(path), "deribit_dvol", publication_lag, kind="exogenous")
    ts, iv = _dvol_rows(ctx)
    return ts, ts + parse_duration("1d") + ctx.lag_ns, iv


def load_deribit_dvol_source(ctx: LoadContext) -> pa.Table:
    """``format: deribit_dvol`` (kind ``exogenous``, ``entity`` the coin; without it, the one of
    BTC/ETH the file name names, reported): series ``dvol``, a fraction, stamped by the day's open
    and known at its close plus ``publication_lag``."""
    ctx.options(NoOptions)
    entity = ctx.src.entity
    if not entity:  # Deribit publishes DVOL for BTC and ETH: a file named for one of them says which
        coins = [t.upper() for t in re.split(r"[-_.]", ctx.path.name.lower()) if t in ("btc", "eth")]
        if len(coins) != 1:
            ctx.fail("a DVOL source needs 'entity' (the coin whose implied volatility it is, e.g. BTC)", cls=ConfigError)
        entity = coins[0]
        ctx.report.add("entity_inferred", 1, None, f"entity {entity} taken from the file name", "used")
    ts, iv = _dvol_rows(ctx)
    cols = {"ts_event": ts, "available_at": ts + parse_duration("1d") + ctx.lag_ns, "series": "dvol",
            "entity": entity, "value": iv}
    return canonical("exogenous", cols, np.arange(len(ts), dtype=np.int64))


def _dvol_rows(ctx: LoadContext) -> tuple[np.ndarray, np.ndarray]:
    """Sorted day opens and DVOL fractions; duplicated days and non-positive values refused."""
    table = read_any(ctx)
    ts = to_ns(column(table, "Date", ctx, "date"), "Date", "iso", ctx)
    iv = _num(table, "DVOL", ctx)
    bad = ~(iv > 0)
    if bad.any():
        ctx.fail(f"DVOL must be a positive percentage, not {iv[int(np.argmax(bad))]!r}", row=int(np.argmax(bad)))
    order = np.argsort(ts, kind="stable")
    ts, iv = ts[order], iv[order]
    dup = np.diff(ts) == 0
    if dup.any():
        ctx.fail(f"day {np.datetime64(int(ts[1:][dup][0]), 'ns')} appears more than once", row=int(order[1:][dup][0]))
    return ts, iv / 100.0
