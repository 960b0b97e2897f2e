"""Hot swap inside the running loop: a new model, loaded and verified in the background while the
replay runs, takes over exactly at the next decision; the journal records which model took each
decision. A ccxt websocket feed turns ccxt books and trades into loop events."""

from __future__ import annotations

import asyncio

import numpy as np
from serving_helpers import export_config_policy

from dea.book.events import DepthSnapshot, Trade
from serving.events import BookMsg, Tick
from serving.exchanges.paper import PaperExchange
from serving.feeds.ccxt_feed import CcxtFeed
from serving.feeds.replay import TableReplay
from serving.hotswap import ModelSlot
from serving.journal import Journal
from serving.loop import LiveLoop, live_spec, resolve_latency_ns
from serving.runner import PolicyRunner


def test_swap_takes_effect_at_the_next_decision_and_a_bad_model_is_refused(bars_cfg, bars_tables, tmp_path):
    v1 = export_config_policy(bars_cfg, tmp_path / "v1.onnx", seed=1, version="1")
    v2 = export_config_policy(bars_cfg, tmp_path / "v2.onnx", seed=2, version="2", recurrent=True)
    bad = export_config_policy(bars_cfg.with_overrides(["features.missing.indicator=false"]), tmp_path / "bad.onnx",
                               seed=3, version="3")
    replay = TableReplay(bars_cfg.data, bars_tables)
    ex = PaperExchange(bars_cfg.data.instruments, bars_cfg.costs, latency_ns=resolve_latency_ns(bars_cfg), impact_k=[0.5, 0.5])
    holder = {}

    def loader(src):
        return PolicyRunner.from_path(src, holder["spec"])

    runner = PolicyRunner.from_path(v1)
    slot = ModelSlot(runner, loader)
    swap_at = {}

    def hook(point, t):
        if point != "after_fills":
            return
        n = len(holder["loop"].journal.decisions())
        if n == 60:
            slot.request(str(bad), wait=True)  # refused: wrong feature list; v1 keeps trading
        elif n == 120:
            slot.request(str(v2), wait=True)
            swap_at["after"] = t

    loop = LiveLoop(bars_cfg, slot, ex, Journal(tmp_path / "j.sqlite", synchronous="NORMAL"),
                    clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps,
                    crash_hook=hook)
    holder["loop"], holder["spec"] = loop, live_spec(bars_cfg, loop.fs)
    summary = loop.run(replay.events(loop.panel))

    assert slot.failures == 1 and "feature names differ" in slot.last_error
    versions = [(d["t_ns"], d["model_version"]) for d in loop.journal.decisions()]
    before = [v for t, v in versions if t <= swap_at["after"]]
    after = [v for t, v in versions if t > swap_at["after"]]
    assert set(before) == {"1"} and set(after) == {"2"} and after  # no decision mixed, none skipped
    assert summary.model_swaps == 1
    swaps = loop.journal.events("model_swap")
    assert len(swaps) == 1 and swaps[0]["detail"]["recurrent"] is True
    assert swaps[0]["t_ns"] == min(t for t, v in versions if v == "2")
    info = [ln for ln in loop.metrics.render().decode().splitlines() if ln.startswith("dea_model_info{")]
    assert len(info) == 1 and f'sha256="{slot.current.sha256}"' in info[0] and 'source="' in info[0]


class _FakePro:
    """ccxt.pro-like client: two book updates and one trade batch, then nothing."""

    def __init__(self):
        self.books = [
            {"bids": [[100.0, 1.0], [99.5, 2.0]], "asks": [[100.5, 1.5]], "timestamp": 1_700_000_000_000, "nonce": 7},
            {"bids": [[100.1, 1.0]], "asks": [[100.4, 0.5], [100.6, 3.0]], "timestamp": 1_700_000_000_100, "nonce": 8},
        ]
        self.trades = [[{"id": "11", "price": 100.2, "amount": 0.3, "side": "sell", "timestamp": 1_700_000_000_050}]]

    async def watch_order_book(self, market):
        if self.books:
            return self.books.pop(0)
        await asyncio.sleep(3600)

    async def watch_trades(self, market):
        if self.trades:
            return self.trades.pop(0)
        await asyncio.sleep(3600)


def test_ccxt_feed_turns_books_and_trades_into_loop_events():
    feed = CcxtFeed("kraken", ["BTC/USD"], client=_FakePro(), tick_s=0.05)
    got = []
    for ev in feed:
        got.append(ev)
        if sum(isinstance(e, BookMsg) for e in got) == 3:
            break
    feed.stop()
    msgs = [e for e in got if isinstance(e, BookMsg)]
    books = [m.event for m in msgs if isinstance(m.event, DepthSnapshot)]
    trades = [m.event for m in msgs if isinstance(m.event, Trade)]
    assert [b.last_update_id for b in books] == [7, 8]
    assert books[1].bids == ((100.1, 1.0),) and books[1].asks == ((100.4, 0.5), (100.6, 3.0))
    assert trades[0].side == -1 and trades[0].price == 100.2 and trades[0].symbol == "BTCUSD"
    assert all(e.available_at > 0 for e in got) and all(isinstance(e, (BookMsg, Tick)) for e in got)
    assert np.all(np.diff([e.available_at for e in got]) >= 0)
