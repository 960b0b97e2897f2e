"""Market-data guards: quarantine bad prices, rates and timestamps before any decision, mark or
fill uses them — the same code for the batch panel, the event backtest, replay and live."""

from dea.guards.config import GuardActions, GuardsConfig, JumpGuardConfig
from dea.guards.core import GUARD_NAMES, GuardHit, MarketGuard, apply_actions, finite, merge_action

__all__ = ["GUARD_NAMES", "GuardActions", "GuardHit", "GuardsConfig", "JumpGuardConfig", "MarketGuard",
           "apply_actions", "finite", "merge_action"]
