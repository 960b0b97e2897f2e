"""Summaries of data files and configured sources (``dea data inspect``).

For every dataset: the instrument (or series and entity), time range, rows, median step, gaps
longer than 1.5 x that step (count and longest), the share of missing values, depth-sequence
gaps for book data, and the validation report. ``inspect_path`` recognises each file by name and
columns (:mod:`dea.data.loaders.detect`), loads it with *reporting* policies (sort unsorted rows,
keep the last of duplicates, report gaps and NaNs, report sequence gaps) so that every problem
is listed instead of the first one stopping the scan, skips non-data files with a note and lists
unrecognised files; a file that still cannot be read is listed with the error, never crashes the
scan. ``inspect_config`` loads the sources exactly as configured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dea.data.config import SourceConfig
from dea.data.loaders.detect import Detection, detect
from dea.data.sources import LoadResult, load_source
from dea.data.validate import KEY_COLUMNS, VALUE_COLUMNS, ValidationReport
from dea.errors import DeaError
from dea.timeutil import format_duration, iso

if TYPE_CHECKING:  # pragma: no cover
    from dea.config.experiment import ExperimentConfig

GAP_FACTOR = 1.5
# Value columns whose NaN share is shown (structural NaNs such as close-only bars' open are not).
SHOWN_VALUES = {
    "bars": ("close",),
    "trades": ("price", "size"),
    "quotes": ("bid_price", "ask_price"),
    "book": ("price", "size"),
    "funding": ("rate",),
    "mark": ("mark_price", "index_price"),
    "open_interest": ("open_interest",),
    "exogenous": ("value",),
    "option_chain": ("mark_price", "underlying_price"),
}


@dataclass
class SeriesSummary:
    """One instrument (or one entity's exogenous series) of one dataset."""

    dataset: str
    format: str
    kind: str
    key: str
    rows: int
    start: str | None
    end: str | None
    median_step: str | None
    gaps: int
    max_gap: str | None
    nan_share: float
    seq_gaps: int | None = None
    n_series: int = 1


@dataclass
class DatasetEntry:
    """A file or configured source and what became of it."""

    dataset: str
    path: str
    status: str  # "loaded", "refused", "skipped", "unrecognised"
    format: str | None = None
    kind: str | None = None
    note: str = ""
    fingerprint: str | None = None
    summaries: list[SeriesSummary] = field(default_factory=list)
    report: ValidationReport | None = None


@dataclass
class Inspection:
    entries: list[DatasetEntry] = field(default_factory=list)

    @property
    def loaded(self) -> list[DatasetEntry]:
        return [e for e in self.entries if e.status == "loaded"]

    def to_dict(self) -> dict[str, Any]:
        out = []
        for e in self.entries:
            d = asdict(e)
            d["report"] = e.report.to_dict() if e.report else None
            out.append(d)
        return {"datasets": out}

    def format(self, detail: bool = False) -> str:
        return format_inspection(self, detail)


def human_duration(ns: int) -> str:
    """``5m`` for exact multiples, else 3 significant digits in the largest fitting unit."""
    exact = format_duration(ns)
    if not exact.endswith(("ns", "us")) or ns < 1_000_000:
        return exact
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6)):
        if ns >= size:
            return f"{ns / size:.3g}{unit}"
    return exact


