"""Simulator benchmark: ``python -m benchmarks sim``.

Figures: :func:`dea.sim.market.simulate` at the hourly training scale of issue 17 (6 perpetuals x
55,000 steps, default regimes, jumps, funding, exogenous series) in asset-steps per CPU second,
and the canonical tables built from it (:func:`dea.sim.tables.market_tables`, what ``format:
sim`` sources read). CPU time of this thread, best of two (the machine may be shared).
"""

from __future__ import annotations

import time


def run() -> dict[str, float | int | str]:
    from dea.sim.config import SimConfig
    from dea.sim.market import simulate
    from dea.sim.tables import market_tables

    cfg = SimConfig(n_assets=6, n_steps=55_000, step="1h", seed=3)
    sim_s = tables_s = float("inf")
    n_rows = 0
    for _ in range(2):
        t0 = time.thread_time()
        market = simulate(cfg)
        t1 = time.thread_time()
        tables = market_tables(market)
        t2 = time.thread_time()
        sim_s, tables_s = min(sim_s, t1 - t0), min(tables_s, t2 - t1)
        n_rows = sum(t.num_rows for t in tables.values())
    steps = cfg.n_assets * cfg.n_steps
    return {
        "sim_assets": cfg.n_assets,
        "sim_steps": cfg.n_steps,
        "sim_seconds": round(sim_s, 4),
        "sim_asset_steps_per_s": steps / sim_s,
        "sim_tables_seconds": round(tables_s, 4),
        "sim_table_rows": n_rows,
        "sim_table_rows_per_s": n_rows / tables_s,
    }
