"""The canonical Parquet store: one file per dataset and table kind, plus a manifest.

Layout::

    <root>/manifest.json              {"format": 1, "datasets": {name: {kind: entry}}}
    <root>/<name>/<kind>.parquet      canonical table; schema metadata carries its fingerprint

An entry records the fingerprint (content hash of the source files + loader options), rows,
time range, kind, source path, the validation report and when it was written.

Why it is built this way:

- Idempotent: ingesting a result whose fingerprint is already stored writes nothing
  (``status == "unchanged"``); a changed source replaces its dataset (``"replaced"``).
  :meth:`DataStore.ingest_source` even skips loading when the fingerprint (cheap: a hash of the
  file bytes) matches.
- Crash-safe: every file is written to a temporary name in the same folder, flushed and
  ``os.replace``-d into place, data first, manifest last. A crash leaves either the old or the
  new file, never half of one; a data file newer than the manifest is detected on read (the
  fingerprint in its metadata differs from the manifest's) and re-ingestion repairs it.
- Concurrent writers are serialised with an advisory lock on ``<root>/.lock`` (POSIX).
- Cannot lose data: an empty result is never stored, and replacing a dataset by one with less
  than half its rows, one that ends earlier than the stored data (or starts later without
  ending later: a rolling window may move on), or one that lacks a stored instrument / series
  is refused (:class:`ShrinkRefused`) unless ``allow_shrink``
  is given;
  :meth:`DataStore.ingest_sources` stores the tables that come from one file all or nothing
  (a capture whose book is refused keeps its old trades and quotes too).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dea.data.config import SourceConfig
from dea.data.schema import SCHEMAS
from dea.data.sources import LoadResult, load_source, source_fingerprint
from dea.progress import track
from dea.errors import DataError, DeaError
from dea.timeutil import iso

STORE_FORMAT = 1
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FP_KEY = b"dea.fingerprint"
# Replacing a stored dataset by fewer than this share of its rows needs allow_shrink.
SHRINK_REFUSED_BELOW = 0.5


class ShrinkRefused(DataError):
    """Storing a result would replace a dataset by an empty or much smaller one."""


@dataclass(frozen=True)
class IngestOutcome:
    """What one ingestion did: ``status`` is ``added``, ``replaced`` or ``unchanged``."""

    name: str
    kind: str
    status: str
    rows: int
    fingerprint: str
    path: str


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise DataError(f"dataset name {name!r} is not a safe file name (letters, digits, _ . -)")
    return name


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # Dictionary-encode only the string key columns: trying it on float columns costs ~4x the
        # write time for no size gain on prices.
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        pq.write_table(table, tmp, compression="zstd", use_dictionary=strings)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def store_root(cfg: Any) -> Path:
    """The store folder of an experiment config: ``data.store`` resolved against the config
    file's folder (like every relative path in a config), never against the working directory."""
    return Path(cfg.resolve_path(cfg.data.store))


