"""Backtest benchmark: ``python -m benchmarks backtest``.

Figures:
- vectorised kernel throughput, 10 instruments x 2,000,000 steps, fees + square-root impact +
  funding + risk rules on, every instrument trading every step (asset-steps/s, one core: numba
  runs single-threaded); market preparation (impact coefficients from volume) timed apart, best
  of the same repeats (its first run on fresh memory also pays the machine's first-touch page
  clearing, reported as ``vec_prepare_impact_first_s``);
- ``vec_numba_floor_*``: the anchor, a hand-fused numba loop on the same arrays doing the same
  arithmetic (marks, funding, order sizing, fees, spread, square-root impact, cash, the same
  per-step series and exposures) with no risk rule but a cap, no liquidation check, no
  validation: what one core does with the bare arithmetic and memory traffic of the case
  (square roots and divisions are ~half of it on this hardware);
- event-driven replay: bar replay (events/s and decisions/s, the reference engine; every bar is
  a decision) and a trade stream with a decision every 100 events (events/s, recording off,
  events built beforehand: the replay's own cost);
- memory of the trade replay at two lengths (tracemalloc peak): flat in replay length;
- the risk engine's per-decision latency (what the live loop pays), 4 instruments.

Times are the best of a few repeats of CPU time of this thread (the machine is shared).
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import gc  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import math  # noqa: E402

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402

# the goals of issue 17 (python -m benchmarks shows each figure's against its goal)
GOALS = {
    "vec_asset_steps_per_s": (">=", 200e6),
    "vec_end_to_end_asset_steps_per_s": (">=", 100e6),
    "vec_prepare_share_of_end_to_end": ("<=", 0.5),
    "replay_bars_events_per_s": (">=", 300_000),
    "replay_trades_events_per_s": (">=", 300_000),
}

T_VEC = 2_000_000
N_VEC = 10
STEP = 60 * 1_000_000_000


def _instruments(n: int):  # noqa: ANN202
    from dea.instruments import Instrument

    return tuple(Instrument(symbol=f"PERP{i}", kind="perpetual", funding="f", taker_fee=0.0005, maker_fee=0.0002,
                            maintenance_margin=0.005) for i in range(n))


def _market(T: int, N: int, seed: int = 0):  # noqa: ANN202
    from dea.backtest.market import Market, impact_coefficients

    rng = np.random.default_rng(seed)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0, 5e-4, (T, N)), axis=0))
    volume = rng.uniform(5e4, 1e5, (T, N))
    high, low = price * 1.001, price * 0.999
    funding = np.zeros((T, N))
    funding[::480] = rng.normal(1e-4, 1e-4, (len(range(0, T, 480)), N))  # 8h settlements on a 1m clock
    k = np.full(N, 0.5)
    preps = []
    for _ in range(3 if T >= 100_000 else 1):
        t0 = time.thread_time()
        coef = impact_coefficients(price, volume, high, low, k, 30, 30)
        preps.append(time.thread_time() - t0)
    prep = (min(preps), preps[0])
    clock = np.arange(T, dtype=np.int64) * STEP
    return Market(clock, STEP, _instruments(N), price, funding, coef, k, volume, high, low), prep


@nb.njit(cache=True, error_model="numpy")
def _floor_kernel(price, fund_t, fund_i, fund_r, coef, target, fee, half_spread, cap, equity0, mm,
                  equity_out, net_out, gross_out, fee_out, spread_out, impact_out, funding_out, turnover_out,
                  margin_out, expo):  # pragma: no cover - numba
    """The anchor of the vectorised figures (see the module docstring)."""
    T, N = price.shape
    q = np.zeros(N)
    cash = equity0
    e_prev = equity0
    fk = 0
    for s in range(T):
        held = 0.0
        for i in range(N):
            held += q[i] * price[s, i]
        c_fund = 0.0
        while fk < len(fund_t) and fund_t[fk] == s:
            paid = q[fund_i[fk]] * price[s, fund_i[fk]] * fund_r[fk]
            cash -= paid
            c_fund += paid
            fk += 1
        e = cash + held
        c_fee = 0.0
        c_spread = 0.0
        c_impact = 0.0
        traded = 0.0
        held = 0.0
        mreq = 0.0
        for i in range(N):
            p = price[s, i]
            d = min(max(target[s, i], -cap), cap) * e / p - q[i]
            a = abs(d) * p
            f = a * fee[i]
            sp = a * half_spread
            im = coef[s, i] * a * math.sqrt(a)
            cash -= d * p + f + sp + im
            c_fee += f
            c_spread += sp
            c_impact += im
            traded += a
            q[i] += d
            v = q[i] * p
            held += v
            mreq += abs(v) * mm
        e = cash + held
        inv = 1.0 / e
        for i in range(N):
            expo[s, i] = q[i] * price[s, i] * inv
        equity_out[s] = e
        margin_out[s] = mreq * inv
        ip = 1.0 / e_prev
        net_out[s] = e / e_prev - 1.0
        fee_out[s] = c_fee * ip
        spread_out[s] = c_spread * ip
        impact_out[s] = c_impact * ip
        funding_out[s] = c_fund * ip
        turnover_out[s] = traded * ip
        gross_out[s] = (e - e_prev + c_fee + c_spread + c_impact + c_fund) * ip
        e_prev = e
    return cash


def _floor(market, targets: np.ndarray) -> float:  # noqa: ANN001
    T, N = market.price.shape
    outs = [np.empty(T) for _ in range(9)]
    return _floor_kernel(market.price, *market.funding_events, market.impact_coef, targets, np.full(N, 5e-4), 1e-4,
                         0.5, 1e6, 0.005, *outs, np.empty((T, N)))


def _targets(T: int, N: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.15 * np.sin(np.cumsum(rng.normal(0, 0.003, (T, N)), axis=0) + rng.uniform(0, 6, N))


def _vectorised() -> dict[str, float | int | str]:
    from dea.backtest.config import CostsConfig
    from dea.backtest.vectorized import backtest
    from dea.risk.config import RiskConfig

    costs = CostsConfig(half_spread_bps=1.0, impact={"model": "sqrt", "k": 0.5})
    risk = RiskConfig(max_exposure=0.5, max_gross=3.0, max_net=1.0, drawdown={"soft": 0.5, "hard": 0.9})
    small, _ = _market(1000, N_VEC)
    t0 = time.perf_counter()
    backtest(small, _targets(1000, N_VEC), costs=costs, risk=risk)  # compile or load the numba cache
    warm = time.perf_counter() - t0
    market, prep = _market(T_VEC, N_VEC)
    targets = _targets(T_VEC, N_VEC)
    _floor(small, _targets(1000, N_VEC))  # compile or load the anchor
    best = np.inf
    floor = np.inf
    res = None
    for _ in range(3):
        t0 = time.thread_time()
        res = backtest(market, targets, costs=costs, risk=risk)
        best = min(best, time.thread_time() - t0)
        t0 = time.thread_time()
        _floor(market, targets)
        floor = min(floor, time.thread_time() - t0)
    traded = float((res.turnover > 0).mean())
    steps = T_VEC * N_VEC
    return {
        "vec_instruments": N_VEC,
        "vec_steps": T_VEC,
        "vec_asset_steps_per_s": steps / best,
        "vec_numba_floor_asset_steps_per_s": steps / floor,
        "vec_share_of_floor": floor / best,
        "vec_seconds": best,
        "vec_prepare_impact_s": prep[0],
        "vec_prepare_impact_first_s": prep[1],
        "vec_prepare_share_of_end_to_end": prep[0] / (best + prep[0]),
        "vec_end_to_end_asset_steps_per_s": steps / (best + prep[0]),
        "vec_first_call_s (compile or cache load)": warm,
        "vec_steps_with_trades_share": traded,
        "vec_total_cost_pct": 100 * float(sum(v.sum() for v in res.costs.values())),
        "vec_final_equity": res.final_equity,
    }


def _bar_replay() -> dict[str, float]:
    from dea.backtest.config import CostsConfig
    from dea.backtest.event import EventBacktester, TargetSchedule, market_events
    from dea.risk.config import RiskConfig

    T, N = 20_000, 3
    market, _ = _market(T, N, seed=3)
    targets = _targets(T, N)
    n_events = sum(1 for _ in market_events(market))
    best = np.inf
    for _ in range(2):
        bt = EventBacktester(market.instruments, CostsConfig(), RiskConfig(drawdown={"soft": 0.5, "hard": 0.9}),
                             TargetSchedule(targets), impact_k=market.impact_k)
        t0 = time.thread_time()
        bt.run(market_events(market), (int(t) for t in market.clock))
        best = min(best, time.thread_time() - t0)
    return {"replay_bars_events_per_s": n_events / best, "replay_bars_decisions_per_s": T / best,
            "replay_bars_asset_steps_per_s": T * N / best}


def _trade_stream(n_events: int, every: int = 100):  # noqa: ANN202
    from dea.backtest.event import TradeEvent

    rng = np.random.default_rng(5)
    price = [100.0, 50.0, 20.0]
    ts = 0
    chunk = 4096  # random draws a chunk at a time: the generator is not what is measured
    for start in range(0, n_events, chunk):
        for k, z in enumerate((1.0 + 1e-4 * rng.standard_normal(min(chunk, n_events - start))).tolist(), start):
            i = k % 3
            price[i] *= z
            ts += 10_000_000  # 10 ms apart
            yield TradeEvent(ts, i, price[i], 1.0)


def _trade_backtester():  # noqa: ANN202
    from dea.backtest.config import CostsConfig
    from dea.backtest.event import EventBacktester, PolicyOutput
    from dea.risk.config import RiskConfig

    rng = np.random.default_rng(7)

    def policy(ctx):  # noqa: ANN001, ANN202
        return PolicyOutput(np.clip(ctx.exposure + rng.normal(0, 0.05, 3), -0.5, 0.5))

    costs = CostsConfig(impact={"model": "none"})
    return EventBacktester(_instruments(3), costs, RiskConfig(drawdown={"enabled": False}), policy, record=False)


def _decision_times(n_events: int):  # noqa: ANN202
    return (k * 1_000_000_000 for k in range(1, n_events // 100 + 1))  # every second = every 100 trades


def _trade_replay(n_events: int) -> tuple[int, int]:
    """Peak traced memory during a streamed replay and memory still held after it (bytes)."""
    bt = _trade_backtester()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    bt.run(_trade_stream(n_events), _decision_times(n_events))
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - before, after - before


def _trade_throughput(n_events: int = 300_000) -> float:
    """Events/s of the replay alone: events built beforehand, no tracemalloc (which hooks every
    allocation), the best of two runs."""
    events = list(_trade_stream(n_events))
    best = np.inf
    for _ in range(2):
        bt = _trade_backtester()
        t0 = time.thread_time()
        bt.run(events, _decision_times(n_events))
        best = min(best, time.thread_time() - t0)
    return n_events / best


def _risk_latency() -> dict[str, float]:
    from dea.instruments import Instrument
    from dea.risk.config import RiskConfig
    from dea.risk.engine import RiskEngine

    eng = RiskEngine(RiskConfig(no_trade_band=0.01, max_order_notional=0.5), [Instrument(symbol=f"S{i}") for i in range(4)])
    rng = np.random.default_rng(0)
    tg = rng.normal(0, 0.3, (20_000, 4))
    cur = np.zeros(4)
    lat = np.empty(len(tg))
    for k in range(len(tg)):
        t0 = time.perf_counter_ns()
        d = eng.apply(k * 1_000_000_000, tg[k], cur, 1e6)
        lat[k] = time.perf_counter_ns() - t0
        cur = d.exposure
    return {"risk_apply_p50_us": float(np.percentile(lat, 50)) / 1e3,
            "risk_apply_p99_us": float(np.percentile(lat, 99)) / 1e3}


def run() -> dict[str, float | int | str]:
    out: dict[str, float | int | str] = {}
    out.update(_vectorised())
    out.update(_bar_replay())
    out["replay_trades_events_per_s"] = _trade_throughput()
    _trade_replay(20_000)  # warm numpy's and CPython's small-object caches, which tracemalloc sees
    peak_small, kept_small = _trade_replay(100_000)
    peak_large, kept_large = _trade_replay(800_000)
    out["replay_trades_peak_kb_100k_events"] = peak_small / 1024
    out["replay_trades_peak_kb_800k_events"] = peak_large / 1024
    out["replay_trades_retained_kb_100k_events"] = kept_small / 1024
    out["replay_trades_retained_kb_800k_events"] = kept_large / 1024
    out.update(_risk_latency())
    return out


if __name__ == "__main__":  # pragma: no cover
    for k, v in run().items():
        print(f"{k}: {v}")
