"""Stress scenarios replayed through the live loop, the paper exchange and the risk engine.

For each scenario of ``stress.scenarios`` (:mod:`dea.stress`):

1. the *base path* is the most recent ``stress.base_steps`` decision steps of the experiment's
   own data (its canonical tables), plus enough earlier rows for every feature to warm up;
2. the scenario generator shocks that path (prices, volume, spread, depth, funding, feed,
   latency, rejects), and the shock is written back into the canonical tables: bar and mark
   prices are multiplied by the shocked/base price ratio of their decision step, volumes by the
   volume ratio, funding rows of the window carry the shocked settlements;
3. the tables are replayed (:class:`serving.feeds.replay.TableReplay`) into a fresh
   :class:`serving.loop.LiveLoop` — the same streaming features, model runner, risk engine,
   order logic and journal as production — trading against a :class:`ScenarioVenue`: the
   paper exchange plus the venue failures of the scenario (rejected orders, a latency spike,
   wider spreads and thinner depth). A stale feed is a gap in the events with the clock still
   ticking, exactly what a live feed outage looks like to the loop;
4. the per-decision record (equity, exposure ordered after risk, exposure held, kill switch)
   is scored by :mod:`dea.stress.metrics`.

numpy + stdlib at import (pyarrow only inside the table functions, via the replay).
"""

from __future__ import annotations

import heapq
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dea.config.experiment import ExperimentConfig
from dea.config.stress import Scenario
from dea.errors import DataError
from dea.progress import track
from dea.stress.library import build_scenario, select
from dea.stress.metrics import Limits, ReplayRecord, StressResult, summarise
from dea.stress.path import MarketPath, path_from_prices
from serving.events import Tick
from serving.exchanges.base import OrderAck

log = logging.getLogger(__name__)

BASELINE = "baseline"


# ------------------------------------------------------------------------------------ venue
class ScenarioVenue:
    """The paper exchange with a scenario's venue behaviour keyed by decision time.

    ``reject_share[t]``: share of the orders decided at t the venue refuses (a seeded draw);
    ``latency_ns[t]``: extra delay of orders decided at t (they fill at t + latency, against
    the prices then); ``spread_mult[t]`` / ``impact_mult[t]``: multipliers of the half spread
    and of the square-root impact coefficient while orders decided at t are filled.
    """

    name = "paper"

    def __init__(
        self,
        paper: Any,
        clock: np.ndarray,
        *,
        reject_share: np.ndarray,
        latency_ns: np.ndarray,
        spread_mult: np.ndarray,
        impact_mult: np.ndarray,
        seed: int = 0,
    ) -> None:
        self.paper = paper
        self.clock = np.asarray(clock, dtype=np.int64)
        self.reject_share = reject_share
        self.latency_ns = latency_ns
        self.spread_mult = spread_mult
        self.impact_mult = impact_mult
        self.rng = np.random.default_rng(seed)
        self.rejected = 0
        self.delayed = 0
        venue = paper.venue
        self._base_spread = venue.fills.half_spread
        self._base_coef = venue._coef
        self._mult = 1.0
        venue._coef = self._coef  # instance attribute: the venue's impact lookup, scaled
        self._base_latency = paper.latency_ns

    def _coef(self, i: int) -> float:
        return self._base_coef(i) * self._mult

    def _at(self, t: int) -> int:
        k = int(np.searchsorted(self.clock, t, side="right")) - 1
        return min(max(k, 0), len(self.clock) - 1)

    def _set_costs(self, t: int) -> None:
        k = self._at(t)
        self.paper.venue.fills.half_spread = self._base_spread * float(self.spread_mult[k])
        self._mult = float(self.impact_mult[k])

    # -- the Exchange protocol, forwarding to the paper exchange -------------------------------------
    def submit(self, orders: Sequence[Any], prices: np.ndarray | None = None) -> list[OrderAck]:
        if not orders:
            return []
        t = orders[0].t_decision
        k = self._at(t)
        share = float(self.reject_share[k])
        acks: list[OrderAck | None] = [None] * len(orders)
        passed = []
        for n, o in enumerate(orders):
            if share > 0 and self.rng.random() < share:
                acks[n] = OrderAck(o.client_id, "rejected", None, "stress scenario: venue rejects orders")
                self.rejected += 1
            else:
                passed.append((n, o))
        extra = int(self.latency_ns[k])
        self._set_costs(t)
        if passed:
            todo = [o for _, o in passed]
            if extra > 0:
                todo = [_delayed(o, extra) for o in todo]
                self.delayed += len(todo)
                self.paper.latency_ns = max(self._base_latency, extra)  # route through the venue's queue
            try:
                got = self.paper.submit(todo, prices)
            finally:
                self.paper.latency_ns = self._base_latency
            for (n, _), ack in zip(passed, got, strict=True):
                acks[n] = ack
        return [a for a in acks if a is not None]

    def on_market(self, ev: Any) -> None:
        self._set_costs(ev.ts)
        self.paper.on_market(ev)

    def before_decision(self, ts: int) -> None:
        self._set_costs(ts)
        self.paper.before_decision(ts)

    def lookup(self, client_id: str, instrument: str) -> OrderAck:
        return self.paper.lookup(client_id, instrument)

    def poll_fills(self, now_ns: int) -> list[Any]:
        return self.paper.poll_fills(now_ns)

    def cancelled(self) -> list[OrderAck]:
        return self.paper.cancelled()

    def positions(self) -> dict[str, float]:
        return self.paper.positions()

    def close(self) -> None:
        self.paper.close()