class DataStore:
    """Canonical Parquet store rooted at ``root`` (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def _read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"format": STORE_FORMAT, "datasets": {}}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.manifest_path}: unreadable store manifest: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
            raise DataError(f"{self.manifest_path}: not a DEA store manifest")
        if data.get("format") != STORE_FORMAT:
            raise DataError(f"{self.manifest_path}: store format {data.get('format')!r}, this DEA reads {STORE_FORMAT}")
        return data

    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest: ``{"format": 1, "datasets": {name: {kind: entry}}}``."""
        return copy.deepcopy(self._read_manifest())

    def entry(self, name: str, kind: str) -> dict[str, Any] | None:
        return self._read_manifest()["datasets"].get(name, {}).get(kind)

    def datasets(self) -> list[tuple[str, str]]:
        return sorted((n, k) for n, kinds in self._read_manifest()["datasets"].items() for k in kinds)

    def fingerprint(self, name: str, kind: str) -> str:
        e = self.entry(name, kind)
        if e is None:
            raise DataError(f"store {self.root}: no dataset {name!r} of kind {kind!r}")
        return str(e["fingerprint"])

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def path_of(self, name: str, kind: str) -> Path:
        return self.root / _check_name(name) / f"{kind}.parquet"

    # -- writing ----------------------------------------------------------------------------
    def _is_current(self, name: str, kind: str, fp: str, manifest: dict[str, Any]) -> bool:
        e = manifest["datasets"].get(name, {}).get(kind)
        if e is None or e.get("fingerprint") != fp:
            return False
        path = self.path_of(name, kind)
        if not path.exists():
            return False
        try:
            meta = pq.read_schema(path).metadata or {}
        except (pa.ArrowException, OSError):
            return False
        return meta.get(_FP_KEY, b"").decode() == fp

    def ingest(self, result: LoadResult, name: str | None = None, allow_shrink: bool = False) -> IngestOutcome:
        """Store ``result`` as dataset ``name`` (default: its source name); no-op if unchanged."""
        return self.ingest_many([(result, name)], allow_shrink)[0]

    def ingest_many(self, results: list[tuple[LoadResult, str | None]], allow_shrink: bool = False) -> list[IngestOutcome]:
        """Store several results together: every check passes before anything is written, and
        the manifest is updated once, so they are stored all or nothing."""
        with self._lock():
            manifest = self._read_manifest()
            plan = []
            for result, name in results:
                name = _check_name(name or result.source)
                if result.kind not in SCHEMAS:
                    raise DataError(f"cannot store table kind {result.kind!r}")
                current = self._is_current(name, result.kind, result.fingerprint, manifest)
                if not current:
                    self._check_shrink(name, result, manifest, allow_shrink)
                plan.append((name, result, current))
            out = []
            for name, result, current in plan:
                kind, path = result.kind, self.path_of(name, result.kind)
                if current:
                    out.append(IngestOutcome(name, kind, "unchanged", result.table.num_rows, result.fingerprint, str(path)))
                    continue
                existed = kind in manifest["datasets"].get(name, {})
                table = result.table.cast(SCHEMAS[kind])
                meta = dict(table.schema.metadata or {})
                meta.update({_FP_KEY: result.fingerprint.encode(), b"dea.kind": kind.encode(), b"dea.dataset": name.encode()})
                atomic_write_parquet(path, table.replace_schema_metadata(meta))
                manifest["datasets"].setdefault(name, {})[kind] = self._entry(result, table, path)
                out.append(IngestOutcome(name, kind, "replaced" if existed else "added", table.num_rows, result.fingerprint, str(path)))
            if any(o.status != "unchanged" for o in out):
                atomic_write_bytes(self.manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
        return out

    def _check_shrink(self, name: str, result: LoadResult, manifest: dict[str, Any], allow_shrink: bool) -> None:
        rows = result.table.num_rows
        old = manifest["datasets"].get(name, {}).get(result.kind)
        old_rows = int(old.get("rows", 0)) if old else 0
        if allow_shrink:
            return
        if rows == 0:
            raise ShrinkRefused(
                f"source {name!r} ({result.path}): the {result.kind} table is empty; refusing to store it"
                + (f" over the {old_rows:,} stored rows" if old_rows else "")
                + " (pass --allow-shrink to store it anyway)"
            )
        if old_rows and rows < SHRINK_REFUSED_BELOW * old_rows:
            raise ShrinkRefused(
                f"source {name!r} ({result.path}): {rows:,} {result.kind} rows would replace {old_rows:,} stored rows "
                f"(less than {SHRINK_REFUSED_BELOW:.0%}); refusing to lose data (pass --allow-shrink to replace it)"
            )
        if old_rows:
            self._check_coverage_kept(name, result, old)

    def _check_coverage_kept(self, name: str, result: LoadResult, old: dict[str, Any]) -> None:
        """A replacement must still cover every stored series over at least its stored time range:
        a file cut short at a line boundary (an interrupted download) is well formed and can keep
        more than half its rows, yet it loses the stored tail."""
        import pyarrow.compute as pc

        from dea.data.validate import KEY_COLUMNS

        new = result.table
        lo, hi = pc.min(new["ts_event"]).as_py(), pc.max(new["ts_event"]).as_py()
        lost = []
        ends_earlier = old.get("end_ns") is not None and hi < int(old["end_ns"])
        moved_on = old.get("end_ns") is not None and hi > int(old["end_ns"])
        # a window that moved forward (a rolling download) may drop its oldest rows; nothing else may
        if old.get("start_ns") is not None and lo > int(old["start_ns"]) and not moved_on:
            lost.append(f"it starts at {iso(lo)}, the stored data at {old['start']}")
        if ends_earlier:
            lost.append(f"it ends at {iso(hi)}, the stored data at {old['end']}")
        keys = KEY_COLUMNS[result.kind]
        try:
            stored = pq.read_table(self.path_of(name, result.kind), columns=list(keys))
        except (pa.ArrowException, OSError):
            stored = None  # an unreadable stored file is replaced (re-ingestion repairs it)
        if stored is not None and stored.num_rows:
            def labels(t: pa.Table) -> set[str]:
                cols = [t[k].to_pylist() for k in keys]
                return {"@".join(str(v) for v in row if v) for row in zip(*cols)}

            gone = sorted(labels(stored) - labels(new.select(list(keys))))
            if gone:
                lost.append(f"it has no rows for {len(gone)} stored series ({', '.join(gone[:5])})")
        if lost:
            raise ShrinkRefused(
                f"source {name!r} ({result.path}): the new {result.kind} table would lose stored data: " + "; ".join(lost)
                + " (pass --allow-shrink to replace it anyway)"
            )

    def _entry(self, result: LoadResult, table: pa.Table, path: Path) -> dict[str, Any]:
        import pyarrow.compute as pc

        rows = table.num_rows
        lo = pc.min(table["ts_event"]).as_py() if rows else None
        hi = pc.max(table["ts_event"]).as_py() if rows else None
        return {
            "fingerprint": result.fingerprint,
            "kind": result.kind,
            "rows": rows,
            "start_ns": lo,
            "end_ns": hi,
            "start": iso(lo) if lo is not None else None,
            "end": iso(hi) if hi is not None else None,
            "source": result.source,
            "source_path": result.path,
            "file": str(path.relative_to(self.root)),
            "report": result.report.to_dict(),
            "ingested_at": iso(time.time_ns()),
        }

    def ingest_source(self, src: SourceConfig, base_dir: Path, allow_shrink: bool = False) -> IngestOutcome:
        """Load and store a configured source, skipping the load when it is already current."""
        out = self.ingest_sources([src], base_dir, allow_shrink)[0]
        if isinstance(out, DeaError):
            raise out
        return out

    def ingest_sources(
        self, sources: list[SourceConfig], base_dir: Path, allow_shrink: bool = False
    ) -> list[IngestOutcome | DeaError]:
        """Ingest sources, those that read the same file(s) together and all or nothing: when one
        of them is refused, the others from that file are not stored either (their error says why).
        Returns, per source in order, its outcome or the error that refused it."""
        from dea.data.sources import source_files

        groups: dict[tuple[str, ...], list[int]] = {}
        for i, src in enumerate(sources):
            try:
                key = tuple(str(f.resolve()) for f in source_files(src, base_dir)) if src.format != "sim" else (f"sim:{src.name}",)
            except DeaError:
                key = (f"missing:{src.name}",)
            groups.setdefault(key, []).append(i)
        out: list[IngestOutcome | DeaError | None] = [None] * len(sources)

        def done(idx: list[int]) -> str:  # the progress line's note, once the group is through
            return ", ".join(f"{sources[i].name} {'refused' if isinstance(out[i], DeaError) else out[i].status}"
                             for i in idx)

        for idx in track(list(groups.values()), "ingest", unit="file", detail=done):
            loaded: dict[int, LoadResult] = {}
            failed: tuple[str, DeaError] | None = None
            for i in idx:
                try:
                    r = self._load_unless_current(sources[i], base_dir)
                except DeaError as exc:
                    out[i] = exc
                    failed = failed or (sources[i].name, exc)
                    continue
                if isinstance(r, IngestOutcome):
                    out[i] = r  # already stored and current: untouched either way
                else:
                    loaded[i] = r
            if failed is not None:
                for i in loaded:
                    out[i] = DataError(f"not stored: {failed[0]!r} from the same file was refused ({failed[1]})")
                continue
            try:
                stored = self.ingest_many([(r, sources[i].name) for i, r in loaded.items()], allow_shrink)
            except DeaError as exc:
                for i in loaded:
                    out[i] = exc
                continue
            for i, o in zip(loaded, stored):
                out[i] = o
        return out  # type: ignore[return-value]

    def _load_unless_current(self, src: SourceConfig, base_dir: Path) -> LoadResult | IngestOutcome:
        fp = source_fingerprint(src, base_dir)
        name = _check_name(src.name)
        if self._is_current(name, src.kind, fp, self._read_manifest()):
            e = self.entry(name, src.kind) or {}
            return IngestOutcome(name, src.kind, "unchanged", int(e.get("rows", 0)), fp, str(self.path_of(name, src.kind)))
        return load_source(src, base_dir)

    # -- reading ----------------------------------------------------------------------------
    def read(self, name: str, kind: str) -> pa.Table:
        """The stored canonical table; refuses one whose file and manifest disagree."""
        e = self.entry(name, kind)
        if e is None:
            raise DataError(f"store {self.root}: no dataset {name!r} of kind {kind!r}; ingest it first")
        path = self.path_of(name, kind)
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: cannot read stored dataset: {exc}") from None
        stored = (table.schema.metadata or {}).get(_FP_KEY, b"").decode()
        if stored != e["fingerprint"]:
            raise DataError(
                f"{path}: file fingerprint {stored[:12]} differs from the manifest's {str(e['fingerprint'])[:12]} "
                "(interrupted write?); re-run ingestion"
            )
        return table.cast(SCHEMAS[kind]).replace_schema_metadata(None)
