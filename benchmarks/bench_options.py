"""Options benchmark: ``python -m benchmarks options``.

Figures (one process, this machine), on the real Deribit BTC chain of 2021-02-11 (976 rows, both
polls) when ``../shared/data`` is present, else on a synthetic chain of the same size:
- ``greeks_chain_us``: Black-76 price + delta, gamma, vega, theta for the whole chain, one call
  (median of repeats; goal well under 1 ms);
- ``implied_vol_chain_us``: implied volatility of every out-of-the-money option's mark;
- ``aggregate_us``: portfolio greeks per underlying for a 40-position book on two underlyings,
  plus the perpetuals' exposure (per decision, microseconds);
- ``budget_check_us``: one option order through the greek budgets (per order);
- ``engine_option_check_us``: the same order through ``RiskEngine.check_option_order`` (the linear
  exposure of the underlying's perpetuals counted in the delta);
- ``engine_apply_us`` / ``engine_apply_greeks_us``: one ``RiskEngine.apply`` for two perpetuals
  without and with ``risk.greeks`` budgets and the book's option greeks (the cost of the budgets
  per decision is the difference; without budgets the engine never enters the greek code).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

GOALS = {"greeks_chain_us": ("<=", 500.0), "aggregate_us": ("<=", 100.0), "budget_check_us": ("<=", 50.0),
         "engine_option_check_us": ("<=", 50.0)}


def _shared() -> Path:
    return Path(os.environ.get("DEA_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _median_us(fn: Callable[[], object], repeats: int = 200) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _chain() -> tuple[str, dict[str, np.ndarray]]:
    path = _shared() / "options" / "deribit_btc_chain_20210211.csv"
    if path.is_file():
        from dea.data.loaders.options_chain import load_deribit_ticker
        from dea.options import year_fraction

        t, _ = load_deribit_ticker(path)
        d = {c: t[c].to_numpy(zero_copy_only=False) for c in ("underlying_price", "strike", "mark_iv", "is_call", "mark_price")}
        d["t"] = year_fraction(t["ts_event"].to_numpy(), t["expiry_ns"].to_numpy())
        return "deribit_btc_chain_20210211", d
    rng = np.random.default_rng(0)
    n = 976
    f = np.full(n, 47_000.0)
    k = f * np.exp(rng.uniform(-1, 1, n))
    d = {"underlying_price": f, "strike": k, "mark_iv": rng.uniform(0.5, 1.5, n), "is_call": rng.random(n) < 0.5, "t": rng.uniform(1 / 365, 1.0, n)}
    from dea.options import price

    d["mark_price"] = price(f, k, d["t"], d["mark_iv"], d["is_call"]) / f
    return "synthetic", d


def run() -> dict[str, object]:
    from dea.options import GreekExposure, aggregate, greeks, implied_vol
    from dea.risk.greeks import GreekBudgetConfig, check_option_order

    source, d = _chain()
    f, k, t, s, c = d["underlying_price"], d["strike"], d["t"], d["mark_iv"], d["is_call"]
    out: dict[str, object] = {"chain": source, "chain_options": len(f)}
    out["greeks_chain_us"] = round(_median_us(lambda: greeks(f, k, t, s, c)), 1)
    out["greeks_per_option_ns"] = round(out["greeks_chain_us"] * 1e3 / len(f), 1)
    usd = greeks(f, k, t, s, c).price
    otm = np.where(c, k >= f, k <= f) & (usd > 1e-6 * f)
    args = (usd[otm], f[otm], k[otm], t[otm], c[otm])
    out["implied_vol_options"] = int(otm.sum())
    out["implied_vol_chain_us"] = round(_median_us(lambda: implied_vol(*args), repeats=50), 1)
    rng = np.random.default_rng(1)
    idx = rng.choice(len(f), 40, replace=False)
    g40 = greeks(f[idx], k[idx], t[idx], s[idx], c[idx])
    qty, mult, codes = rng.normal(0, 5, 40), np.ones(40), np.arange(40) % 2
    lin = np.array([0.8, -0.2])
    out["aggregate_us"] = round(_median_us(lambda: aggregate(g40, qty, mult, f[idx], codes, ("BTC", "ETH"), 1e6, lin), repeats=2000), 2)
    budgets = GreekBudgetConfig(max_delta=1.5, max_gamma=0.5, max_vega=0.001)
    cur, per = GreekExposure(0.8, 0.01, 0.0005), GreekExposure(-0.02, 0.001, 0.0001)
    out["budget_check_us"] = round(_median_us(lambda: check_option_order(cur, per, 10.0, budgets), repeats=5000), 2)
    from dea.instruments import Instrument
    from dea.risk.config import RiskConfig
    from dea.risk.engine import RiskEngine

    insts = [Instrument(symbol=f"{u}USDT", kind="perpetual", base=u, funding="none") for u in ("BTC", "ETH")]
    loose = dict(max_exposure=5.0, max_gross=10.0, max_net=10.0, max_leverage=10.0)
    plain = RiskEngine(RiskConfig(**loose), insts)
    budgeted = RiskEngine(RiskConfig(**loose, greeks={"BTC": budgets.model_dump()}), insts)
    target, held = np.array([0.9, -0.2]), np.array([0.8, -0.2])
    opts = {"BTC": cur}
    out["engine_option_check_us"] = round(_median_us(lambda: budgeted.check_option_order("BTC", per, 10.0, held, cur), repeats=5000), 2)
    t0 = 1_700_000_000_000_000_000
    out["engine_apply_us"] = round(_median_us(lambda: plain.apply(t0, target, held, 1e6), repeats=5000), 2)
    out["engine_apply_greeks_us"] = round(_median_us(lambda: budgeted.apply(t0, target, held, 1e6, option_greeks=opts), repeats=5000), 2)
    return out