def _delayed(order: Any, extra_ns: int) -> Any:
    import dataclasses

    return dataclasses.replace(order, t_due=order.t_decision + extra_ns)


# ------------------------------------------------------------------------------------ base path
@dataclass(frozen=True)
class BaseWindow:
    """The decision times of the scenario window and of the warm-up before it."""

    replay_start: int
    window: np.ndarray  # [T] decision times scored
    step: int


def base_window(cfg: ExperimentConfig, replay: Any, warmup_rows: int) -> BaseWindow:
    step = replay.step
    n_all = (replay.clock_end - replay.clock_start) // step + 1
    n = min(cfg.stress.base_steps, n_all - 1)
    if n < 10:
        raise DataError(f"stress: only {n_all} decision steps of data; a stress window needs at least 11")
    end = replay.clock_end
    window = end - step * np.arange(n - 1, -1, -1, dtype=np.int64)
    warm = max(warmup_rows, cfg.stress.warmup_steps)
    start = max(replay.clock_start, int(window[0]) - warm * step)
    return BaseWindow(start, window, step)


def _asof(times: np.ndarray, avail: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Latest value with available_at <= each time (NaN before the first)."""
    order = np.argsort(avail, kind="stable")
    a, v = avail[order], values[order]
    k = np.searchsorted(a, times, side="right") - 1
    out = np.where(k >= 0, v[np.clip(k, 0, None)], np.nan)
    return out


def base_path(cfg: ExperimentConfig, tables: dict[str, Any], win: BaseWindow) -> MarketPath:
    """Close, volume and funding of every instrument at the window's decision times."""
    from dea.data.panel import _funding_rows, _rows_for

    data = cfg.data
    T, N = len(win.window), len(data.instruments)
    price = np.full((T, N), np.nan)
    volume = np.full((T, N), np.nan)
    settled = np.zeros((T, N))
    rate = np.full((T, N), np.nan)
    bucket_lo = win.window - win.step
    for src in data.sources:
        t = tables[src.name]
        if t.num_rows == 0:
            continue
        if src.kind == "bars":
            av = t["available_at"].to_numpy()
            for j, rows in _rows_for(src, t, data).items():
                if np.isnan(price[:, j]).all():
                    price[:, j] = _asof(win.window, av[rows], t["close"].to_numpy()[rows])
                    volume[:, j] = _asof(win.window, av[rows], t["volume"].to_numpy()[rows])
        elif src.kind == "funding":
            ts = t["ts_event"].to_numpy()
            av = t["available_at"].to_numpy()
            r = t["rate"].to_numpy()
            for j, inst in enumerate(data.instruments):
                if not (inst.has_funding and inst.funding == src.name):
                    continue
                rows = _funding_rows(src, t, data, j)
                rate[:, j] = _asof(win.window, av[rows], r[rows])
                tsj, rj = ts[rows], r[rows]
                lo = np.searchsorted(tsj, bucket_lo, side="right")
                hi = np.searchsorted(tsj, win.window, side="right")
                c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(rj))])
                settled[:, j] = c[hi] - c[lo]
    bad = ~np.isfinite(price)
    if bad.any():
        t0, j0 = np.argwhere(bad)[0]
        raise DataError(f"stress: no {data.symbols[j0]} price known at decision {int(win.window[t0])} of the stress window")
    return path_from_prices(
        win.window, price, data.symbols, volume=volume, spread_bps=2 * cfg.costs.half_spread_bps,
        funding_rate=rate, funding_settled=settled, name=BASELINE,
    )


