"""Training benchmark: ``python -m benchmarks train``.

Figures:

* ``demo_*``: ``configs/demo.yaml`` end to end (data, walk-forward training, baselines, final
  model, ONNX export, MLflow in a temporary SQLite store) with the defaults (one thread per process,
  ``training.workers: auto``) — wall time (goal <= 60 s) and training steps per second.
* ``sim_*``: ``configs/sim.yaml`` (planted signal): the policy's out-of-sample net Sharpe and
  the oracle's on the same out-of-sample span through the same backtester (target ratio >= 0.8),
  plus the oracle's Sharpe before costs.
* ``perps_*`` (``configs/perps_5m.yaml``, real Binance perpetuals + sentiment) and ``daily_*``
  (the demo's daily Coin Metrics panel plus Fear & Greed and Google Trends from
  ``../shared/data``): walk-forward out-of-sample net Sharpe, max drawdown and deflated Sharpe of
  the policy, buy-and-hold BTC and HRP, and whether the policy beats both on Sharpe with a smaller
  drawdown. Reported as measured, win or lose.

* ``hourly_*``: hourly scale, the simulator widened to 6 perpetuals x 55,000 hourly decisions,
  4 folds, the default ensemble: wall time, optimizer steps/s, peak resident memory (goal <= 600 s);
  ``hourly_pair_*``: the same training twice side by side (two processes, defaults, as two users
  or ``dea tune --jobs 2`` would start them): each one's wall time over the lone run's (goal
  <= 2.5).
* ``perps5m_*``: ``configs/perps_5m.yaml`` at 5-minute decisions (3 x ~143k steps; goal <= 900 s).

``DEA_BENCH_TRAIN_PARTS`` (comma list of demo, sim, perps, daily, hourly, hourly_pair, perps5m)
limits what runs; a part not run still lists its goal figures, "not run".
``DEA_BENCH_SIM_SET`` (``;``-separated ``key=value``) overrides configs/sim.yaml for the sim part;
``DEA_BENCH_HOURLY_STEPS`` shortens the hourly case (a quick check of the benchmark itself).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEA_SHARED_DATA", REPO.parent / "shared" / "data"))
PARTS = ("demo", "sim", "perps", "daily", "hourly", "hourly_pair", "perps5m")

# the goals of issue 17 (python -m benchmarks shows each figure's against its goal)
GOALS = {
    "demo_wall_s": ("<=", 60.0),
    "hourly_wall_s": ("<=", 600.0),
    "hourly_pair_slowdown_max": ("<=", 2.5),
    "perps5m_wall_s": ("<=", 900.0),
}
HOURLY_INSTRUMENTS = 6
HOURLY_STEPS = 55_000


def _quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def _train(cfg: Any, tmp: Path, name: str) -> tuple[Any, float]:
    from training.pipeline import train

    t0 = time.perf_counter()
    result = train(cfg, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", out_dir=tmp / name)
    return result, time.perf_counter() - t0


def _bar(prefix: str, result: Any) -> dict[str, float | str]:
    """Policy vs buy-and-hold BTC vs HRP: net Sharpe, max drawdown, deflated Sharpe."""
    m = result.metrics
    out: dict[str, float | str] = {}
    for name in ("policy", "buy_and_hold", "hrp", "equal_weight", "ridge", "hgb"):
        if name in m:
            out[f"{prefix}_{name}_sharpe"] = round(m[name]["sharpe"], 3)
            out[f"{prefix}_{name}_max_dd"] = round(m[name]["max_drawdown"], 3)
            out[f"{prefix}_{name}_deflated_sharpe"] = round(m[name].get("deflated_sharpe", float("nan")), 3)
    p = m["policy"]
    wins = all(
        p["sharpe"] > m[b]["sharpe"] and p["max_drawdown"] < m[b]["max_drawdown"] for b in ("buy_and_hold", "hrp") if b in m
    )
    out[f"{prefix}_policy_beats_bh_and_hrp"] = "yes" if wins else "no"
    out[f"{prefix}_oos_window"] = f"{_iso(result.clock[result.oos_start])}..{_iso(result.clock[result.oos_stop - 1])}"
    return out


def _iso(ns: int) -> str:
    from dea.timeutil import iso

    return iso(int(ns))[:10]


def _steps_per_s(result: Any) -> float:
    """Optimizer steps per second of fitting, over every walk-forward fit (every candidate and
    ensemble member, chosen or not; a fit's seconds count once whichever process ran it)."""
    steps, secs = result.fit_stats.get("fit_steps", 0.0), result.fit_stats.get("fit_seconds", 0.0)
    return steps / secs if steps and secs else float("nan")


def bench_demo(tmp: Path) -> dict[str, float | str]:
    from dea.config import load_config

    cfg = load_config(REPO / "configs" / "demo.yaml", ["training.progress_bar=false"])
    result, wall = _train(cfg, tmp, "demo")
    return {
        "demo_wall_s": round(wall, 1),
        "demo_target_wall_s": 60,
        "demo_train_steps_per_s": round(_steps_per_s(result), 1),
        "demo_policy_sharpe": round(result.metrics["policy"]["sharpe"], 3),
    }


def bench_sim(tmp: Path) -> dict[str, float | str]:
    import numpy as np

    from dea.config import load_config
    from dea.sim.config import SimConfig
    from dea.sim.market import simulate_cached
    from dea.sim.oracle import exposure_on_clock
    from training.evaluation import evaluate_strategy, stitch
    from training.prepare import prepare_data

    extra = [o for o in os.environ.get("DEA_BENCH_SIM_SET", "").split(";") if o.strip()]
    cfg = load_config(REPO / "configs" / "sim.yaml", ["training.progress_bar=false", *extra])
    prepared = prepare_data(cfg)
    result, wall = _train(cfg, tmp, "sim")
    a, b = result.oos_start, result.oos_stop
    options = next(s.options for s in cfg.data.sources if s.format == "sim")
    market = simulate_cached(SimConfig.model_validate(options))
    oracle = exposure_on_clock(market, prepared.panel.clock)
    shape = prepared.data.market.returns.shape
    net = evaluate_strategy(cfg, prepared.market, stitch(shape, [(a, b, oracle[a:b])]), a, b, "oracle")
    free = cfg.with_overrides(["costs.fee_side=maker", "costs.half_spread_bps=0", "costs.impact.model=none"])
    from dea.backtest.market import prepare_market

    gross = evaluate_strategy(free, prepare_market(prepared.panel, free.data.instruments, free.costs),
                              stitch(shape, [(a, b, oracle[a:b])]), a, b, "oracle")
    pol = result.metrics["policy"]["sharpe"]
    orc = net.metrics["sharpe"]
    return {
        "sim_overrides": ";".join(extra) or "none",
        "sim_wall_s": round(wall, 1),
        "sim_policy_sharpe": round(pol, 3),
        "sim_oracle_sharpe": round(orc, 3),
        "sim_oracle_sharpe_no_trading_costs": round(gross.metrics["sharpe"], 3),
        "sim_policy_over_oracle": round(pol / orc, 3) if orc else float("nan"),
        "sim_target_ratio": 0.8,
        "sim_policy_turnover_annual": round(result.metrics["policy"]["turnover_annual"], 1),
        "sim_oracle_turnover_annual": round(net.metrics["turnover_annual"], 1),
        "sim_ridge_sharpe": round(result.metrics.get("ridge", {}).get("sharpe", np.nan), 3),
    }


def bench_perps(tmp: Path) -> dict[str, float | str]:
    from dea.config import load_config

    cfg = load_config(REPO / "configs" / "perps_5m.yaml", ["training.progress_bar=false"])
    result, wall = _train(cfg, tmp, "perps")
    return {"perps_wall_s": round(wall, 1), **_bar("perps", result)}


def daily_config() -> Any:
    """The demo's daily Coin Metrics panel plus sentiment from ../shared/data (not bundled)."""
    import yaml

    from dea.config import validate_config

    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    senti = SHARED / "sentiment"
    raw["name"] = "daily_sentiment"
    raw["data"]["sources"] += [
        {"name": "fear_greed", "kind": "exogenous", "format": "fear_greed", "step": "1d",
         "path": str(senti / "fear_greed_index_2018_2025.csv"), "publication_lag": "1d", "max_staleness": "3d",
         "series": ["fear_greed_index"]},
        *({"name": f"trends_{c.lower()}", "kind": "exogenous", "format": "google_trends", "entity": c, "step": "1d",
           "path": str(senti / f"google_trends_{c}.csv"), "publication_lag": "1d", "max_staleness": "3d"}
          for c in ("BTC", "ETH", "LTC")),
    ]
    raw["features"]["set"] += [
        {"name": "level", "series": "fear_greed_index"},
        {"name": "change", "series": "fear_greed_index", "params": {"horizon": 7}},
        {"name": "growth", "field": "trend", "params": {"horizon": 7}},
    ]
    raw["training"]["progress_bar"] = False
    return validate_config(raw, REPO / "configs", "daily_sentiment (bench)")


def bench_daily(tmp: Path) -> dict[str, float | str]:
    result, wall = _train(daily_config(), tmp, "daily")
    return {"daily_wall_s": round(wall, 1), **_bar("daily", result)}


def hourly_config(n_steps: int | None = None) -> Any:
    """configs/sim.yaml widened to the hourly-scale case: 6 perpetuals x 55,000 hourly bars (the
    shared options edited once, so every source reads the same simulated market), 4 folds, the
    model's default ensemble."""
    import yaml

    from dea.config import validate_config

    raw = yaml.safe_load((REPO / "configs" / "sim.yaml").read_text())
    n = HOURLY_INSTRUMENTS
    syms = [f"SIM{i}" for i in range(n)]
    opts = dict(next(src["options"] for src in raw["data"]["sources"] if src["format"] == "sim"))
    opts.update(symbols=syms, n_steps=int(n_steps or os.environ.get("DEA_BENCH_HOURLY_STEPS", HOURLY_STEPS)),
                start_price=[30000.0, 2000.0, 100.0, 1.0, 50.0, 10.0][:n], vol=[0.5, 0.65, 0.8, 0.9, 0.7, 0.75][:n])
    inst = raw["data"]["instruments"][0]
    raw["data"]["instruments"] = [{**inst, "symbol": s, "base": s} for s in syms]
    bars = next(src for src in raw["data"]["sources"] if src["kind"] == "bars")
    others = [src for src in raw["data"]["sources"] if src["kind"] != "bars"]
    raw["data"]["sources"] = [{**bars, "name": f"bars_{s}", "instrument": s} for s in syms] + others
    for src in raw["data"]["sources"]:
        src["options"] = opts
    raw["data"]["store"] = str(Path(tempfile.gettempdir()) / "dea_store_bench_hourly")
    raw["name"] = "hourly_bench"
    raw["model"].pop("ensemble", None)  # the default ensemble
    raw["training"]["splits"]["n_folds"] = 4
    raw["training"]["progress_bar"] = False
    return validate_config(raw, REPO / "configs", "hourly (bench)")


def _peak_rss_mb(who: int | None = None) -> float:
    """Peak resident memory of this process (or, ``RUSAGE_CHILDREN``, of its largest finished
    child: a fit worker)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF if who is None else who).ru_maxrss / 1024  # Linux: kB


def bench_hourly(tmp: Path) -> dict[str, float | str]:
    cfg = hourly_config()
    from training.prepare import prepare_data

    prepared = prepare_data(cfg)  # the simulation and panel, built once (not what is timed)
    from training.pipeline import train

    t0 = time.perf_counter()
    result = train(cfg, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", out_dir=tmp / "hourly", prepared=prepared)
    wall = time.perf_counter() - t0
    import resource

    return {
        "hourly_case": f"{HOURLY_INSTRUMENTS} perpetuals x {len(prepared.panel.clock)} hourly steps, "
                       f"{len(prepared.data.feature_names)} features, 4 folds, ensemble {cfg.model.ensemble}, "
                       f"{int(result.fit_stats['fit_workers'])} fit processes x {cfg.training.num_threads} thread",
        "hourly_wall_s": round(wall, 1),
        "hourly_train_steps_per_s": round(_steps_per_s(result), 1),
        "hourly_peak_rss_mb": round(_peak_rss_mb(), 1),
        "hourly_peak_rss_worker_mb": round(_peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
    }


def _lone_hourly() -> None:  # pragma: no cover - run in a child process by bench_hourly_pair
    import json
    import sys

    _quiet()
    with tempfile.TemporaryDirectory(prefix="dea-bench-hourly-") as d:
        os.chdir(d)
        from training.pipeline import train

        cfg = hourly_config()
        from training.prepare import prepare_data

        prepared = prepare_data(cfg)
        t0 = time.perf_counter()
        train(cfg, tracking_uri=f"sqlite:///{Path(d) / 'mlflow.db'}", out_dir=Path(d) / "run", prepared=prepared)
        json.dump({"wall_s": time.perf_counter() - t0}, sys.stdout)


def bench_hourly_pair(tmp: Path) -> dict[str, float | str]:
    """The lone run and then two at once, each a fresh process started with the defaults."""
    import json
    import subprocess
    import sys

    hourly_config()  # fail here, not in the children, on a bad config
    cmd = [sys.executable, "-c", "from benchmarks.bench_train import _lone_hourly; _lone_hourly()"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)

    def wall(proc: subprocess.Popen) -> float:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"hourly training process failed with exit code {proc.returncode}")
        return float(json.loads(out.strip().splitlines()[-1])["wall_s"])

    alone = wall(start())
    a, b = start(), start()
    pair = (wall(a), wall(b))
    return {
        "hourly_pair_alone_wall_s": round(alone, 1),
        "hourly_pair_wall_s": f"{pair[0]:.1f} / {pair[1]:.1f}",
        "hourly_pair_slowdown_max": round(max(pair) / alone, 2),
    }


def bench_perps5m(tmp: Path) -> dict[str, float | str]:
    from dea.config import load_config

    cfg = load_config(REPO / "configs" / "perps_5m.yaml",
                      ["training.progress_bar=false", "data.clock.step=5m"])
    result, wall = _train(cfg, tmp, "perps5m")
    return {"perps5m_wall_s": round(wall, 1), "perps5m_train_steps_per_s": round(_steps_per_s(result), 1),
            "perps5m_steps": len(result.clock)}


_NOT_RUN = {"demo": ("demo_wall_s",), "hourly": ("hourly_wall_s",), "hourly_pair": ("hourly_pair_slowdown_max",),
            "perps5m": ("perps5m_wall_s",)}


def run() -> dict[str, float | int | str]:
    _quiet()
    wanted = [p.strip() for p in os.environ.get("DEA_BENCH_TRAIN_PARTS", ",".join(PARTS)).split(",") if p.strip()]
    out: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory(prefix="dea-bench-train-") as d:
        tmp = Path(d)
        cwd = os.getcwd()
        os.chdir(tmp)  # mlflow artifacts and run folders stay inside the temporary folder
        try:
            for part in wanted:
                if part in ("perps", "daily", "perps5m") and not SHARED.is_dir():
                    out[f"{part}_skipped"] = f"no shared data at {SHARED}"
                    continue
                out.update(globals()[f"bench_{part}"](tmp))
        finally:
            os.chdir(cwd)
    for part, figures in _NOT_RUN.items():  # every goal figure is listed, measured or not
        for fig in figures:
            out.setdefault(fig, f"not run (DEA_BENCH_TRAIN_PARTS={','.join(wanted)})")
    return out
