"""Partial coverage, made explicit: missing funding settlements and exogenous series that start
late or end early.

Why: a perpetual whose funding history covers only part of the clock, or a sentiment index that
stops months before the clock does, changes what a policy learns and what a backtest charges.
The panel (:func:`dea.data.panel.assemble_panel`) applies each perpetual's ``funding_missing``
policy only to the settlements its source lacks and records what it did, and records for every
exogenous series how many clock rows have no value (those rows are filled downstream by the
feature set's missing policy). :func:`coverage_report` turns that record into one object the
console table, the MLflow run (:meth:`CoverageReport.metrics`) and the tearsheet
(:meth:`CoverageReport.notes`) all show.

Funding policies (``Instrument.funding_missing``), applied at the settlement instants of the
instrument's interval grid (phase taken from its real settlements) that fall on the clock and
have no real, finite rate within half an interval:

- ``error`` (default): a clock outside the history, or any settlement instant on the clock
  without a real rate, is a :class:`~dea.errors.MissingFundingError` (a short gap is not
  tolerated: uncharged, it would be a silent zero);
- ``impute_median``: the median of the other perpetuals' real rates at the same instant (an
  instant no other perpetual has a real rate for is still an error);
- ``{rate: X}``: the constant X (e.g. the venue's default 0.0001 per 8h);
- ``from_first``: nothing is charged before the first real settlement (rows counted as
  uncharged); after it the history must be complete as under ``error``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dea.errors import MissingFundingError
from dea.timeutil import iso

if TYPE_CHECKING:  # pragma: no cover
    from dea.data.panel import Panel


@dataclass(frozen=True)
class FundingCoverage:
    """One perpetual's funding over the clock: real settlements, imputed ones, uncharged rows
    (``policy`` is the instrument's ``funding_missing``, or ``none`` for ``funding: none``)."""

    instrument: str
    source: str
    policy: str
    settlements: int
    imputed: int
    uncharged_rows: int
    first_real: str | None
    last_real: str | None

    @property
    def imputed_share(self) -> float:
        total = self.settlements + self.imputed
        return self.imputed / total if total else 0.0


@dataclass(frozen=True)
class SeriesCoverage:
    """One exogenous series (``name`` or ``name@entity``) over the clock."""

    series: str
    source: str
    rows: int
    filled_rows: int
    before_start: int
    after_end: int
    first: str | None
    last: str | None

    @property
    def filled_share(self) -> float:
        return self.filled_rows / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class CoverageReport:
    """Everything the panel filled in or left uncharged, by perpetual and by exogenous series."""

    funding: tuple[FundingCoverage, ...] = ()
    exogenous: tuple[SeriesCoverage, ...] = ()
    lookahead: tuple[tuple[str, str], ...] = ()  # (series label, source) kept with vendor whole-window scaling

    def to_dict(self) -> dict[str, Any]:
        return {
            "funding": [{**asdict(f), "imputed_share": round(f.imputed_share, 6)} for f in self.funding],
            "exogenous": [{**asdict(s), "filled_share": round(s.filled_share, 6)} for s in self.exogenous],
            "lookahead": [{"series": k, "source": v} for k, v in self.lookahead],
        }

    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics for an MLflow run (``coverage.funding.<sym>.imputed_share`` ...)."""
        out: dict[str, float] = {}
        for f in self.funding:
            key = _metric_key(f.instrument)
            out[f"coverage.funding.{key}.imputed"] = float(f.imputed)
            out[f"coverage.funding.{key}.imputed_share"] = f.imputed_share
            out[f"coverage.funding.{key}.uncharged_rows"] = float(f.uncharged_rows)
        for s in self.exogenous:
            out[f"coverage.exogenous.{_metric_key(s.series)}.filled_share"] = s.filled_share
        out["coverage.lookahead_series"] = float(len(self.lookahead))
        return out

    def notes(self, min_share: float = 0.0) -> list[str]:
        """One line per perpetual with imputed/uncharged funding and per series with filled rows."""
        lines = []
        for f in self.funding:
            if f.policy == "none":
                lines.append(f"{f.instrument}: declared 'funding: none': no funding charged on any of its {f.uncharged_rows} clock rows")
            elif f.imputed or f.uncharged_rows:
                lines.append(
                    f"{f.instrument}: funding_missing={f.policy}: {f.imputed} of {f.settlements + f.imputed} settlements "
                    f"imputed ({100 * f.imputed_share:.1f} %), {f.uncharged_rows} clock rows uncharged; real history "
                    f"{f.first_real} .. {f.last_real}"
                )
        for s in self.exogenous:
            if s.filled_rows and s.filled_share > min_share:
                lines.append(
                    f"{s.series}: {s.filled_rows} of {s.rows} clock rows without a value ({100 * s.filled_share:.1f} %; "
                    f"{s.before_start} before it starts, {s.after_end} after it ends) -> filled by the missing policy"
                )
        for series, source in self.lookahead:
            lines.append(f"LOOK-AHEAD ACCEPTED: {series} (source {source}) keeps the vendor's whole-window scaling; "
                         "its past values depend on data after them")
        return lines

    def format(self) -> str:
        """Console table of the coverage (every perpetual with funding, every exogenous series)."""
        from dea.data.inspect import format_table

        parts = []
        if self.funding:
            rows = [[f.instrument, f.policy, str(f.settlements), str(f.imputed), f"{100 * f.imputed_share:.1f}%",
                     str(f.uncharged_rows), f"{(f.first_real or '-')[:10]} .. {(f.last_real or '-')[:10]}"] for f in self.funding]
            parts.append(format_table(rows, ["perpetual", "funding_missing", "real", "imputed", "imputed %", "uncharged rows", "real history"]))
        if self.exogenous:
            rows = [[s.series, s.source, f"{100 * s.filled_share:.1f}%", str(s.before_start), str(s.after_end),
                     f"{(s.first or '-')[:10]} .. {(s.last or '-')[:10]}"] for s in self.exogenous]
            parts.append(format_table(rows, ["series", "source", "filled", "rows before start", "rows after end", "available"]))
        if self.lookahead:
            parts.append("look-ahead accepted (vendor whole-window scaling kept): "
                         + ", ".join(f"{k} ({v})" for k, v in self.lookahead))
        return "\n\n".join(parts) if parts else "coverage: complete (no funding or exogenous series)"


def _metric_key(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def coverage_report(panel: "Panel") -> CoverageReport:
    """The coverage the panel recorded while it was built (empty for a panel without any)."""
    cov = panel.report.get("coverage", {}) if isinstance(panel.report, dict) else {}
    funding = tuple(FundingCoverage(**v) for v in cov.get("funding", {}).values())
    exo = tuple(SeriesCoverage(**v) for v in cov.get("exogenous", {}).values())
    look = panel.report.get("lookahead", {}) if isinstance(panel.report, dict) else {}
    return CoverageReport(funding, exo, tuple(sorted(look.items())))


# ---------------------------------------------------------------------------------- funding
def missing_settlements(ts: np.ndarray, clock: np.ndarray, step: int, interval: int) -> np.ndarray:
    """Settlement instants on the interval grid inside (clock[0] - step, clock[-1]] without a real
    settlement within half an interval (the grid's phase is that of the real settlements)."""
    phase = int(np.median(np.mod(ts, interval))) if len(ts) else 0
    lo, hi = int(clock[0]) - step, int(clock[-1])
    k0 = -(-(lo + 1 - phase) // interval)
    grid = phase + interval * np.arange(k0, (hi - phase) // interval + 1, dtype=np.int64)
    if len(ts) == 0 or len(grid) == 0:
        return grid
    pos = np.clip(np.searchsorted(ts, grid), 1, len(ts) - 1) if len(ts) > 1 else np.zeros(len(grid), dtype=np.int64)
    near = np.minimum(np.abs(ts[pos] - grid), np.abs(ts[np.maximum(pos - 1, 0)] - grid))
    return grid[near > interval // 2]


def impute_rates(
    symbol: str, policy: Any, instants: np.ndarray, others: list[tuple[np.ndarray, np.ndarray, int]]
) -> np.ndarray:
    """Rates for ``instants`` under ``policy`` (a constant, or the median of the other perpetuals'
    real rates at each instant; ``others`` are their (sorted ts, rates, interval))."""
    if not isinstance(policy, str):
        return np.full(len(instants), float(policy.rate))
    values = np.full((len(others), len(instants)), np.nan)
    for k, (ts, r, interval) in enumerate(others):
        if len(ts) == 0:
            continue
        pos = np.clip(np.searchsorted(ts, instants), 0, len(ts) - 1)
        prev = np.maximum(pos - 1, 0)
        best = np.where(np.abs(ts[prev] - instants) < np.abs(ts[pos] - instants), prev, pos)
        close = np.abs(ts[best] - instants) <= interval // 2
        values[k, close] = r[best[close]]
    have = np.isfinite(values).any(axis=0) if len(others) else np.zeros(len(instants), dtype=bool)
    if not have.all():
        t = int(instants[int(np.argmax(~have))])
        raise MissingFundingError(
            f"instrument {symbol!r}: funding_missing=impute_median needs another perpetual's real rate at "
            f"{iso(t)} ({int((~have).sum())} settlements have none); use {{rate: X}} or move the clock"
        )
    with np.errstate(all="ignore"):
        return np.nanmedian(values, axis=0)
