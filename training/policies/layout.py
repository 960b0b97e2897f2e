"""Which feature columns belong to which instrument (for policies shared across instruments).

Feature columns are named ``"<stem>@<symbol>"`` for per-instrument features (the feature
engine's convention), optionally followed by the ``"__missing"`` indicator suffix; anything else
is a global column (macro series, sentiment indices, calendar). For a policy that applies one
network to every instrument, each instrument gets the columns of every per-instrument stem (a
stem computed for only some instruments is absent — zero plus a 0 availability flag — for the
others), followed by all global columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.errors import ModelError

MISSING_SUFFIX = "__missing"


def split_name(name: str, instruments: Sequence[str]) -> tuple[str, str | None]:
    """``"ret_1@BTC__missing"`` -> (``"ret_1__missing"``, ``"BTC"``); global -> (name, None)."""
    base, suffix = (name[: -len(MISSING_SUFFIX)], MISSING_SUFFIX) if name.endswith(MISSING_SUFFIX) else (name, "")
    if "@" in base:
        stem, symbol = base.rsplit("@", 1)
        if symbol in instruments:
            return stem + suffix, symbol
    return name, None


@dataclass(frozen=True)
class InstrumentLayout:
    """``own[i, s]``: column of stem s for instrument i (-1 = not computed for it);
    ``global_cols``: columns every instrument sees."""

    stems: tuple[str, ...]
    own: np.ndarray  # [N, S] int64
    global_cols: np.ndarray  # [G] int64

    @property
    def available(self) -> np.ndarray:
        return self.own >= 0


def instrument_layout(feature_names: Sequence[str], instruments: Sequence[str]) -> InstrumentLayout:
    """Group ``feature_names`` by instrument; raises :class:`ModelError` when no column is
    per-instrument (a shared policy would then see the same input for every instrument)."""
    stems: list[str] = []
    own: dict[tuple[str, str], int] = {}
    glob: list[int] = []
    for j, name in enumerate(feature_names):
        stem, symbol = split_name(name, instruments)
        if symbol is None:
            glob.append(j)
            continue
        if stem not in stems:
            stems.append(stem)
        own[(stem, symbol)] = j
    if not stems:
        raise ModelError(
            "a policy shared across instruments needs per-instrument features named '<stem>@<symbol>'; "
            f"got only global columns {list(feature_names)[:5]}..."
        )
    table = np.full((len(instruments), len(stems)), -1, dtype=np.int64)
    for i, sym in enumerate(instruments):
        for s, stem in enumerate(stems):
            table[i, s] = own.get((stem, sym), -1)
    return InstrumentLayout(stems=tuple(stems), own=table, global_cols=np.asarray(glob, dtype=np.int64))
