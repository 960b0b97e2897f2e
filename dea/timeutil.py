"""Time conventions (see ../shared/DESIGN.md): UTC, int64 nanoseconds since the epoch in storage.

Durations in configs are strings such as ``"500ms"``, ``"5m"``, ``"1h"``, ``"8h"``, ``"1d"``;
they are parsed here once so every part of DEA agrees on their meaning.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from dea.errors import ConfigError

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 60 * NS_PER_MIN
NS_PER_DAY = 24 * NS_PER_HOUR
NS_PER_YEAR = int(365.25 * NS_PER_DAY)

_UNITS = {
    "ns": 1,
    "us": NS_PER_US,
    "ms": NS_PER_MS,
    "s": NS_PER_S,
    "m": NS_PER_MIN,
    "min": NS_PER_MIN,
    "h": NS_PER_HOUR,
    "d": NS_PER_DAY,
    "w": 7 * NS_PER_DAY,
}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def parse_duration(text: str | int) -> int:
    """Parse ``"5m"`` / ``"1h"`` / ``"250ms"`` (or an int of nanoseconds) into nanoseconds."""
    if isinstance(text, bool):
        raise ConfigError(f"duration must be a string like '5m', got {text!r}")
    if isinstance(text, int):
        return text
    m = _DURATION.match(str(text).lower())
    if not m or m.group(2) not in _UNITS:
        raise ConfigError(
            f"cannot parse duration {text!r}: expected a number and one of {sorted(_UNITS)}, e.g. '5m'"
        )
    return int(round(float(m.group(1)) * _UNITS[m.group(2)]))


def format_duration(ns: int) -> str:
    """Inverse of :func:`parse_duration` for exact multiples of a unit (for summaries)."""
    for unit in ("w", "d", "h", "m", "s", "ms", "us"):
        size = _UNITS[unit]
        if ns and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def parse_timestamp(text: str | int | datetime) -> int:
    """Parse an ISO-8601 timestamp (naive means UTC), a datetime, or int ns into int ns UTC."""
    if isinstance(text, bool):
        raise ConfigError(f"timestamp expected, got {text!r}")
    if isinstance(text, int):
        return text
    if isinstance(text, datetime):
        dt = text
    else:
        try:
            dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"cannot parse timestamp {text!r}: {exc}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def iso(ns: int) -> str:
    """Format int ns as an ISO-8601 UTC string (for metadata and reports)."""
    s, rem = divmod(int(ns), NS_PER_S)
    dt = datetime.fromtimestamp(s, tz=timezone.utc)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if rem:
        base += f".{rem:09d}".rstrip("0")
    return base + "Z"
