"""Policy quality benchmark: ``python -m benchmarks quality``.

Trains the bundled defaults, as a new user would, on

* ``demo``: the Coin Metrics daily set (``configs/demo.yaml``, bundled);
* ``perps``: the Binance USDT-M perpetuals at hourly decisions (``configs/perps_5m.yaml``, from
  ``../shared/data``; funding as the config says — real 2023-24 rates when it charges them);
* ``sim`` and ``sim_control``: the simulator with its planted signal and the no-signal control
  (``signal_strength: 0``).

For each set it prints the full table (the selected policy, its base, every baseline raw and
managed: Sharpe, the policy's Sharpe difference with its 95 % stationary-bootstrap CI, deflated
Sharpe, return, volatility, max drawdown, mean gross exposure, turnover, fees, spread, impact,
funding) and returns the headline figures with the targets of issue 16:

* every real set: policy Sharpe >= its base's - 0.05, and its volatility >= half its base's;
* sim: policy Sharpe >= 0.8 x the oracle's; sim_control: the policy's Sharpe difference to its
  base has a CI containing 0;
* ``repeat_identical``: the demo trained twice gives identical figures.

Every set is reported, win or lose. ``DEA_BENCH_QUALITY_SETS`` (comma list) limits what runs;
``DEA_BENCH_QUALITY_REPEAT=0`` skips the repeat.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEA_SHARED_DATA", REPO.parent / "shared" / "data"))
SETS = ("demo", "perps", "sim", "sim_control")
COMMON = ["training.progress_bar=false", "training.num_threads=2"]


def _config(name: str) -> Any:
    from dea.config import load_config

    if name == "demo":
        return load_config(REPO / "configs" / "demo.yaml", COMMON)
    if name == "perps":
        return load_config(REPO / "configs" / "perps_5m.yaml", COMMON)
    cfg = load_config(REPO / "configs" / "sim.yaml", COMMON)
    if name == "sim_control":
        # every `format: sim` source carries its own copy of the options: zero the signal in all
        sims = [f"data.sources.{i}.options.signal_strength=0" for i, s in enumerate(cfg.data.sources) if s.format == "sim"]
        cfg = load_config(REPO / "configs" / "sim.yaml", [*COMMON, *sims, "name=sim_control"])
    return cfg


def _oracle_sharpe(cfg: Any, result: Any) -> float:
    from dea.backtest.market import prepare_market
    from dea.data.panel import build_panel
    from dea.sim.config import SimConfig
    from dea.sim.market import simulate_cached
    from dea.sim.oracle import exposure_on_clock
    from training.evaluation import evaluate_strategy, stitch

    panel = build_panel(cfg)
    market = prepare_market(panel, cfg.data.instruments, cfg.costs)
    options = next(s.options for s in cfg.data.sources if s.format == "sim")
    oracle = exposure_on_clock(simulate_cached(SimConfig.model_validate(options)), panel.clock)
    a, b = result.oos_start, result.oos_stop
    shape = (len(panel.clock), len(cfg.data.instruments))
    return float(evaluate_strategy(cfg, market, stitch(shape, [(a, b, oracle[a:b])]), a, b, "oracle").metrics["sharpe"])


def _headline(name: str, cfg: Any, result: Any, wall: float) -> dict[str, Any]:
    m = result.metrics
    base = f"base_{cfg.model.base.kind}"
    pol = m["policy"]
    out: dict[str, Any] = {
        f"{name}_wall_s": round(wall, 1),
        f"{name}_oos": f"{_iso(result.clock[result.oos_start])}..{_iso(result.clock[result.oos_stop - 1])}",
        f"{name}_funding": _funding(cfg),
        f"{name}_exported_candidate": result.exported.candidate if result.exported else "none",
        f"{name}_policy_sharpe": round(pol["sharpe"], 3),
        f"{name}_policy_vol": round(pol["annual_vol"], 3),
        f"{name}_policy_max_dd": round(pol["max_drawdown"], 3),
        f"{name}_policy_gross_mean": round(pol.get("exposure_gross_mean", float("nan")), 3),
    }
    for other in (base, "buy_and_hold_raw", "buy_and_hold", "ridge"):
        if other in m:
            d = result.significance.get(other)
            out[f"{name}_{other}_sharpe"] = round(m[other]["sharpe"], 3)
            if d is not None:
                out[f"{name}_diff_vs_{other}"] = f"{d.diff:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}] {d.verdict}"
    if base in m:
        b = m[base]
        out[f"{name}_target_sharpe_ge_base_minus_0.05"] = "met" if pol["sharpe"] >= b["sharpe"] - 0.05 else "MISSED"
        out[f"{name}_target_vol_ge_half_base"] = "met" if pol["annual_vol"] >= 0.5 * b["annual_vol"] else "MISSED"
    return out


def _funding(cfg: Any) -> str:
    perps = [i for i in cfg.data.instruments if i.kind == "perpetual"]
    if not perps:
        return "n/a (spot)"
    return "none (not charged)" if all(i.funding in (None, "none") for i in perps) else "charged"


def _iso(ns: int) -> str:
    from dea.timeutil import iso

    return iso(int(ns))[:10]


def _run_set(name: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    from training.pipeline import train
    from training.report import format_table, table_metrics

    cfg = _config(name)
    t0 = time.perf_counter()
    result = train(cfg, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", out_dir=tmp / name)
    wall = time.perf_counter() - t0
    print(f"\n-- quality: {name} ({cfg.name}), out of sample "
          f"{_iso(result.clock[result.oos_start])}..{_iso(result.clock[result.oos_stop - 1])}, after costs --")
    print(format_table(table_metrics(result.metrics, result.significance)))
    for note in result.notes:
        print(f"note: {note}")
    out = _headline(name, cfg, result, wall)
    if name in ("sim", "sim_control"):
        orc = _oracle_sharpe(cfg, result)
        out[f"{name}_oracle_sharpe"] = round(orc, 3)
        if name == "sim":
            ratio = result.metrics["policy"]["sharpe"] / orc if orc else float("nan")
            out["sim_policy_over_oracle"] = round(ratio, 3)
            out["sim_target_over_oracle_ge_0.8"] = "met" if ratio >= 0.8 else "MISSED"
        else:
            d = result.significance.get(f"base_{cfg.model.base.kind}")
            out["sim_control_target_within_base_ci"] = "met" if d is not None and d.lo <= 0 <= d.hi else "MISSED"
    return out, result


def run() -> dict[str, Any]:
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    wanted = [s.strip() for s in os.environ.get("DEA_BENCH_QUALITY_SETS", ",".join(SETS)).split(",") if s.strip()]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dea-bench-quality-") as d:
        tmp = Path(d)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for name in wanted:
                if name == "perps" and not SHARED.is_dir():
                    out["perps_skipped"] = f"no shared data at {SHARED}"
                    continue
                figures, result = _run_set(name, tmp)
                out.update(figures)
                if name == "demo" and os.environ.get("DEA_BENCH_QUALITY_REPEAT", "1") != "0":
                    again, result2 = _run_set("demo", tmp / "repeat")
                    same = json.dumps(result.metrics, sort_keys=True) == json.dumps(result2.metrics, sort_keys=True)
                    out["demo_repeat_identical"] = "yes" if same else "NO"
        finally:
            os.chdir(cwd)
    return out
