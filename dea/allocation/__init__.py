"""Causal base allocations shared by training (inside the policy graph), backtest and serving."""

from dea.allocation.base import BASE_KINDS, BaseColumns, base_columns, base_from_features, base_weights

__all__ = ["BASE_KINDS", "BaseColumns", "base_columns", "base_from_features", "base_weights"]
