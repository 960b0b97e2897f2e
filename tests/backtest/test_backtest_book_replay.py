"""Event-driven replay of a real Binance USDT-M BTCUSDT capture: fills walk the live L2 book."""

from __future__ import annotations

import gzip

import numpy as np

from dea.backtest.config import CostsConfig
from dea.backtest.event import BookEvent, EventBacktester, PolicyOutput, TradeEvent, book_event
from dea.book.binance import parse_binance_message
from dea.book.events import DepthDiff, DepthSnapshot, Trade
from dea.book.l2 import SyncedBook
from dea.execution.fills import book_fill_costs
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.timeutil import NS_PER_MS, NS_PER_S

SECONDS = 120


def capture_events(path, seconds: int):  # noqa: ANN001, ANN201
    """Book snapshots (at most every 100 ms of receive time) and trades from a capture file."""
    synced = SyncedBook()
    out: list[BookEvent | TradeEvent] = []
    start = None
    last_book = -(10**18)
    with gzip.open(path, "rb") as fh:
        for line in fh:
            recv, _, raw = line.partition(b" ")
            ts = int(recv)
            start = ts if start is None else start
            if ts - start > seconds * NS_PER_S:
                break
            ev = parse_binance_message(raw, ts)
            if isinstance(ev, (DepthSnapshot, DepthDiff)):
                synced.feed(ev)
                if synced.valid and ts - last_book >= 100 * NS_PER_MS:
                    out.append(book_event(ts, 0, synced.book, depth=200))
                    last_book = ts
            elif isinstance(ev, Trade) and out:
                out.append(TradeEvent(ts, 0, ev.price, ev.size))
    return out


def test_fills_walk_the_real_book(shared_data):  # noqa: ANN001
    events = capture_events(shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz", SECONDS)
    books = [e for e in events if isinstance(e, BookEvent)]
    assert len(books) > 500
    t0 = books[0].ts
    decisions = [t0 + k * 10 * NS_PER_S for k in range(1, SECONDS // 10)]
    seen: dict[int, BookEvent] = {}

    def policy(ctx):  # noqa: ANN001, ANN202 - alternate +0.2 / -0.2 of equity: enough to walk levels
        seen[ctx.index] = bt.books[0]  # the book prevailing at the decision
        return PolicyOutput(np.array([0.2 if ctx.index % 2 == 0 else -0.2]))

    perp = Instrument(symbol="BTCUSDT", kind="perpetual", funding="none", taker_fee=0.0005, maker_fee=0.0002)
    costs = CostsConfig(impact={"model": "book"}, initial_equity=5_000_000.0)
    risk = RiskConfig(max_exposure=5.0, max_gross=5.0, max_net=5.0, max_leverage=5.0, drawdown={"enabled": False})
    bt = EventBacktester([perp], costs, risk, policy)
    res = bt.run(events, decisions)
    assert len(res.clock) == len(decisions)
    assert res.instrument_costs["impact"][0] > 0 and res.instrument_costs["spread"][0] > 0
    # the first decision's fill, by hand: 0.2 x equity of BTC at the mid, walked through the asks
    book = seen[0]
    mid = 0.5 * (book.bid_px[0] + book.ask_px[0])
    qty = 0.2 * 5_000_000.0 / mid
    _, fee, spread, impact, unfilled = book_fill_costs(qty, book.bid_px, book.bid_sz, book.ask_px, book.ask_sz, 0.0005)
    assert unfilled == 0.0
    assert np.cumsum(book.ask_sz).searchsorted(qty) >= 2  # the order really walks several levels
    np.testing.assert_allclose(res.costs["impact"][0] * 5_000_000.0, impact, rtol=1e-9)
    np.testing.assert_allclose(res.costs["spread"][0] * 5_000_000.0, spread, rtol=1e-9)
    np.testing.assert_allclose(res.costs["fees"][0] * 5_000_000.0, fee, rtol=1e-9)
    assert impact > 0
    np.testing.assert_allclose(res.exposures[0], [0.2], rtol=0.01)