# ------------------------------------------------------------------------------------ shocked tables
def shocked_tables(cfg: ExperimentConfig, tables: dict[str, Any], base: MarketPath, shocked: MarketPath) -> dict[str, Any]:
    """The canonical tables with the scenario's price, volume and funding changes applied."""
    import pyarrow as pa

    from dea.data.panel import _funding_rows, _rows_for

    data = cfg.data
    clock, step = base.clock, base.step_ns
    ratio = shocked.price / base.price
    vratio = np.where(np.isfinite(shocked.volume / base.volume), shocked.volume / base.volume, 1.0)
    out = dict(tables)

    def bucket(av: np.ndarray) -> np.ndarray:
        """Window step whose decision first sees a row available at ``av`` (-1: not in window)."""
        k = np.searchsorted(clock, av, side="left")
        inside = (k < len(clock)) & (av > clock[0] - step)
        return np.where(inside, np.minimum(k, len(clock) - 1), -1)

    for src in data.sources:
        t = tables[src.name]
        if t.num_rows == 0 or src.kind not in ("bars", "mark", "funding"):
            continue
        if src.kind in ("bars", "mark"):
            cols = ("open", "high", "low", "close") if src.kind == "bars" else ("mark_price", "index_price")
            arrays = {c: t[c].to_numpy(zero_copy_only=False).astype(np.float64).copy() for c in cols}
            vol = t["volume"].to_numpy(zero_copy_only=False).astype(np.float64).copy() if src.kind == "bars" else None
            av = t["available_at"].to_numpy()
            changed = False
            for j, rows in _rows_for(src, t, data).items():
                k = bucket(av[rows])
                sel = rows[k >= 0]
                if sel.size == 0:
                    continue
                f = ratio[k[k >= 0], j]
                if np.all(f == 1.0) and (vol is None or np.all(vratio[k[k >= 0], j] == 1.0)):
                    continue
                changed = True
                for c in cols:
                    arrays[c][sel] *= f
                if vol is not None:
                    vol[sel] *= vratio[k[k >= 0], j]
            if changed:
                for c, v in arrays.items():
                    t = t.set_column(t.schema.get_field_index(c), c, pa.array(v))
                if vol is not None:
                    t = t.set_column(t.schema.get_field_index("volume"), "volume", pa.array(vol))
                out[src.name] = t
        else:  # funding: rows settling inside a window step carry the shocked settlement
            diff = np.argwhere(np.abs(shocked.funding_settled - base.funding_settled) > 0)
            if diff.size == 0:
                continue
            ts = t["ts_event"].to_numpy()
            rates = t["rate"].to_numpy(zero_copy_only=False).astype(np.float64).copy()
            extra: list[dict[str, Any]] = []
            for j, inst in enumerate(data.instruments):
                if not (inst.has_funding and inst.funding == src.name):
                    continue
                rows = _funding_rows(src, t, data, j)
                label = t["instrument"][int(rows[0])].as_py() if rows.size else inst.symbol
                interval = int(np.median(t["interval_ns"].to_numpy()[rows])) if rows.size else step
                for k in diff[diff[:, 1] == j][:, 0]:
                    lo, hi = clock[k] - step, clock[k]
                    in_step = rows[(ts[rows] > lo) & (ts[rows] <= hi)]
                    value = float(shocked.funding_settled[k, j])
                    if in_step.size:
                        rates[in_step] = value / in_step.size
                    else:
                        extra.append({"ts_event": int(hi), "available_at": int(hi), "instrument": label,
                                      "rate": value, "interval_ns": interval})
            t = t.set_column(t.schema.get_field_index("rate"), "rate", pa.array(rates))
            if extra:
                add = pa.Table.from_pylist(extra, schema=t.schema)
                t = pa.concat_tables([t, add]).sort_by([("ts_event", "ascending")])
            out[src.name] = t
    return out


