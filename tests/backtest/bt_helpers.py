"""Hand-made markets for backtest tests (not a test module)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dea.backtest.config import CostsConfig
from dea.backtest.market import Market
from dea.data.panel import Panel
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.timeutil import NS_PER_HOUR, NS_PER_S

T0 = 1_700_000_000 * NS_PER_S
STEP = NS_PER_HOUR
FREE = CostsConfig(half_spread_bps=0.0, impact={"model": "none"}, initial_equity=1_000_000.0)
LOOSE = RiskConfig(max_exposure=100.0, max_gross=100.0, max_net=100.0, max_leverage=100.0, drawdown={"enabled": False})


def inst(symbol: str = "BTC", **kw) -> Instrument:
    base = dict(taker_fee=0.0, maker_fee=0.0, kind="perpetual", funding="none")  # leverage and shorts allowed
    base.update(kw)
    return Instrument(symbol=symbol, **base)


def market(price: Sequence | np.ndarray, *, instruments: Sequence[Instrument] | None = None,
           funding: np.ndarray | None = None, coef: np.ndarray | float = 0.0, step: int = STEP,
           volume: np.ndarray | None = None) -> Market:
    p = np.asarray(price, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    T, N = p.shape
    insts = tuple(instruments) if instruments is not None else tuple(inst(f"I{j}") for j in range(N))
    c = np.broadcast_to(np.asarray(coef, dtype=np.float64), (T, N)).copy()
    return Market(
        clock=T0 + np.arange(T, dtype=np.int64) * step,
        step_ns=step,
        instruments=insts,
        price=p,
        funding=np.zeros((T, N)) if funding is None else np.asarray(funding, dtype=np.float64),
        impact_coef=c,
        impact_k=np.zeros(N),
        volume=volume,
    )


def random_panel(T: int, N: int, seed: int = 0, step: int = STEP, funding_every: int = 8) -> tuple[Panel, list[Instrument]]:
    """A panel of random-walk bars with volume, high/low and funding for perpetuals."""
    rng = np.random.default_rng(seed)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, N)), axis=0))
    fund = np.zeros((T, N))
    fund[::funding_every] = rng.normal(1e-4, 2e-4, (len(range(0, T, funding_every)), N))
    fields = {
        "price": price,
        "close": price,
        "high": price * (1 + rng.uniform(0, 0.01, (T, N))),
        "low": price * (1 - rng.uniform(0, 0.01, (T, N))),
        "volume": rng.uniform(5e4, 1e5, (T, N)),
        "funding_settled": fund,
    }
    symbols = [f"P{j}" for j in range(N)]
    insts = [Instrument(symbol=s, kind="perpetual", funding="fund", lot_size=0.001 if j == 0 else 0.0,
                        min_notional=5.0 if j == 0 else 0.0) for j, s in enumerate(symbols)]
    clock = T0 + np.arange(T, dtype=np.int64) * step
    return Panel(clock=clock, step_ns=step, instruments=tuple(symbols), fields=fields), insts


def costs_with(**kw) -> CostsConfig:
    """FREE costs with validated overrides."""
    return CostsConfig(**{**FREE.model_dump(), **kw})
