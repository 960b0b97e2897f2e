"""Load one configured source: pick its loader by ``format``, validate, fingerprint.

``load_source(src, base_dir)`` is the one entry point the store, the panel and the CLI use. The
result's ``fingerprint`` is a SHA-256 over the bytes of every file read and the options that
shape the table (format, kind, columns, timestamp convention, step, lag, policies, ...), so the
same file loaded the same way always has the same fingerprint and anything that could change
the table changes it. (The source's ``name`` and ``path`` are not part of it: moving a file does
not change its data.)

A ``path`` that is a folder loads every data file in it (sorted by name, non-data files such as
LICENSE/README skipped) with the same loader and concatenates the tables, e.g. a folder of
Coin Metrics assets as one exogenous table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dea.data.config import SourceConfig
from dea.data.loaders import binance_files, binance_mark, bybit, coinmetrics, daily, funding, futures, ohlcv, tardis, vendor
from dea.data.loaders import options_chain
from dea.data.loaders.context import LoadContext
from dea.data.schema import SCHEMAS, conform
from dea.data.validate import ROW_COLUMN, ValidationReport, validate_table
from dea.errors import ConfigError, DataError

# Bump when a loader's output for the same input changes, so stored fingerprints are renewed.
LOADER_VERSION = 2

Loader = Callable[[LoadContext], pa.Table]


@dataclass(frozen=True)
class LoaderSpec:
    """A file format: the function that reads it and the table kinds it can produce."""

    load: Loader
    kinds: frozenset[str]
    description: str


LOADERS: dict[str, LoaderSpec] = {
    "ohlcv": LoaderSpec(ohlcv.load_ohlcv, frozenset({"bars"}), "OHLCV bars from CSV / feather / Parquet"),
    "freqtrade": LoaderSpec(
        futures.load_freqtrade_futures, frozenset({"bars", "funding", "mark", "exogenous"}),
        "freqtrade OHLCV (date = bar open UTC); futures funding_rate / mark / index / premiumIndex candles",
    ),
    "binance_funding": LoaderSpec(
        futures.load_binance_funding, frozenset({"funding", "mark"}), "Binance funding history (REST JSON / CSV)"
    ),
    "binance_klines": LoaderSpec(
        futures.load_binance_klines, frozenset({"bars", "mark", "exogenous"}), "Binance kline CSV with or without header, or REST kline JSON (trades / mark / index / premium index)"
    ),
    "bitmex_funding": LoaderSpec(funding.load_bitmex_funding, frozenset({"funding"}), "BitMEX funding history"),
    "deribit_funding": LoaderSpec(
        funding.load_deribit_funding, frozenset({"funding", "mark"}), "Deribit hourly funding (interest_1h) and index"
    ),
    "bitmex_prices": LoaderSpec(
        funding.load_bitmex_prices, frozenset({"mark", "trades"}), "BitMEX trades at funding times (price_data.csv)"
    ),
    "funding": LoaderSpec(funding.load_funding, frozenset({"funding"}), "generic funding-rate CSV"),
    "tardis_trades": LoaderSpec(tardis.load_tardis_trades, frozenset({"trades"}), "Tardis trades CSV"),
    "tardis_quotes": LoaderSpec(tardis.load_tardis_quotes, frozenset({"quotes"}), "Tardis quotes CSV"),
    "tardis_book_snapshot": LoaderSpec(
        tardis.load_tardis_book_snapshot, frozenset({"book"}), "Tardis book_snapshot_N CSV"
    ),
    "tardis_incremental_l2": LoaderSpec(
        tardis.load_tardis_incremental_l2, frozenset({"book"}), "Tardis incremental_book_L2 CSV"
    ),
    "binance_trades": LoaderSpec(binance_files.load_binance_trades, frozenset({"trades"}), "Binance trades Parquet/CSV"),
    "binance_quotes": LoaderSpec(binance_files.load_binance_quotes, frozenset({"quotes"}), "Binance quotes Parquet/CSV"),
    "binance_depth_csv": LoaderSpec(
        binance_files.load_binance_depth_csv, frozenset({"book"}), "Binance depth snapshot / update CSV"
    ),
    "bybit_ob": LoaderSpec(bybit.load_bybit_ob, frozenset({"book"}), "Bybit orderbook.N JSON lines (zip)"),
    "coinmetrics": LoaderSpec(
        coinmetrics.load_coinmetrics, frozenset({"bars", "exogenous"}), "Coin Metrics daily CSV per asset"
    ),
    "binance_mark_stream": LoaderSpec(
        binance_mark.load_mark_stream, frozenset({"mark", "funding"}), "markPriceUpdate messages of a Binance websocket capture"
    ),
    "open_interest": LoaderSpec(
        vendor.load_open_interest, frozenset({"open_interest"}), "exchange open-interest history (Binance / Bybit dumps)"
    ),
    "date_data": LoaderSpec(
        vendor.load_date_data, frozenset({"exogenous", "open_interest"}), "vendor Date,Data export (one metric per file)"
    ),
    "fear_greed": LoaderSpec(daily.load_fear_greed, frozenset({"exogenous"}), "Crypto Fear & Greed index"),
    "google_trends": LoaderSpec(daily.load_google_trends, frozenset({"exogenous"}), "Google Trends daily"),
    "social": LoaderSpec(daily.load_social, frozenset({"exogenous"}), "social sentiment / volume (btc_social)"),
    "fred": LoaderSpec(daily.load_fred, frozenset({"exogenous"}), "FRED daily series"),
    "daily": LoaderSpec(daily.load_daily, frozenset({"exogenous"}), "generic daily exogenous CSV"),
    "deribit_ticker": LoaderSpec(
        options_chain.load_deribit_ticker_source, frozenset({"option_chain"}), "Deribit public-ticker option chain dump"
    ),
    "tardis_options_chain": LoaderSpec(
        options_chain.load_tardis_options_chain_source, frozenset({"option_chain"}), "Tardis options_chain CSV"
    ),
    "deribit_dvol": LoaderSpec(
        options_chain.load_deribit_dvol_source, frozenset({"exogenous"}), "Deribit DVOL daily index (Date,DVOL)"
    ),
}
# Formats read by other parts of DEA, imported lazily (they may be absent while DEA is built).
EXTERNAL_FORMATS: dict[str, str] = {
    "binance_ws": "dea.data.loaders.binance_ws.load_capture",
    "hyperliquid": "dea.data.loaders.hyperliquid.load_capture",
    "sim": "dea.sim.tables.sim_tables",
}

# Non-data files found in data folders.
NON_DATA_NAMES = ("license", "licence", "readme", "notice", "copying", "sources.tsv", "metrics.csv")


@dataclass(frozen=True)
class LoadResult:
    """A validated canonical table of ``kind``, what validation found, and its content hash."""

    table: pa.Table
    report: ValidationReport
    fingerprint: str
    source: str = ""
    kind: str = ""
    path: str = ""


def formats() -> list[str]:
    return sorted([*LOADERS, *EXTERNAL_FORMATS])


def is_non_data(path: Path) -> bool:
    name = path.name.lower()
    return name.startswith(NON_DATA_NAMES) or name.endswith((".md", ".txt", ".rst", ".py", ".json", ".yaml", ".yml")) or name.startswith(".")


def resolve(src: SourceConfig, base_dir: Path) -> Path:
    p = Path(src.path).expanduser()
    return p if p.is_absolute() else (Path(base_dir) / p)


def options_json(src: SourceConfig) -> str:
    """Canonical JSON of everything but name and path that shapes the loaded table."""
    d = src.model_dump(mode="json", exclude={"name", "path", "max_staleness"})
    d["loader_version"] = LOADER_VERSION
    return json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint_files(files: list[Path], src: SourceConfig) -> str:
    """SHA-256 over each file's bytes (streamed) and the loader options."""
    h = hashlib.sha256()
    for f in files:
        h.update(b"\0file\0")
        try:
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise DataError(f"{f}: cannot read file: {exc}") from None
    h.update(b"\0options\0" + options_json(src).encode())
    return h.hexdigest()


