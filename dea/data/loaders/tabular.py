"""Read a tabular file (CSV / CSV.gz / feather / Parquet) into an Arrow table, checking its shape.

Parse-level problems are found here, once for every loader:

- UTF-8 byte-order mark at the start of a text file: stripped and reported (``utf8_bom``);
  UTF-16/32 BOMs are refused (DEA reads UTF-8 only).
- duplicated column names: the copies are renamed ``name.1``, ``name.2`` ...; when a copy is
  identical to the first it is reported (``duplicate_column``) and ignored, when it differs the
  column is ambiguous and is refused as soon as a loader asks for it (see :func:`column`).
- ragged rows (a line with more or fewer cells than the header): refused naming the line.

The result carries a ``_row`` column (0-based data-row position) so later rules can name lines.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from dea.data.loaders.context import LoadContext
from dea.data.validate import ROW_COLUMN
from dea.errors import DataFormatError

UTF8_BOM = b"\xef\xbb\xbf"
_FOREIGN_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32-LE",
    b"\x00\x00\xfe\xff": "UTF-32-BE",
    b"\xff\xfe": "UTF-16-LE",
    b"\xfe\xff": "UTF-16-BE",
}
# Cell texts read as "missing" (never as zero).
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "none", "."]

_AMBIGUOUS = "dea.ambiguous_columns"


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip (by magic number, not by name)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file: {exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{path}: corrupt gzip data: {exc}") from None
    return data


def strip_bom(data: bytes, ctx: LoadContext) -> bytes:
    """Remove a UTF-8 BOM (reported); refuse other encodings' BOMs."""
    for bom, name in _FOREIGN_BOMS.items():
        if data.startswith(bom):
            ctx.fail(f"file is {name} encoded (byte-order mark found); DEA reads UTF-8 text only")
    if data.startswith(UTF8_BOM):
        ctx.report.add("utf8_bom", 1, ctx.where(-1) if ctx.line_offset else None, "UTF-8 byte-order mark at start of file", "stripped")
        return data[len(UTF8_BOM):]
    return data


def _header(data: bytes, ctx: LoadContext, delimiter: str) -> list[str]:
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        ctx.fail("header line is not valid UTF-8 text")
    import csv

    try:
        names = next(csv.reader([text], delimiter=delimiter))
    except (csv.Error, StopIteration):
        ctx.fail("cannot parse the header line")
    names = [n.strip() for n in names]
    if not names or all(n == "" for n in names):
        ctx.fail("empty header line: no column names")
    return names