def outage_feed(events: Iterable[Any], clock: np.ndarray, feed_ok: np.ndarray, step: int) -> Iterator[Any]:
    """Drop the events that would arrive while the feed is down, and tick the clock instead."""
    down = np.flatnonzero(~feed_ok)
    if down.size == 0:
        yield from events
        return
    lo, hi = int(clock[down[0]]) - step, int(clock[down[-1]])
    kept = (ev for ev in events if not (lo < ev.available_at <= hi))
    ticks = (Tick(int(clock[k])) for k in down)
    yield from heapq.merge(kept, ticks, key=lambda e: e.available_at)


# ------------------------------------------------------------------------------------ one replay
@dataclass
class ScenarioReplay:
    name: str
    record: ReplayRecord
    result: StressResult
    path: MarketPath
    summary: dict[str, Any] = field(default_factory=dict)
    costs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # [T, 4] cumulative fees, spread, impact, funding

    def cost_between(self, t0: int, t1: int, kind: int) -> float:
        """Cost ``kind`` (0 fees, 1 spread, 2 impact, 3 funding) paid over decisions (t0, t1]."""
        c = self.costs[:, kind]
        i0, i1 = np.searchsorted(self.record.clock, [t0, t1])
        return float(c[min(i1, len(c) - 1)] - c[min(i0, len(c) - 1)])


def replay_scenario(
    cfg: ExperimentConfig,
    model_path: Path,
    tables: dict[str, Any],
    base: MarketPath,
    shocked: MarketPath,
    win: BaseWindow,
    workdir: Path,
    on_loop: Callable[[Any], None] | None = None,
) -> ScenarioReplay:
    """Run one shocked path through a fresh live loop and score it (``on_loop`` may attach
    monitors, e.g. :func:`serving.drift_monitor.attach_to_loop`, before the replay starts)."""
    from dea.risk.engine import instrument_caps
    from serving.exchanges.paper import PaperExchange
    from serving.feeds.replay import TableReplay
    from serving.journal import Journal
    from serving.loop import LiveLoop, resolve_latency_ns
    from serving.runner import PolicyRunner

    data = shocked_tables(cfg, tables, base, shocked) if shocked is not base else tables
    replay = TableReplay(cfg.data, data, start=win.replay_start, end=int(win.window[-1]))
    paper = PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg))
    spread_mult = np.nan_to_num(shocked.spread_bps / base.spread_bps, nan=1.0).max(axis=1)
    impact_mult = np.sqrt(np.nan_to_num(base.depth / shocked.depth, nan=1.0)).max(axis=1)
    venue = ScenarioVenue(
        paper, shocked.clock, reject_share=shocked.reject_share, latency_ns=shocked.latency_ns,
        spread_mult=spread_mult, impact_mult=impact_mult, seed=cfg.training.seed,
    )
    journal = Journal(workdir / f"{shocked.name}.journal.sqlite", synchronous="OFF")
    rows: list[tuple[int, float, np.ndarray, bool]] = []
    costs: list[tuple[float, float, float, float]] = []
    loop: Any = None

    def record(point: str, t: int) -> None:
        if point == "after_fills":
            acc = loop.account
            e = acc.equity()
            held = acc.exposure(None, e) if e > 0 else np.zeros(loop.n)
            rows.append((t, e, np.asarray(held, dtype=np.float64), bool(loop.risk.halted)))
            costs.append((sum(acc.fees), sum(acc.spread), sum(acc.impact), sum(acc.funding)))

    runner = PolicyRunner.from_path(model_path)
    loop = LiveLoop(
        cfg, runner, venue, journal, clock_start=replay.clock_start, clock_end=replay.clock_end,
        native_steps=replay.native_steps, crash_hook=record,
    )
    if on_loop is not None:
        on_loop(loop)
    feed = outage_feed(replay.events(loop.panel), shocked.clock, shocked.feed_ok, win.step)
    summary = loop.run(feed)
    decisions = {d["t_ns"]: d for d in journal.decisions()}
    journal.close()
    if not rows:
        raise DataError(f"stress {shocked.name}: the loop took no decision (data too short for the feature warm-up?)")
    clock = np.array([r[0] for r in rows], dtype=np.int64)
    ordered = np.array([[np.nan if v is None else v for v in decisions[t]["allowed"]] for t in clock], dtype=np.float64)
    rec = ReplayRecord(
        clock=clock,
        equity=np.array([r[1] for r in rows]),
        ordered=np.nan_to_num(ordered),
        held=np.vstack([r[2] for r in rows]),
        halted=np.array([r[3] for r in rows]),
        rejected_orders=venue.rejected,
        fallbacks=int(sum(summary.fallbacks.values())),
    )
    r = cfg.risk
    limits = Limits(
        caps=instrument_caps(r, cfg.data.instruments), max_gross=r.max_gross, max_net=r.max_net,
        max_leverage=r.max_leverage, dd_hard=r.drawdown.hard if r.drawdown.enabled else None,
    )
    score_from = int(np.searchsorted(clock, win.window[0]))
    shock_at = int(np.searchsorted(clock, int(win.window[shocked.shock[0]]))) if shocked.shock else None
    result = summarise(
        shocked.name, rec, limits, score_from=min(score_from, len(clock) - 1),
        shock_start=shock_at, level=cfg.stress.var_level, derisk_level=cfg.stress.derisk_level,
    )
    info = summary.as_dict()
    info["delayed_orders"] = venue.delayed
    acc = loop.account
    info["costs"] = {"fees": float(sum(acc.fees)), "spread": float(sum(acc.spread)), "impact": float(sum(acc.impact)),
                     "funding": float(sum(acc.funding))}
    return ScenarioReplay(shocked.name, rec, result, shocked, info, np.asarray(costs))


