"""Fixtures for the order-book tests: the real Binance captures, parsed once per session."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dea.book.binance import parse_capture_line
from dea.book.capture import ParsedCapture, parse_capture
from dea.book.events import Event



@pytest.fixture(scope="session")
def ws_dir(shared_data: Path) -> Path:
    return shared_data / "orderbook" / "binance_ws_2024"


@pytest.fixture(scope="session")
def parsed(ws_dir: Path) -> Callable[[str], ParsedCapture]:
    cache: dict[str, ParsedCapture] = {}

    def get(name: str) -> ParsedCapture:
        if name not in cache:
            cache[name] = parse_capture(ws_dir / name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def stream_events(ws_dir: Path) -> Callable[[str], list[Event]]:
    """Events of a capture decoded by the orjson reference parser (the live feed's parser)."""
    cache: dict[str, list[Event]] = {}

    def get(name: str) -> list[Event]:
        if name not in cache:
            with gzip.open(ws_dir / name, "rb") as fh:
                evs = (parse_capture_line(line, f"{name}:{i}") for i, line in enumerate(fh, 1) if line.strip())
                cache[name] = [e for e in evs if e is not None]
        return cache[name]

    return get


@pytest.fixture(scope="session")
def clock_for() -> Callable[[ParsedCapture, int], np.ndarray]:
    """A decision clock from before the first event to after the last (warm-up and staleness show)."""

    def make(p: ParsedCapture, step_ns: int) -> np.ndarray:
        first = min(int(p.ev_time[0]), int(p.tr_time[0]) if p.tr_time.size else int(p.ev_time[0]))
        last = max(int(p.ev_time[-1]), int(p.tr_time[-1]) if p.tr_time.size else 0)
        return np.arange(first - 2 * step_ns, last + 3 * step_ns, step_ns, dtype=np.int64)

    return make