def _dedupe(names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    seen: dict[str, int] = {}
    out: list[str] = []
    copies: dict[str, list[str]] = {}
    for n in names:
        if n in seen:
            seen[n] += 1
            new = f"{n}.{seen[n]}"
            while new in names or new in out:
                seen[n] += 1
                new = f"{n}.{seen[n]}"
            out.append(new)
            copies.setdefault(n, []).append(new)
        else:
            seen[n] = 0
            out.append(n)
    return out, copies


def _resolve_duplicates(table: pa.Table, copies: dict[str, list[str]], ctx: LoadContext) -> pa.Table:
    ambiguous: list[str] = []
    for name, dups in copies.items():
        for d in dups:
            same = table[name].equals(table[d])
            if same:
                ctx.report.add(
                    "duplicate_column", 1, ctx.where(-1) if ctx.line_offset else None,
                    f"column {name!r} appears more than once with identical values", "ignored the copy",
                )
                table = table.drop_columns([d])
            else:
                ambiguous.append(name)
                ctx.report.add(
                    "duplicate_column", 1, ctx.where(-1) if ctx.line_offset else None,
                    f"column {name!r} appears more than once with different values", "refused if used",
                )
    if ambiguous:
        meta = dict(table.schema.metadata or {})
        meta[_AMBIGUOUS.encode()] = ",".join(sorted(set(ambiguous))).encode()
        table = table.replace_schema_metadata(meta)
    return table


def read_csv(ctx: LoadContext, delimiter: str = ",", data: bytes | None = None, column_names: list[str] | None = None) -> pa.Table:
    """Parse a CSV file (optionally gzip'd) with vectorised pyarrow.csv; types are inferred.

    ``column_names``: the file has no header line and its columns are these (row 0 is line 1).
    """
    raw = read_bytes(ctx.path) if data is None else data
    raw = strip_bom(raw, ctx)
    if not raw.strip():
        ctx.fail("file is empty")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(f"{ctx.path}, line {line}: not UTF-8 text (byte {raw[exc.start]:#04x})") from None
    if column_names is None:
        names, copies = _dedupe(_header(raw, ctx, delimiter))
    else:
        names, copies = list(column_names), {}
        ctx.line_offset = 1
    bad_line: list[int | None] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_line.append(row.number)
        return "error"

    def parse(as_text: list[str]) -> pa.Table:
        return pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=0 if column_names else 1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                null_values=NULL_VALUES, strings_can_be_null=True, quoted_strings_can_be_null=True,
                column_types={n: pa.string() for n in as_text},
            ),
        )

    try:
        table = parse([])
        # pyarrow converts ISO text with offsets to UTC silently, even when the offsets differ
        # between rows: such columns are re-read as text so the timestamp rules can see them
        with_offsets = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz]
        if with_offsets:
            table = parse(with_offsets)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        msg = str(exc).splitlines()[0][:300]
        where = f", line {bad_line[0]}" if bad_line and bad_line[0] is not None else ""
        raise DataFormatError(f"{ctx.path}{where}: not a well-formed CSV file: {msg}") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{ctx.path}: not UTF-8 text: {exc}") from None
    table = table.append_column(ROW_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    if copies:
        table = _resolve_duplicates(table, copies, ctx)
    return table


def read_binary_table(ctx: LoadContext) -> pa.Table:
    """Read a feather (Arrow IPC) or Parquet file; rows are named ``row N``."""
    ctx.line_offset = None
    path = ctx.path
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file: {exc}") from None
    try:
        if magic[:4] == b"PAR1":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif magic[:6] == b"ARROW1" or path.suffix == ".feather":
            import pyarrow.feather as feather

            table = feather.read_table(path)
        else:
            raise DataFormatError(f"{path}: neither Parquet nor feather (Arrow IPC) data")
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{path}: cannot read table: {str(exc)[:300]}") from None
    names, copies = _dedupe(list(table.column_names))
    if copies:
        table = table.rename_columns(names)
    table = table.append_column(ROW_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    if copies:
        table = _resolve_duplicates(table, copies, ctx)
    return table


def read_any(ctx: LoadContext) -> pa.Table:
    """CSV (plain or gzip) unless the file is Parquet/feather by magic number or suffix."""
    if ctx.path.suffix.lower() in (".feather", ".parquet", ".arrow", ".ipc"):
        return read_binary_table(ctx)
    try:
        with ctx.path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataFormatError(f"{ctx.path}: cannot read file: {exc}") from None
    if magic[:4] == b"PAR1" or magic[:6] == b"ARROW1":
        return read_binary_table(ctx)
    return read_csv(ctx)


def column(table: pa.Table, name: str, ctx: LoadContext, what: str | None = None) -> pa.ChunkedArray:
    """A column by file name, refusing a missing or ambiguous (duplicated, differing) one."""
    if name not in table.column_names:
        shown = [c for c in table.column_names if c != ROW_COLUMN]
        role = f" (for {what})" if what else ""
        ctx.fail(f"column {name!r}{role} not found; the file has columns {shown}")
    meta = table.schema.metadata or {}
    amb = meta.get(_AMBIGUOUS.encode(), b"").decode().split(",")
    if name in amb:
        ctx.fail(f"column {name!r} appears more than once with different values; cannot tell which to use")
    return table[name]


def first_present(table: pa.Table, candidates: list[str]) -> str | None:
    """The first of ``candidates`` that is a column of ``table`` (case-sensitive, then not)."""
    for c in candidates:
        if c in table.column_names:
            return c
    lower = {c.lower(): c for c in table.column_names}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None
