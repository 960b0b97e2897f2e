"""Write what a backtest held: each strategy's exposure and equity series as CSV beside its tearsheet.

Why: a tearsheet summarises; a user checking a result (a spot short that should not exist, a
future held past its expiry) needs the positions themselves, step by step, in a file any tool
opens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dea.backtest.result import BacktestResult


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "strategy"


def write_series(result: BacktestResult, folder: str | Path) -> dict[str, Path]:
    """``<name>_exposure.csv`` (time, one column per instrument: signed notional / equity after
    the trades at t) and ``<name>_equity.csv`` (time, equity, net and gross return, margin use)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    time = pd.to_datetime(result.clock, unit="ns", utc=True)
    expo = pd.DataFrame(result.exposures, columns=list(result.instruments))
    expo.insert(0, "time", time)
    eq = pd.DataFrame({"time": time, "equity": result.equity, "return": result.returns,
                       "gross_return": result.gross_returns, "margin_use": result.margin_use})
    slug = _slug(result.name)
    paths = {"exposure": folder / f"{slug}_exposure.csv", "equity": folder / f"{slug}_equity.csv"}
    expo.to_csv(paths["exposure"], index=False)
    eq.to_csv(paths["equity"], index=False)
    return paths
