"""What a backtest returns, whichever engine produced it (vectorised kernel or event replay).

All per-step series are indexed like the decision clock. Step t covers (t-1, t]: the price move
of the position held since t-1, fills and funding in that interval, and the trades decided at t
that filled at t. Returns and costs are fractions of the equity at t-1 (step 0: of the initial
equity), so ``returns == gross_returns - fees - spread - impact - funding`` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dea.risk.engine import Intervention
from dea.risk.rules import N_RULES, RULE_NAMES

COST_KINDS: tuple[str, ...] = ("fees", "spread", "impact", "funding")


@dataclass(frozen=True, slots=True)
class BacktestEvent:
    """An account-level event: ``liquidation`` (equity reached maintenance margin; everything
    closed) or ``bankrupt`` (equity not positive after it; trading stops)."""

    t_ns: int
    index: int
    kind: str
    equity: float
    margin: float
    detail: str = ""


@dataclass(frozen=True)
class BacktestResult:
    name: str
    clock: np.ndarray  # [T] int64 ns
    instruments: tuple[str, ...]
    initial_equity: float
    equity: np.ndarray  # [T] after the trades at t
    returns: np.ndarray  # [T] net
    gross_returns: np.ndarray  # [T] price PnL only
    costs: Mapping[str, np.ndarray]  # COST_KINDS -> [T] fractions of prior equity
    turnover: np.ndarray  # [T] traded notional / prior equity
    exposures: np.ndarray  # [T, N] held after the trades at t (signed notional / equity)
    margin_use: np.ndarray  # [T] maintenance margin / equity
    instrument_costs: Mapping[str, np.ndarray]  # COST_KINDS -> [N] currency totals
    instrument_pnl: np.ndarray  # [N] price PnL in currency
    traded_notional: np.ndarray  # [N] currency
    events: tuple[BacktestEvent, ...]
    interventions: Mapping[str, int]  # rule -> number of decisions it changed
    intervention_mask: np.ndarray  # [T] int32, bit r = rule r (dea.risk.rules) fired at t
    intervention_log: tuple[Intervention, ...] = ()  # full records (event engine only)
    periods_per_year: float = 365.25
    latency_ns: int = 0
    engine: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def n_steps(self) -> int:
        return len(self.clock)

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if len(self.equity) else self.initial_equity

    @property
    def total_costs(self) -> dict[str, float]:
        """Total of each cost kind, as a fraction of initial equity (currency / initial equity)."""
        return {k: float(v.sum()) / self.initial_equity for k, v in self.instrument_costs.items()}

    def liquidations(self) -> tuple[BacktestEvent, ...]:
        return tuple(e for e in self.events if e.kind == "liquidation")


def counts_from_mask(mask: np.ndarray) -> dict[str, int]:
    """Decisions each rule changed, from the per-step intervention bit mask."""
    m = np.asarray(mask, dtype=np.int64)
    return {RULE_NAMES[r]: int(((m >> r) & 1).sum()) for r in range(N_RULES)}
