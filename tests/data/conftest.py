"""Helpers for the data-layer tests: load a file with a given format, write small inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dea.data.config import SourceConfig
from dea.data.sources import LoadResult, load_source

Loader = Callable[..., LoadResult]


def make_source(fmt: str, kind: str, path: str | Path, **kw: Any) -> SourceConfig:
    return SourceConfig(name=kw.pop("name", "src"), kind=kind, format=fmt, path=str(path), **kw)


@pytest.fixture()
def load() -> Loader:
    """``load(fmt, kind, path, **source_fields)`` -> LoadResult (relative paths: cwd)."""

    def _load(fmt: str, kind: str, path: str | Path, **kw: Any) -> LoadResult:
        return load_source(make_source(fmt, kind, path, **kw), Path.cwd())

    return _load


@pytest.fixture()
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """``write(name, text_or_bytes)`` -> path of a new file under tmp_path."""

    def _write(name: str, content: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        return p

    return _write


@pytest.fixture()
def source() -> Callable[..., SourceConfig]:
    """``source(fmt, kind, path, **fields)`` -> SourceConfig."""
    return make_source
