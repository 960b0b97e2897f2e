"""``data`` section of an experiment config: instruments, sources and the decision clock."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dea.config.base import StrictModel, duration_field
from dea.instruments import Instrument

TableKind = Literal["bars", "funding", "trades", "quotes", "book", "mark", "open_interest", "exogenous", "option_chain"]


class TimestampConvention(StrictModel):
    """How a file stamps its rows.

    ``unit``: ``iso`` for text dates in any common style (ISO 8601, dotted or slashed dates,
    non-zero-padded parts, day-first where a row proves it; text or numbers that are epochs get
    their unit from their magnitude), or the epoch unit (``s``, ``ms``, ``us``, ``ns``).
    ``format``: strptime codes (``%d.%m.%Y %H:%M``) to read text dates exactly as written.
    See :mod:`dea.data.loaders.timeparse`.
    ``stamp``: for bars, whether the stamp is the bar ``open`` or ``close`` time (canonical tables
    are stamped by open; values become available at close).
    """

    column: str | None = None
    unit: Literal["iso", "s", "ms", "us", "ns"] = "iso"
    format: str | None = Field(default=None, min_length=2)
    stamp: Literal["open", "close"] = "open"


class SourceConfig(StrictModel):
    """One input file (or folder) and how to read it.

    ``format`` selects a loader from :mod:`dea.data.loaders` (``freqtrade``, ``ohlcv``,
    ``coinmetrics``, ``fear_greed``, ``google_trends``, ``social``, ``fred``, ``daily``, ``date_data``,
    ``open_interest``, ``binance_funding``, ``binance_klines``, ``binance_mark_stream``,
    ``bitmex_funding``, ``deribit_funding``, ``funding``, ``tardis_trades``, ``tardis_quotes``,
    ``tardis_book_snapshot``, ``tardis_incremental_l2``, ``binance_ws``, ``binance_depth_csv``,
    ``deribit_ticker`` / ``tardis_options_chain`` (kind ``option_chain``), ``deribit_dvol`` (kind
    ``exogenous``), ``sim``). Loader-specific settings go in ``options``; each loader validates them and rejects
    unknown keys.
    """

    name: str = Field(min_length=1)
    kind: TableKind
    format: str
    path: str
    instrument: str | None = Field(default=None, description="instrument these rows belong to")
    entity: str | None = Field(
        default=None, description="for exogenous series: the asset they describe (None = global)"
    )
    columns: dict[str, str] = Field(default_factory=dict, description="canonical name -> file column")
    timestamp: TimestampConvention = Field(default_factory=TimestampConvention)
    step: str | None = Field(default=None, description="native sampling step, e.g. '5m', '1d'")
    publication_lag: str = "0s"
    max_staleness: str | None = Field(
        default=None, description="as-of join forward-fill limit; older values become NaN"
    )
    max_gap_steps: float = Field(default=3.0, gt=1.0)
    gap_policy: Literal["error", "report"] = "report"
    duplicate_policy: Literal["error", "keep_last", "keep_first"] = "error"
    unsorted_policy: Literal["error", "sort"] = "sort"
    nan_policy: Literal["error", "keep", "drop"] = "keep"
    series: list[str] | None = Field(default=None, description="exogenous columns to keep")
    options: dict[str, Any] = Field(default_factory=dict)

    _dur = duration_field("step", "publication_lag", "max_staleness")


class ClockConfig(StrictModel):
    """The decision clock: a decision is taken every ``step`` between ``start`` and ``end``."""

    step: str = "1d"
    start: str | None = None
    end: str | None = None
    latency: str = Field(default="0s", description="decision -> execution delay")

    _dur = duration_field("step", "latency")


class DataConfig(StrictModel):
    """Where the data comes from and how it is aligned."""

    store: str = Field(
        default="dea_store",
        description="canonical Parquet store; relative to the config file's folder, like every path in a config",
    )
    instruments: list[Instrument] = Field(min_length=1)
    sources: list[SourceConfig] = Field(min_length=1)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    price_field: Literal["close", "mark", "mid"] = Field(
        default="close",
        description="execution price: bar close, mark price, or the order book's mid (ob.mid, book sources only)",
    )

    @field_validator("instruments")
    @classmethod
    def _unique_symbols(cls, v: list[Instrument]) -> list[Instrument]:
        seen = [i.symbol for i in v]
        dup = {s for s in seen if seen.count(s) > 1}
        if dup:
            raise ValueError(f"duplicated instrument symbols: {sorted(dup)}")
        return v

    @model_validator(mode="after")
    def _references(self) -> "DataConfig":
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicated source names: {sorted(dup)}")
        symbols = {i.symbol for i in self.instruments}
        for s in self.sources:
            if s.instrument is not None and s.instrument not in symbols:
                raise ValueError(f"source {s.name!r} names unknown instrument {s.instrument!r}")
        sim_options = {repr(sorted(s.options.items())) for s in self.sources if s.format == "sim"}
        if len(sim_options) > 1:
            raise ValueError(
                "all 'format: sim' sources must share identical options (one simulated market); "
                "they differ, which would mix bars, funding and exogenous series from different markets"
            )
        for inst in self.instruments:
            if inst.has_funding and inst.funding not in names:
                raise ValueError(
                    f"instrument {inst.symbol!r} takes funding from source {inst.funding!r}, "
                    f"which is not among data.sources {names}"
                )
        return self

    @property
    def symbols(self) -> list[str]:
        return [i.symbol for i in self.instruments]

    def instrument(self, symbol: str) -> Instrument:
        for i in self.instruments:
            if i.symbol == symbol:
                return i
        raise KeyError(symbol)