# ------------------------------------------------------------------------------------ entry point
@dataclass
class StressRun:
    results: list[StressResult]
    replays: list[ScenarioReplay]


def run_stress(
    cfg: ExperimentConfig,
    model_path: str | Path,
    *,
    names: str | None = None,
    scenarios: Sequence[Scenario] | None = None,
    tables: dict[str, Any] | None = None,
    store: str | Path | None = None,
    workdir: str | Path | None = None,
    baseline: bool = True,
) -> StressRun:
    """Replay the baseline and every selected scenario through the live loop (see module doc)."""
    from dea.features.featureset import FeatureSet
    from serving.feeds.replay import TableReplay, load_tables

    specs = list(scenarios) if scenarios is not None else select(cfg.stress.all, names)
    tables = tables if tables is not None else load_tables(cfg, store=store)
    full = TableReplay(cfg.data, tables)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    win = base_window(cfg, full, int(fs.warmup) + 2)
    base = base_path(cfg, tables, win)
    paths = ([base] if baseline else []) + [build_scenario(s, base, cfg.resolve_path) for s in specs]
    tmp = tempfile.TemporaryDirectory(prefix="dea-stress-") if workdir is None else None
    where = Path(workdir) if workdir is not None else Path(tmp.name)
    where.mkdir(parents=True, exist_ok=True)
    try:
        replays = [replay_scenario(cfg, Path(model_path), tables, base, p, win, where)
                   for p in track(paths, "stress", unit="scenario", detail=lambda p: p.name)]
    finally:
        if tmp is not None:
            tmp.cleanup()
    for rp in replays:
        if rp.result.breaches:
            log.error("stress %s: %d hard-limit breaches, e.g. %s", rp.name, rp.result.breaches, rp.result.breach_detail[:3])
    return StressRun([rp.result for rp in replays], replays)


__all__ = ["BaseWindow", "ScenarioReplay", "ScenarioVenue", "StressRun", "base_path", "base_window",
           "outage_feed", "replay_scenario", "run_stress", "shocked_tables"]
