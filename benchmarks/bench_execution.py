"""Execution: implementation shortfall of immediate vs TWAP vs POV vs passive-then-aggressive on
the Binance USDT-M BTCUSDT capture for a range of parent sizes (bps of arrival notional, with the
backtest's modelled cost beside it), passive fill rates and adverse selection under hftbacktest's
queue models, the order-path latency from a decision to the venue call (µs), and immediate
parents routed across the perp and the spot capture vs the perp alone (``routed_*``).

Parents start every 40 s through the capture, alternating buy and sell, each on its own
simulator (they do not interact); a shortfall figure is the notional-weighted mean over them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

CAPTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
SPOT = CAPTURE.parent / "spot_btcusdt_20240808.gz"
SIZES = (0.5, 2.0, 10.0, 30.0, 60.0)  # BTC
S = 1_000_000_000


def _shortfalls(msgs, figures: dict) -> None:  # noqa: ANN001
    from dea.execution.quality import shortfall, summarize
    from dea.execution.replay import run_parents
    from dea.execution.schedule import ExecutionConfig

    t0 = msgs[0].ts
    t_last = msgs[-1].ts
    algos = {
        "immediate": ExecutionConfig(algo="immediate"),
        "twap": ExecutionConfig(algo="twap", horizon="60s", slices=6, submit_latency="5ms"),
        "pov": ExecutionConfig(algo="pov", participation=0.1, pov_interval="1s", horizon="60s", submit_latency="5ms"),
        "passive_aggressive": ExecutionConfig(algo="passive_aggressive", passive_timeout="20s", submit_latency="5ms",
                                              cancel_latency="5ms"),
    }
    starts = [t0 + (20 + 40 * k) * S for k in range(8) if t0 + (20 + 40 * k) * S + 70 * S < t_last]
    for size in SIZES:
        parents = [(t, size if k % 2 == 0 else -size) for k, t in enumerate(starts)]
        for name, cfg in algos.items():
            recs = run_parents(msgs, parents, cfg, id_prefix=name[:3])
            agg = summarize([shortfall(r) for r in recs])[name]
            figures[f"is_bps.{name}.{size:g}btc"] = round(agg["total_bps"], 3)
            if name == "immediate":
                figures[f"modelled_bps.{size:g}btc"] = round(agg["modelled_bps"], 3)
            if name != "immediate":
                figures[f"fill_rate.{name}.{size:g}btc"] = round(agg["fill_rate"], 4)
    figures["parents_per_cell"] = len(starts)


def _routed(msgs, figures: dict) -> None:  # noqa: ANN001
    """Immediate parents on the USDT-M perp alone vs routed across the perp (5 bps) and the spot
    capture of the same minutes (at Binance's default spot taker fee, 10 bps, and at a 2 bps
    tier): shortfall against the perp's mid (the spot fills' timing term carries the basis)."""
    import heapq

    from dea.book.capture import parse_capture
    from dea.execution.config import ExecutionConfig
    from dea.execution.quality import shortfall, summarize
    from dea.execution.replay import VenueMsg, capture_messages, run_parents
    from dea.execution.routed import RoutedVenue

    if not SPOT.is_file():
        figures["routed"] = f"skipped: spot capture not found: {SPOT}"
        return
    spot = capture_messages(parse_capture(SPOT))
    merged = list(heapq.merge((VenueMsg(m.ts, "usdm", m) for m in msgs), (VenueMsg(m.ts, "spot", m) for m in spot),
                              key=lambda m: m.ts))
    t0, t_last = msgs[0].ts, msgs[-1].ts
    starts = [t0 + (20 + 40 * k) * S for k in range(8) if t0 + (20 + 40 * k) * S + 70 * S < t_last]
    for size in SIZES:
        parents = [(t, size if k % 2 == 0 else -size) for k, t in enumerate(starts)]
        single = run_parents(msgs, parents, ExecutionConfig(algo="immediate"), id_prefix="one")
        figures[f"routed_is_bps.usdm_only.{size:g}btc"] = round(summarize([shortfall(r) for r in single])["immediate"]["total_bps"], 3)
        for tag, spot_fee in (("spot10bps", 0.001), ("spot2bps", 0.0002)):
            cfg = ExecutionConfig(algo="immediate", routes={"BTCUSDT": [
                {"venue": "usdm", "taker_fee": 0.0005}, {"venue": "spot", "taker_fee": spot_fee, "lot": 0.00001}]})
            recs = run_parents(merged, parents, cfg, id_prefix="rt",
                               venue=lambda cfg=cfg: RoutedVenue.simulated("BTCUSDT", cfg, maker_fee=0.0002, lot=0.001))
            figures[f"routed_is_bps.usdm+{tag}.{size:g}btc"] = round(summarize([shortfall(r) for r in recs])["immediate"]["total_bps"], 3)
            legs = [leg for r in recs for leg in r.detail["routes"]]
            filled = sum(abs(leg["filled"]) for leg in legs)
            spot_q = sum(abs(leg["filled"]) for leg in legs if leg["venue"] == "spot")
            figures[f"routed_spot_share.usdm+{tag}.{size:g}btc"] = round(spot_q / filled, 4) if filled else None


def _passive(msgs, figures: dict) -> None:  # noqa: ANN001
    """Touch probes under each queue model (fills in the instrument's 0.001 BTC lots), and the
    same probes through the restatement of hftbacktest's models (benchmarks/hftbacktest_reference.py):
    how many probes have every fill identical, and the reference's own fill rate and markout."""
    from benchmarks.hftbacktest_reference import cross_check
    from dea.execution.passive import passive_study

    for st in passive_study(msgs, every_ns=5 * S, ttl_ns=30 * S, size=0.01, markout_ns=5 * S, lot=0.001):
        figures[f"passive_fill_rate.{st.model}"] = round(st.fill_rate, 4)
        figures[f"passive_time_to_fill_s.{st.model}"] = round(st.mean_time_to_fill_s, 3)
        figures[f"passive_markout_5s_bps.{st.model}"] = round(st.markout_bps, 4)
    figures["passive_probes"] = st.probes
    for model, n in (("risk_averse", 1.0), ("power", 1.0), ("power", 2.0), ("power", 3.0)):
        r = cross_check(msgs, model, n, every_ns=5 * S, ttl_ns=30 * S, size=0.01, markout_ns=5 * S)
        name = r["reference"].model
        figures[f"hftbacktest_ref.identical_probes.{name}"] = f"{r['identical']}/{r['probes']}"
        figures[f"hftbacktest_ref.fill_rate.{name}"] = round(r["reference"].fill_rate, 4)
        figures[f"hftbacktest_ref.markout_5s_bps.{name}"] = round(r["reference"].markout_bps, 4)


def _latency(msgs, figures: dict) -> None:  # noqa: ANN001
    """Decision -> venue call: risk engine, order sizing, parent start, schedule wake, child
    creation, up to the simulator's submit (and, for ccxt, up to create_order)."""
    from dea.execution.desk import ExecutionDesk
    from dea.execution.order_types import OrderRequest
    from dea.execution.orders import OrderSpec, generate_orders
    from dea.execution.replay import BookMsg, feed
    from dea.execution.schedule import ExecutionConfig
    from dea.instruments import Instrument
    from dea.risk.config import RiskConfig
    from dea.risk.engine import RiskEngine
    from serving.exchanges.ccxt_exchange import CcxtExchange

    perp = Instrument(symbol="BTCUSDT", kind="perpetual", funding="none", lot_size=0.001, tick_size=0.1)
    desk = ExecutionDesk([perp], ExecutionConfig(algo="passive_aggressive", passive_timeout="20s"))
    sim = desk.executors[0].sim
    for m in msgs[:3000]:
        if isinstance(m, BookMsg):
            feed(sim, m)
    stamp: list[int] = []
    real_submit = sim.submit

    def submit(ts, req):  # noqa: ANN001, ANN202
        stamp.append(time.perf_counter_ns())
        return real_submit(ts, req)

    sim.submit = submit  # type: ignore[method-assign]
    import gc

    gc.collect()
    gc.freeze()  # the loaded capture (millions of tuples) out of the collector's scans, as a live process would
    risk = RiskEngine(RiskConfig(max_exposure=3.0, max_gross=3.0, max_net=3.0, max_leverage=3.0,
                                 drawdown={"enabled": False}), [perp])
    spec = OrderSpec.from_instruments([perp])
    lat = []
    px = np.array([sim.mid()])
    for k in range(2000):
        t = msgs[3000].ts + k * S
        tgt = np.array([0.5 if k % 2 == 0 else -0.5])
        n = len(stamp)
        t_dec = time.perf_counter_ns()
        dec = risk.apply(t, tgt, np.array([0.0]), 1e6, prices=px)
        orders = generate_orders(t, dec.exposure, np.zeros(1), np.array(desk.in_flight()), 1e6, px, spec)
        desk.rebalance(t, 0, orders[0].qty)
        if len(stamp) > n:
            lat.append((stamp[n] - t_dec) / 1e3)
    a = np.asarray(lat[100:])
    figures["decision_to_venue_us.p50"] = round(float(np.percentile(a, 50)), 2)
    figures["decision_to_venue_us.p90"] = round(float(np.percentile(a, 90)), 2)
    figures["decision_to_venue_us.p99"] = round(float(np.percentile(a, 99)), 2)

    class Stub:  # a ccxt-like client that returns at once: measures the adapter's own path
        urls: dict = {}
        has: dict = {}

        def create_order(self, *a):  # noqa: ANN002, ANN202
            stamp.append(time.perf_counter_ns())
            return {"id": "1", "status": "open"}

        def amount_to_precision(self, m, x):  # noqa: ANN001, ANN202
            return f"{x:.3f}"

        def price_to_precision(self, m, x):  # noqa: ANN001, ANN202
            return f"{x:.1f}"

    ex = CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, client=Stub())
    lat = []
    for k in range(3000):
        req = OrderRequest("BTCUSDT", 0, 0.5, f"b-{k}", 1, kind="limit", price=60000.0, tif="GTX")
        t = time.perf_counter_ns()
        ex.submit_order(req)
        lat.append((stamp[-1] - t) / 1e3)
    a = np.asarray(lat[100:])
    figures["ccxt_adapter_to_create_order_us.p50"] = round(float(np.percentile(a, 50)), 2)
    figures["ccxt_adapter_to_create_order_us.p99"] = round(float(np.percentile(a, 99)), 2)


def run() -> dict:
    from dea.book.capture import parse_capture
    from dea.execution.replay import capture_messages

    figures: dict = {}
    if not CAPTURE.is_file():
        return {"skipped": f"capture not found: {CAPTURE}"}
    t = time.perf_counter()
    msgs = capture_messages(parse_capture(CAPTURE))
    figures["capture_messages"] = len(msgs)
    figures["capture_load_s"] = round(time.perf_counter() - t, 3)
    _shortfalls(msgs, figures)
    _routed(msgs, figures)
    _passive(msgs, figures)
    _latency(msgs, figures)
    return figures