def _codes(table: pa.Table, cols: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Integer group code per row and a label per code."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64), []
    keys = [table[c].to_numpy(zero_copy_only=False).astype(object) for c in cols]
    joined = keys[0] if len(keys) == 1 else np.array([f"{a}@{b}" if b else str(a) for a, b in zip(*keys)], dtype=object)
    labels, codes = np.unique(joined.astype(str), return_inverse=True)
    return codes.astype(np.int64), [str(x) for x in labels]


def _stats(ts: np.ndarray, values: list[np.ndarray]) -> tuple[int | None, int, int | None, float]:
    ts = np.sort(ts)
    d = np.diff(ts)
    d = d[d > 0]
    step = int(np.median(d)) if len(d) else None
    gaps = int((d > GAP_FACTOR * step).sum()) if step else 0
    max_gap = int(d.max()) if len(d) else None
    cells = sum(len(v) for v in values)
    nan = sum(int(np.isnan(v).sum()) for v in values)
    return step, gaps, max_gap, (nan / cells if cells else 0.0)


def summarize(table: pa.Table, kind: str, dataset: str, fmt: str, report: ValidationReport | None, by_series: bool = False) -> list[SeriesSummary]:
    """Per-instrument (per-entity for exogenous, per-underlying for an option chain; per-series or
    per-option with ``by_series``) summaries."""
    key_cols = KEY_COLUMNS[kind]
    if kind == "exogenous" and not by_series:
        key_cols = ("entity",)
    if kind == "option_chain" and not by_series:
        key_cols = ("underlying",)  # one line per chain, not one per listed option
    codes, labels = _codes(table, key_cols)
    ts_all = table["ts_event"].to_numpy()
    shown = [c for c in SHOWN_VALUES[kind] if c in VALUE_COLUMNS[kind]]
    vals_all = {c: table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in shown}
    # a column entirely missing by construction (e.g. mark_price of an index-only file) is not shown
    vals_all = {c: v for c, v in vals_all.items() if len(v) == 0 or not np.isnan(v).all()} or vals_all
    seq_gaps = report.count("sequence_gap") if (report is not None and kind == "book") else None
    series_codes, series_names = None, []
    if kind == "exogenous":
        series_codes, series_names = _codes(table, ("series",))
    out: list[SeriesSummary] = []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for idx in np.split(order, bounds) if len(order) else []:
        code = int(codes[idx[0]])
        ts = ts_all[idx]
        if series_codes is not None and not by_series:
            # one entity, many series: step/gaps judged per series, then combined
            sc = series_codes[idx]
            steps, gaps, maxg = [], 0, []
            for s in np.unique(sc):
                st, g, mg, _ = _stats(ts[sc == s], [])
                if st:
                    steps.append(st)
                gaps += g
                if mg:
                    maxg.append(mg)
            _, _, _, nan_share = _stats(ts, [v[idx] for v in vals_all.values()])
            step = int(np.median(steps)) if steps else None
            max_gap = max(maxg) if maxg else None
            n_series = int(len(np.unique(sc)))
        else:
            step, gaps, max_gap, nan_share = _stats(ts, [v[idx] for v in vals_all.values()])
            n_series = 1
        label = labels[code]
        if kind == "exogenous" and not by_series:
            entity = label or "(global)"
            label = f"{entity}: {n_series} series" if n_series > 1 else f"{series_names[int(series_codes[idx[0]])]} @ {entity}"
        out.append(
            SeriesSummary(
                dataset=dataset, format=fmt, kind=kind, key=label, rows=len(idx),
                start=iso(int(ts.min())), end=iso(int(ts.max())),
                median_step=human_duration(step) if step else None, gaps=gaps,
                max_gap=human_duration(max_gap) if max_gap else None, nan_share=round(nan_share, 6),
                seq_gaps=seq_gaps, n_series=n_series,
            )
        )
    return out


def _reporting(src: SourceConfig) -> SourceConfig:
    """The same source with policies that report instead of refusing (for scanning)."""
    update: dict[str, Any] = {
        "unsorted_policy": "sort",
        "duplicate_policy": "keep_last",
        "gap_policy": "report",
        "nan_policy": "keep",
    }
    return src.model_copy(update=update)


def _entry_from_result(name: str, fmt: str, res: LoadResult, by_series: bool, note: str = "") -> DatasetEntry:
    if res.table.num_rows == 0:
        # loaded, but nothing in it (a header-only file): listed as refused, never as a dataset
        return DatasetEntry(name, res.path, "refused", fmt, res.kind, note=f"{res.path}: no data rows (a header only); nothing to load")
    return DatasetEntry(
        dataset=name, path=res.path, status="loaded", format=fmt, kind=res.kind, note=note,
        fingerprint=res.fingerprint, summaries=summarize(res.table, res.kind, name, fmt, res.report, by_series),
        report=res.report,
    )


def inspect_file(det: Detection, by_series: bool = False) -> list[DatasetEntry]:
    path = det.path
    if det.status != "data":
        status = "skipped" if det.status == "skip" else "unrecognised"
        return [DatasetEntry(path.name, str(path), status, note=det.note)]
    out = []
    for kind in det.kinds:
        name = path.name if len(det.kinds) == 1 else f"{path.name} [{kind}]"
        src = SourceConfig(name=path.name.split(".")[0] or "file", kind=kind, format=det.format or "", path=str(path.resolve()), options=det.options)
        try:
            res = load_source(_reporting(src), path.parent)
        except DeaError as exc:
            out.append(DatasetEntry(name, str(path), "refused", det.format, kind, note=str(exc)))
            continue
        out.append(_entry_from_result(name, det.format or "", res, by_series, det.note))
    return out


def inspect_path(path: str | Path, by_series: bool = False) -> Inspection:
    """Recognise and summarise every file under ``path`` (a file or a folder, recursively)."""
    path = Path(path)
    if not path.exists():
        from dea.errors import DataError

        raise DataError(f"{path}: no such file or folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    result = Inspection()
    for f in files:
        result.entries.extend(inspect_file(detect(f), by_series))
    if path.is_file():
        # a file named on its own that DEA cannot read is refused (exit 2), not merely listed
        for e in result.entries:
            if e.status == "unrecognised":
                e.status, e.note = "refused", f"{path}: not recognised as a data file: {e.note}"
    return result


def inspect_config(cfg: "ExperimentConfig", by_series: bool = False) -> Inspection:
    """Load every configured source as configured and summarise it (refusals are listed)."""
    result = Inspection()
    for src in cfg.data.sources:
        try:
            res = load_source(src, cfg.base_dir)
        except DeaError as exc:
            result.entries.append(DatasetEntry(src.name, src.path, "refused", src.format, src.kind, note=str(exc)))
            continue
        result.entries.append(_entry_from_result(src.name, src.format, res, by_series))
    return result


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)


def format_inspection(ins: Inspection, detail: bool = False) -> str:
    rows: list[list[str]] = []
    for e in ins.loaded:
        for s in e.summaries:
            rows.append([
                e.dataset[:48], s.kind, s.key[:36], (s.start or "-")[:19], (s.end or "-")[:19], f"{s.rows:,}",
                s.median_step or "-", f"{s.gaps}" + (f" (max {s.max_gap})" if s.gaps else ""),
                f"{100 * s.nan_share:.2f}%", "-" if s.seq_gaps is None else str(s.seq_gaps),
            ])
    parts = []
    if rows:
        parts.append(format_table(rows, ["dataset", "kind", "instrument/series", "start", "end", "rows", "step", "gaps>1.5x", "NaN", "seq gaps"]))
    detected = [e for e in ins.loaded if e.note]
    if detected:
        parts.append("\ndetected:")
        parts.extend(f"  {e.dataset}: {e.format} -> {e.kind} ({e.note})" for e in detected)
    reports = [e for e in ins.loaded if e.report and (e.report.issues if not detail else True)]
    if reports:
        parts.append("\nvalidation:")
        for e in reports:
            parts.append(f"[{e.dataset}] " + e.report.format())  # type: ignore[union-attr]
    for status, title in (("refused", "refused (exit status 2)"), ("unrecognised", "unrecognised"), ("skipped", "skipped")):
        items = [e for e in ins.entries if e.status == status]
        if items:
            parts.append(f"\n{title}:")
            parts.extend(f"  {e.dataset}: {e.note}" for e in items)
    if not parts:
        return "no data files found"
    return "\n".join(parts)
