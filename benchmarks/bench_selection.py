"""Selection and significance benchmark: ``python -m benchmarks selection``.

Figures (best of 3 wall-clock repeats; the machine is shared):
- Sharpe-difference interval of two 2,000-row series: stationary bootstrap with 1,000 resamples
  (automatic block length included) and the Ledoit-Wolf HAC test;
- probability of backtest overfitting by CSCV: 20 candidates x 2,000 rows, 16 blocks
  (12,870 combinations);
- a combinatorial purged CV layout of 100,000 decision rows, 10 groups, 2 test groups.
"""

from __future__ import annotations

import time

import numpy as np


def _best(fn, repeats: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run() -> dict[str, object]:
    from dea.metrics.significance import sharpe_difference
    from training.selection import combinatorial_purged_cv, probability_of_backtest_overfitting

    rng = np.random.default_rng(0)
    a = rng.normal(0.0008, 0.01, 2000)
    b = 0.5 * a + rng.normal(0.0, 0.01, 2000)
    sharpe_difference(a, b, 365, n_boot=10)  # imports (arch, pandas) outside the timing
    out: dict[str, object] = {
        "bootstrap_1000x2000_s": round(_best(lambda: sharpe_difference(a, b, 365, n_boot=1000)), 4),
        "ledoit_wolf_2000_s": round(_best(lambda: sharpe_difference(a, b, 365, method="ledoit_wolf")), 5),
    }
    ret = rng.normal(0.0, 0.01, (2000, 20))
    out["pbo_20x2000_16blocks_s"] = round(_best(lambda: probability_of_backtest_overfitting(ret, 16)), 4)
    usable = np.ones(100_000, bool)
    out["cpcv_100k_rows_10c2_s"] = round(_best(lambda: combinatorial_purged_cv(usable, 10, 2, purge=24, embargo=24)), 4)
    return out
