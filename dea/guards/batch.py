"""The guards over whole tables: which bar / mark rows the batch panel may use.

Why: the batch panel must drop exactly the rows the live loop quarantines, so a backtest sees the
prices the loop would have seen and the age of a series counts from its last *good* value (a
NaN close no longer resets the age, so the stale rule fires). The rows of every price source of
an instrument are fed through one :class:`~dea.guards.core.MarketGuard` in the replay's order
(``available_at``, then source order, then row order), which is the order the live loop sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dea.guards.config import GuardsConfig
from dea.guards.core import MarketGuard

PRICE_COLUMN = {"bars": "close", "mark": "mark_price"}


def quarantine_masks(
    data: Any, tables: Mapping[str, Any], cfg: GuardsConfig, rows_for: Callable[..., dict[int, np.ndarray]],
    *, clock: Callable[[], int] | None = None,
) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, int]]:
    """``{(source name, instrument index): keep mask over that instrument's rows}`` and the counts
    per guard. ``rows_for(src, table, data)`` is the panel's instrument -> rows resolver."""
    kw = {} if clock is None else {"clock": clock}
    guard = MarketGuard(cfg, data.symbols, **kw)
    per_inst: dict[int, list[tuple[int, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for s_idx, src in enumerate(data.sources):
        col = PRICE_COLUMN.get(src.kind)
        if col is None:
            continue
        t = tables[src.name]
        if t.num_rows == 0:
            continue
        ts_all, av_all, px_all = t["ts_event"].to_numpy(), t["available_at"].to_numpy(), t[col].to_numpy()
        for j, rows in rows_for(src, t, data).items():
            per_inst.setdefault(j, []).append((s_idx, src.name, rows, ts_all[rows], av_all[rows], px_all[rows]))
    masks: dict[tuple[str, int], np.ndarray] = {}
    for j, parts in per_inst.items():
        av = np.concatenate([p[4] for p in parts]).astype(np.int64)
        ts = np.concatenate([p[3] for p in parts]).astype(np.int64)
        px = np.concatenate([p[5] for p in parts]).astype(np.float64)
        stream = np.concatenate([np.full(len(p[2]), p[0], dtype=np.int64) for p in parts])
        keep = np.ones(len(av), dtype=bool)
        if guard.enabled:
            order = np.argsort(av, kind="stable")
            check = guard.check_price
            for k, s, e, a, p in zip(order.tolist(), stream[order].tolist(), ts[order].tolist(),
                                     av[order].tolist(), px[order].tolist(), strict=True):
                if check(s, j, e, a, p) is not None:
                    keep[k] = False
        start = 0
        for p in parts:
            masks[(p[1], j)] = keep[start:start + len(p[2])]
            start += len(p[2])
    return masks, {k: v for k, v in guard.counts.items() if v}


__all__ = ["PRICE_COLUMN", "quarantine_masks"]
