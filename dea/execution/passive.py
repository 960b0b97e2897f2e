"""Passive fill study: how often, how fast and at what adverse selection a resting order at the
touch fills under each queue model, on a recorded capture.

Why: the queue model is the one unobservable assumption of a limit-order backtest (L2 data does
not say whether a cancel was ahead of us). Running the same probes under hftbacktest's model
family — ``risk_averse`` (cancels never advance us: the most conservative) and ``power`` with
n = 1, 2, 3 (a cancel is ahead of us with weight front^n) — brackets what passive execution can
be expected to deliver, and the adverse selection of the fills it does get (the mid ``markout``
after a fill, signed so that negative means the market moved against the filled order).

Every ``every_ns`` a buy at the best bid and a sell at the best ask of ``size`` are posted (GTC,
expiring after ``ttl_ns``); probes are independent (each sees the public queue, not the others).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from dea.book.l2 import ASK, BID
from dea.execution.order_types import OrderRequest
from dea.execution.queue import LimitOrderSimulator, QueueModel
from dea.execution.replay import CaptureMsg, feed, mid_path

DEFAULT_MODELS: tuple[QueueModel, ...] = (
    QueueModel("risk_averse"), QueueModel("power", 1.0), QueueModel("power", 2.0), QueueModel("power", 3.0),
)


@dataclass(frozen=True)
class PassiveStats:
    model: str
    probes: int
    fill_rate: float  # share of probes filled (fully) before expiry
    mean_time_to_fill_s: float
    markout_bps: float  # mean signed mid move after fills (negative = adverse selection)
    fills: int


def passive_study(
    messages: Sequence[CaptureMsg],
    *,
    models: Sequence[QueueModel] = DEFAULT_MODELS,
    every_ns: int = 5_000_000_000,
    ttl_ns: int = 30_000_000_000,
    size: float = 0.01,
    markout_ns: int = 5_000_000_000,
    submit_latency_ns: int = 0,
    lot: float = 0.0,
) -> list[PassiveStats]:
    """Post probes on every model's simulator and measure fill rate, time to fill, markout.
    ``lot``: the venue's lot (fills from the queue come in lots, as at the venue and in
    hftbacktest; 0 = exact sizes)."""
    sims = [LimitOrderSimulator(model=m, submit_latency_ns=submit_latency_ns, lot=lot) for m in models]
    next_post: int | None = None
    seq = 0
    last = messages[-1].ts if messages else 0
    for msg in messages:
        for sim in sims:
            feed(sim, msg)
        ref = sims[0]
        if next_post is None:
            next_post = msg.ts
        if msg.ts >= next_post and msg.ts + ttl_ns + markout_ns <= last and ref.valid:
            bb, ba = ref.best(BID), ref.best(ASK)
            if bb == bb and ba == ba:
                for side, px in ((1, bb), (-1, ba)):
                    req = OrderRequest("X", 0, side * size, f"probe-{seq}", msg.ts, kind="limit", price=px,
                                       tif="GTX", expire_ns=msg.ts + ttl_ns)
                    seq += 1
                    for sim in sims:
                        sim.submit(msg.ts, req)
            next_post = msg.ts + every_ns
    path = mid_path(messages)
    return [probe_stats(m.name, [(o.req.client_id, o.arrive_ts, o.status == "filled") for o in sim.orders.values()],
                        [(f.client_id, f.ts, f.qty, f.price) for f in sim.fills], path, markout_ns)
            for m, sim in zip(models, sims, strict=True)]


def probe_stats(
    model: str,
    probes: Sequence[tuple[str, int, bool]],
    fills: Sequence[tuple[str, int, float, float]],
    path: tuple[Sequence[int], Sequence[float]],
    markout_ns: int,
) -> PassiveStats:
    """Statistics of probes ``(id, posted at, filled in full)`` and their fills ``(id, time,
    signed qty, price)``: share filled, mean time to the last fill of a filled probe, mean mid
    markout ``markout_ns`` after each fill on the mid path ``(times, mids)`` (one definition
    for DEA's simulator and any reference it is compared with)."""
    times, mids = path
    last: dict[str, int] = {}
    for cid, ts, _, _ in fills:
        last[cid] = max(ts, last.get(cid, ts))
    ttf = [(last[cid] - t0) / 1e9 for cid, t0, full in probes if full]
    marks = []
    for _, ts, qty, price in fills:
        j = bisect_left(times, ts + markout_ns)
        if j < len(times):
            s = 1.0 if qty > 0 else -1.0
            marks.append(s * (mids[j] - price) / price * 1e4)
    n_full = sum(1 for p in probes if p[2])
    return PassiveStats(model, len(probes), n_full / len(probes) if probes else math.nan,
                        sum(ttf) / len(ttf) if ttf else math.nan, sum(marks) / len(marks) if marks else math.nan,
                        len(fills))