def source_files(src: SourceConfig, base_dir: Path) -> list[Path]:
    """The files a source reads (one, or the data files of a folder)."""
    path = resolve(src, base_dir)
    if not path.exists():
        raise DataError(f"source {src.name!r}: file not found: {path}")
    if path.is_dir():
        files = data_files(path)
        if not files:
            raise DataError(f"source {src.name!r}: folder {path} holds no data files")
        return files
    return [path]


def source_fingerprint(src: SourceConfig, base_dir: Path) -> str:
    """The fingerprint :func:`load_source` would return, computed without loading (hash only)."""
    if src.format == "sim":
        return _sim_fingerprint(src)
    return fingerprint_files(source_files(src, base_dir), src)


def combine_fingerprints(fingerprints: dict[str, str]) -> str:
    """One fingerprint for several datasets (``{dataset: fingerprint}``), order-independent."""
    h = hashlib.sha256()
    for key in sorted(fingerprints):
        h.update(f"{key}={fingerprints[key]}\n".encode())
    return h.hexdigest()


def _sim_fingerprint(src: SourceConfig) -> str:
    return hashlib.sha256(b"sim\0" + options_json(src).encode()).hexdigest()


def _import(dotted: str) -> Callable:
    import importlib

    module, _, attr = dotted.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise ConfigError(f"format needs {module}, which is not available in this installation") from None
        raise
    fn = getattr(mod, attr, None)
    if fn is None:
        raise ConfigError(f"format needs {dotted}, which {module} does not provide")
    return fn


