"""Risk engine shared by the backtest and the live loop (numpy + stdlib only at import)."""

from dea.risk.config import RiskConfig
from dea.risk.engine import Intervention, RiskDecision, RiskEngine
from dea.risk.rules import RULE_NAMES

__all__ = ["RULE_NAMES", "Intervention", "RiskConfig", "RiskDecision", "RiskEngine"]
