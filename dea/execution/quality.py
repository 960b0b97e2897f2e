"""Execution quality: implementation shortfall of a parent order, split into its causes, beside
the cost the backtest's model would have charged for it.

Why: a backtest charges a *modelled* cost at the decision instant; only comparing it with what
the fills actually cost tells whether the model (and the policy trained on it) is honest.

Per parent of signed quantity Q (side s), arrival mid m0 (mid at the decision), fills i of size
q_i at price p_i with the mid m_i and the touch b_i just before each fill (the opposite best for
a taker; the order's own price for a maker), fees f_i, and the mid m_end when the schedule ended:

- timing      = sum s * (m_i - m0) * |q_i|          (the market moved while we worked)
- spread      = sum s * (b_i - m_i) * |q_i|         (half spread paid; negative = earned by makers)
- impact      = sum s * (p_i - b_i) * |q_i|         (walking past the touch)
- fees        = sum f_i
- opportunity = s * (m_end - m0) * (|Q| - sum |q_i|) (what the unfilled rest missed)

and their sum is the implementation shortfall ``sum s (p_i - m0)|q_i| + fees + opportunity``
exactly. In bps they are divided by the arrival notional |Q| * m0. Numpy-free (serving uses it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from dea.errors import DataError
from dea.execution.fills import book_fill_costs


class ChildFill(Protocol):
    """What quality needs of a fill (``dea.execution.queue.SimFill`` has it)."""

    qty: float
    price: float
    fee: float
    mid: float
    touch: float
    maker: bool
    ts: int


@dataclass(frozen=True)
class FillRecord:
    """A journaled child fill (plain data; what the execution store keeps)."""

    client_id: str
    ts: int
    qty: float
    price: float
    fee: float
    mid: float
    touch: float
    maker: bool


@dataclass(frozen=True)
class ParentRecord:
    """A parent order and its fills, as journaled."""

    parent_id: str
    instrument: str
    algo: str
    qty: float
    t_arrival: int
    arrival_mid: float
    end_mid: float
    t_end: int
    modelled_cost: float  # currency: what the backtest's cost model charges at arrival
    fills: tuple[FillRecord, ...] = ()
    status: str = "done"
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Shortfall:
    """Implementation shortfall of one parent, in currency and bps of the arrival notional."""

    parent_id: str
    instrument: str
    algo: str
    qty: float
    filled: float
    fill_rate: float
    avg_price: float
    arrival_mid: float
    total: float
    timing: float
    spread: float
    impact: float
    fees: float
    opportunity: float
    modelled: float
    maker_share: float
    duration_s: float

    @property
    def notional(self) -> float:
        return abs(self.qty) * self.arrival_mid

    def bps(self, name: str) -> float:
        return getattr(self, name) / self.notional * 1e4 if self.notional > 0 else math.nan

    def row(self) -> dict[str, float | str]:
        """One table row: identity columns, then every component in bps."""
        out: dict[str, float | str] = {k: v for k, v in asdict(self).items() if k in
                                       ("parent_id", "instrument", "algo", "qty", "filled", "fill_rate", "avg_price",
                                        "arrival_mid", "maker_share", "duration_s")}
        for k in ("total", "spread", "impact", "timing", "fees", "opportunity", "modelled"):
            out[f"{k}_bps"] = self.bps(k)
        return out


def shortfall(rec: ParentRecord) -> Shortfall:
    """Decompose ``rec``'s implementation shortfall (see the module docstring)."""
    m0 = rec.arrival_mid
    if not (m0 > 0.0):
        raise DataError(f"parent {rec.parent_id} ({rec.instrument}): arrival mid {m0} is not a positive price")
    s = 1.0 if rec.qty > 0 else -1.0
    timing = spread = impact = fees = 0.0
    filled = notional = maker = 0.0
    for f in rec.fills:
        q = abs(f.qty)
        if (f.qty > 0) != (rec.qty > 0):
            raise DataError(f"parent {rec.parent_id}: fill {f.client_id} at {f.ts} has the wrong side ({f.qty})")
        for name, v in (("mid", f.mid), ("touch", f.touch), ("price", f.price)):
            if not (v > 0.0):
                raise DataError(f"parent {rec.parent_id}: fill {f.client_id} at {f.ts} has no {name} ({v})")
        timing += s * (f.mid - m0) * q
        spread += s * (f.touch - f.mid) * q
        impact += s * (f.price - f.touch) * q
        fees += f.fee
        filled += q
        notional += q * f.price
        maker += q if f.maker else 0.0
    unfilled = max(abs(rec.qty) - filled, 0.0)
    if unfilled > 0.0 and not (rec.end_mid > 0.0):
        raise DataError(f"parent {rec.parent_id}: {unfilled} unfilled but no end mid to price the opportunity cost")
    opportunity = s * (rec.end_mid - m0) * unfilled if unfilled > 0.0 else 0.0
    total = timing + spread + impact + fees + opportunity
    return Shortfall(
        rec.parent_id, rec.instrument, rec.algo, rec.qty, filled, filled / abs(rec.qty),
        notional / filled if filled > 0 else math.nan, m0, total, timing, spread, impact, fees, opportunity,
        rec.modelled_cost, maker / filled if filled > 0 else 0.0, (rec.t_end - rec.t_arrival) / 1e9,
    )


def modelled_cost_book(qty: float, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]],
                       fee_rate: float) -> float:
    """What the event backtest charges for ``qty`` at once on this book (fee + spread + walk)."""
    import numpy as np

    if not bids or not asks:
        raise DataError("modelled book cost needs both sides of the book")
    b = np.asarray(bids, dtype=np.float64)
    a = np.asarray(asks, dtype=np.float64)
    _, fee, spread, impact, _ = book_fill_costs(qty, b[:, 0], b[:, 1], a[:, 0], a[:, 1], fee_rate)
    return float(fee + spread + impact)


def modelled_cost_bar(notional: float, fee_rate: float, half_spread_bps: float, impact_coef: float) -> float:
    """What the bar backtest charges for ``notional`` (fee + half spread + square-root impact)."""
    from dea.execution.fills import bar_fill_costs

    fee, spread, impact = bar_fill_costs(abs(notional), fee_rate, half_spread_bps * 1e-4, impact_coef)
    return float(fee + spread + impact)


def summarize(rows: Sequence[Shortfall]) -> dict[str, dict[str, float]]:
    """Notional-weighted mean of each component in bps, by algo."""
    out: dict[str, dict[str, float]] = {}
    for algo in sorted({r.algo for r in rows}):
        sel = [r for r in rows if r.algo == algo]
        w = sum(r.notional for r in sel)
        agg = {f"{k}_bps": sum(getattr(r, k) for r in sel) / w * 1e4 if w > 0 else math.nan
               for k in ("total", "spread", "impact", "timing", "fees", "opportunity", "modelled")}
        agg["parents"] = float(len(sel))
        agg["fill_rate"] = sum(r.filled for r in sel) / sum(abs(r.qty) for r in sel)
        out[algo] = agg
    return out