def select_rows(table: pa.Table, src: SourceConfig, origin: str) -> pa.Table:
    """Keep the rows a source asks for from a multi-instrument producer (simulator, captures):
    its ``instrument``, and for exogenous tables its ``entity`` and ``series``."""
    import pyarrow.compute as pc

    if src.instrument and "instrument" in table.column_names:
        table = table.filter(pc.equal(table["instrument"], src.instrument))
        if table.num_rows == 0:
            raise DataError(f"{origin}: source {src.name!r}: no rows for instrument {src.instrument!r}")
    if src.kind == "exogenous":
        if src.entity is not None:
            table = table.filter(pc.equal(table["entity"], src.entity))
        if src.series is not None:
            present = set(pc.unique(table["series"]).to_pylist())
            missing = [s for s in src.series if s not in present]
            if missing:
                raise DataError(f"{origin}: source {src.name!r}: series {missing} not produced; available {sorted(present)}")
            table = table.filter(pc.is_in(table["series"], value_set=pa.array(src.series, pa.string())))
    return table


def _report_from_metadata(table: pa.Table, report: ValidationReport) -> None:
    """Findings a capture reader attaches to its table as schema metadata:
    ``dea.report.<rule>`` = count (``dea.sequence_gaps`` is ``sequence_gap``)."""
    meta = table.schema.metadata or {}
    capture = meta.get(b"dea.capture_report")
    if capture:
        # Capture readers summarise the whole file; the problems among those counts become rules.
        try:
            counts = json.loads(capture)
        except ValueError:
            counts = {}
        for rule in ("sequence_gaps", "resyncs", "crossed_books", "ticker_mismatches", "stale_diffs_dropped", "gap_markers"):
            count = counts.get(rule)
            if isinstance(count, int) and count:
                name = "sequence_gap" if rule == "sequence_gaps" else rule
                report.add(name, count, None, "reported by the capture reader", "reported")
    for key, value in meta.items():
        k = key.decode(errors="replace")
        rule = "sequence_gap" if k == "dea.sequence_gaps" else (k[len("dea.report."):] if k.startswith("dea.report.") else None)
        if rule is None:
            continue
        try:
            count = int(value.decode())
        except ValueError:
            continue
        if count:
            report.add(rule, count, None, "reported by the capture reader", "reported")


