"""What a loader is given: the file, its source config, the report to write findings into.

Every loader is a function ``load(ctx: LoadContext) -> pa.Table`` returning the canonical columns
of ``ctx.kind`` plus a ``_row`` column (each row's 0-based position among the file's data rows),
so that :func:`dea.data.validate.validate_table` can name the offending line of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeVar

from pydantic import ValidationError

from dea.config.base import StrictModel
from dea.data.config import SourceConfig
from dea.data.validate import ValidationReport
from dea.errors import ConfigError, DataError, DataFormatError
from dea.timeutil import parse_duration

M = TypeVar("M", bound=StrictModel)


class NoOptions(StrictModel):
    """Loaders without options still reject unknown option keys."""


@dataclass
class LoadContext:
    """One load of one file.

    ``line_offset``: how a data-row index maps to a position in the file: text files with a
    header use 2 (row 0 is line 2), JSON lines 1, binary tables ``None`` (rows are named
    ``row N``). ``nan_exempt``: value columns that are missing by construction for this source.
    """

    path: Path
    src: SourceConfig
    report: ValidationReport
    kind: str
    line_offset: int | None = 2
    nan_exempt: set[str] = field(default_factory=set)

    @property
    def file(self) -> str:
        return str(self.path)

    def where(self, row: int) -> str:
        """Human name of data row ``row`` (0-based) as found in the file."""
        if self.line_offset is None:
            return f"row {row}"
        return f"line {row + self.line_offset}"

    def fail(self, problem: str, row: int | None = None, cls: type[DataError] = DataFormatError) -> NoReturn:
        loc = "" if row is None else f", {self.where(row)}"
        raise cls(f"{self.file}{loc}: {problem}")

    def options(self, model: type[M]) -> M:
        """Validate ``src.options`` against the loader's options model (unknown keys refused)."""
        try:
            return model.model_validate(self.src.options)
        except ValidationError as exc:
            msgs = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<options>'}: "
                + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
                for e in exc.errors()
            )
            raise ConfigError(f"source {self.src.name!r} (format {self.src.format}): bad options: {msgs}") from None

    @property
    def lag_ns(self) -> int:
        return parse_duration(self.src.publication_lag)

    def column(self, canonical: str, default: str | None) -> str | None:
        """File column for a canonical field: ``src.columns`` mapping wins over the default."""
        return self.src.columns.get(canonical, default)
