"""Canonical table schemas (Parquet via pyarrow). Every row carries ``ts_event`` and
``available_at`` (int64 ns UTC, see DESIGN.md). Loaders and the simulator both emit these, so
everything downstream is agnostic to where data came from.

- bars:      stamped by bar **open**; ``available_at = open + step + lag``.
- trades:    ``side`` is the aggressor: +1 buy, -1 sell (0 unknown).
- quotes:    top of book.
- book:      L2 rows; ``is_snapshot`` rows (one block per snapshot, same ``seq``) reset the
             book; others are deltas where ``size == 0`` deletes the level. ``side`` +1 bid, -1 ask.
- funding:   ``ts_event`` is the settlement instant; ``rate`` is the fraction paid by longs
             per settlement (positive: longs pay shorts).
- mark:      mark and index prices.
- open_interest: contracts open at ``ts_event`` (``open_interest``, in base units or contracts as
             the venue reports them) and their notional in the quote currency
             (``open_interest_value``, NaN when the source has none).
- exogenous: long format, one value per (series, entity, ts_event); ``entity`` is the asset the
             series describes ("" for global series such as Fear & Greed or DGS10). Deribit's
             DVOL index is one (series ``dvol``, entity the coin, value a fraction).
- option_chain: one row per option per chain snapshot (Deribit ticker dumps, Tardis
             ``options_chain``): contract terms parsed from the instrument name, marks, quotes and
             IVs (fractions) in the premium currency, the exchange's greeks per unit of
             underlying (:mod:`dea.data.loaders.options_chain`).
"""

from __future__ import annotations

import pyarrow as pa

from dea.errors import DataError

_TIME = [pa.field("ts_event", pa.int64(), nullable=False), pa.field("available_at", pa.int64(), nullable=False)]

SCHEMAS: dict[str, pa.Schema] = {
    "bars": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("open", pa.float64()),
            pa.field("high", pa.float64()),
            pa.field("low", pa.float64()),
            pa.field("close", pa.float64()),
            pa.field("volume", pa.float64()),
        ]
    ),
    "trades": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("price", pa.float64()),
            pa.field("size", pa.float64()),
            pa.field("side", pa.int8()),
            pa.field("trade_id", pa.int64()),
        ]
    ),
    "quotes": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("bid_price", pa.float64()),
            pa.field("bid_size", pa.float64()),
            pa.field("ask_price", pa.float64()),
            pa.field("ask_size", pa.float64()),
        ]
    ),
    "book": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("seq", pa.int64()),
            pa.field("side", pa.int8()),
            pa.field("price", pa.float64()),
            pa.field("size", pa.float64()),
            pa.field("is_snapshot", pa.bool_()),
        ]
    ),
    "funding": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("rate", pa.float64()),
            pa.field("interval_ns", pa.int64()),
        ]
    ),
    "mark": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("mark_price", pa.float64()),
            pa.field("index_price", pa.float64()),
        ]
    ),
    "open_interest": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("open_interest", pa.float64()),
            pa.field("open_interest_value", pa.float64()),
        ]
    ),
    "exogenous": pa.schema(
        _TIME
        + [
            pa.field("series", pa.string(), nullable=False),
            pa.field("entity", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
        ]
    ),
    "option_chain": pa.schema(
        _TIME
        + [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("underlying", pa.string(), nullable=False),
            pa.field("expiry_ns", pa.int64(), nullable=False),
            pa.field("strike", pa.float64(), nullable=False),
            pa.field("is_call", pa.bool_(), nullable=False),
            pa.field("multiplier", pa.float64(), nullable=False),
            pa.field("premium_currency", pa.string(), nullable=False),
        ]
        + [pa.field(name, pa.float64()) for name in (
            "underlying_price", "index_price", "interest_rate", "mark_price", "mark_iv", "bid_price", "ask_price",
            "bid_iv", "ask_iv", "open_interest", "delta", "gamma", "vega", "theta")]
    ),
}


def conform(kind: str, table: pa.Table, source: str = "<table>") -> pa.Table:
    """Cast ``table`` to the canonical schema of ``kind``, or raise naming the missing column."""
    if kind not in SCHEMAS:
        raise DataError(f"{source}: unknown table kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    schema = SCHEMAS[kind]
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise DataError(f"{source}: {kind} table lacks columns {missing}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{source}: cannot cast to the canonical {kind} schema: {exc}") from None