def _load_file(path: Path, src: SourceConfig, report: ValidationReport) -> pa.Table:
    if src.format in EXTERNAL_FORMATS:
        fn = _import(EXTERNAL_FORMATS[src.format])
        table = fn(path, src.kind, src.instrument, dict(src.options))
        if not isinstance(table, pa.Table):
            raise DataError(f"{path}: the {src.format} reader returned {type(table).__name__}, not a table")
        _report_from_metadata(table, report)
        table = select_rows(conform(src.kind, table, str(path)), src, str(path))
        table = table.append_column(ROW_COLUMN, pa.array(range(table.num_rows), pa.int64()))
        return validate_table(table, src.kind, src, report, str(path), lambda i: f"row {i}")
    spec = LOADERS[src.format]
    ctx = LoadContext(path=path, src=src, report=report, kind=src.kind)
    try:
        raw = spec.load(ctx)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    return validate_table(raw, src.kind, src, report, str(path), ctx.where, ctx.nan_exempt)


def data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not is_non_data(p))


def skipped_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and is_non_data(p))


def load_source(src: SourceConfig, base_dir: Path) -> LoadResult:
    """Load, validate and fingerprint one source (file or folder of files)."""
    if src.format not in LOADERS and src.format not in EXTERNAL_FORMATS:
        raise ConfigError(f"source {src.name!r}: unknown format {src.format!r}; known formats: {formats()}")
    if src.kind not in SCHEMAS:
        raise ConfigError(f"source {src.name!r}: unknown kind {src.kind!r}")
    if src.format in LOADERS and src.kind not in LOADERS[src.format].kinds:
        raise ConfigError(
            f"source {src.name!r}: format {src.format!r} produces {sorted(LOADERS[src.format].kinds)}, not {src.kind!r}"
        )
    if src.format == "sim":
        return _load_sim(src)
    path = resolve(src, base_dir)
    files = source_files(src, base_dir)
    before = fingerprint_files(files, src)
    report = ValidationReport(src.name, str(path))
    if path.is_dir():
        skipped = skipped_files(path)
        if skipped:
            report.add("skipped_file", len(skipped), None, f"not data files: {', '.join(skipped)}", "not loaded")
        tables = []
        for f in files:
            sub = ValidationReport(src.name, str(f))
            tables.append(_load_file(f, src, sub))
            for issue in sub.issues:
                where = f"{f.name} {issue.first_row}" if issue.first_row else f.name
                report.add(issue.rule, issue.count, where, issue.detail, issue.action)
            report.rows_in += sub.rows_in
            report.rows_out += sub.rows_out
        table = pa.concat_tables(tables)
    else:
        table = _load_file(path, src, report)
    # hash after loading and compare with a hash taken before: a file rewritten while it was
    # being read would otherwise be stored under a fingerprint that is not its content's
    fingerprint = fingerprint_files(files, src)
    if fingerprint != before:
        raise DataError(f"source {src.name!r}: {path} changed while it was being loaded; load it again")
    return LoadResult(table, report, fingerprint, src.name, src.kind, str(path))


def _load_sim(src: SourceConfig) -> LoadResult:
    fn = _import(EXTERNAL_FORMATS["sim"])
    tables = fn(dict(src.options))
    if src.kind not in tables:
        raise DataError(f"source {src.name!r}: the simulator produced {sorted(tables)}, not {src.kind!r}")
    table = select_rows(conform(src.kind, tables[src.kind], f"sim:{src.name}"), src, f"sim:{src.name}")
    report = ValidationReport(src.name, "sim")
    table = table.append_column(ROW_COLUMN, pa.array(range(table.num_rows), pa.int64()))
    table = validate_table(table, src.kind, src, report, f"sim:{src.name}", lambda i: f"row {i}")
    return LoadResult(table, report, _sim_fingerprint(src), src.name, src.kind, "sim")
