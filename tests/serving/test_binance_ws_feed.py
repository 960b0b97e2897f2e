"""The live Binance feed against a local exchange on 127.0.0.1: a websockets server replays the
recorded USDT-M BTCUSDT messages and a small HTTP server answers the REST depth snapshot from the
exchange's own book (recorded snapshot + every diff it has sent). The live loop trades on it
with the paper exchange; its book must equal the book rebuilt from the capture file."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import build_onnx_policy, write_config

from dea.book.binance import parse_capture_line
from dea.book.events import DepthDiff, DepthSnapshot
from dea.book.l2 import ASK, BID, SyncedBook
from dea.config import load_config
from dea.features.featureset import FeatureSet
from dea.features.missing import input_names
from serving.books import OrderBooks
from serving.exchanges.paper import PaperExchange
from serving.feeds.binance import BinanceFeed
from serving.feeds.replay import capture_events
from serving.journal import Journal
from serving.loop import LiveLoop
from serving.runner import PolicyRunner

N_LINES = 2500

CONFIG = """
name: live-ob
data:
  instruments:
    - {symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001, min_notional: 5}
  sources:
    - {name: btc_book, kind: book, format: binance_ws, path: capture.gz, instrument: BTCUSDT}
  clock: {step: 200ms}
features:
  set:
    - {name: ob_spread_bps}
    - {name: ob_microprice_dev_bps}
    - {name: ob_imbalance, params: {level: 5}}
    - {name: ob_ofi}
    - {name: ob_trade_imbalance}
  missing: {policy: fill, fill_value: 0.0, indicator: true}
costs: {fee_side: taker, impact: {model: book}, initial_equity: 100000.0}
risk: {max_exposure: 0.5, max_gross: 1.0, max_net: 1.0, no_trade_band: 0.05, stale: {max_age: 1h}}
serving: {journal_sync: normal, model_poll: null}
"""


class LocalBinance:
    """Websocket stream + REST depth of a replayed capture, on one asyncio loop in a thread."""

    def __init__(self, capture: Path, n_lines: int, drop_diff: int | None = None) -> None:
        lines = []
        with gzip.open(capture, "rb") as fh:
            for i, line in enumerate(fh):
                if i >= n_lines:
                    break
                lines.append(line.rstrip(b"\n"))
        self.messages: list[bytes] = []
        self.book = SyncedBook()
        self.diffs: list[DepthDiff] = []
        self.order: list[tuple[bytes, object]] = []
        for line in lines:
            ev = parse_capture_line(line)
            body = line.split(b" ", 1)[1]
            if isinstance(ev, DepthSnapshot):
                self.book.feed(ev)  # the exchange's own book starts from the recorded snapshot
                self.snapshot_id = ev.last_update_id
                continue
            self.order.append((body, ev))
        self.drop_diff = drop_diff
        self.sent = 0
        self.done = threading.Event()
        self.ready = threading.Event()
        self.rest_calls = 0
        self.dropped = 0

    # -- servers ---------------------------------------------------------------------------------
    def start(self) -> LocalBinance:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        return self

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        http = await asyncio.start_server(self._http, "127.0.0.1", 0)
        self.rest_port = http.sockets[0].getsockname()[1]
        async with serve(self._ws, "127.0.0.1", 0) as ws_server:
            self.ws_port = ws_server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stop.wait()
        http.close()

    def stop(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(self._stop.set)

    async def _ws(self, conn) -> None:
        self._loop = asyncio.get_running_loop()
        assert conn.request.path.startswith("/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade")
        n_diff = 0
        for body, ev in self.order:
            if isinstance(ev, DepthDiff):
                n_diff += 1
                self.book.feed(ev)  # the exchange's book moves whether or not the client hears it
                if n_diff == self.drop_diff:
                    self.dropped += 1
                    continue
            await conn.send(body.decode())
            self.sent += 1
            if self.sent % 50 == 0:
                # let REST requests in, like a real interleaving, and spread the capture over ~0.5 s of wall
                # time: events are stamped on receipt and the loop decides every 200 ms of that clock
                await asyncio.sleep(0.01)
        self.done.set()
        await self._stop.wait()

    async def _http(self, reader, writer) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        assert request.startswith("GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000 ")
        self.rest_calls += 1
        book = self.book.book
        body = json.dumps({
            "lastUpdateId": self.book.last_update_id,
            "E": int(time.time() * 1000),
            "T": int(time.time() * 1000),
            "bids": [[repr(p), repr(q)] for p, q in book.levels(BID, 1000)],
            "asks": [[repr(p), repr(q)] for p, q in book.levels(ASK, 1000)],
        }).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()


@pytest.fixture()
def live_cfg(tmp_path):
    return load_config(write_config(tmp_path, CONFIG))


def _model(cfg, tmp_path):
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    names = input_names(fs.names, cfg.features.missing)
    return build_onnx_policy(tmp_path / "ob.onnx", names, cfg.data.symbols, spec_hash=fs.spec_hash, seed=4, gain=3.0)


def _replayed_book(capture: Path) -> OrderBooks:
    books = OrderBooks(1)
    for i, msg in enumerate(capture_events([(capture, 0)])):
        if i >= N_LINES:  # capture_events skips nothing here: every line is a message
            break
        if isinstance(msg.event, (DepthSnapshot, DepthDiff)):
            books.on_book(0, msg.event)
    return books


def _levels(books: OrderBooks, depth: int = 500):
    """The best ``depth`` levels per side (a REST snapshot holds 1,000: deeper levels a diff
    added after the recorded snapshot are not in a later served one, as on the real exchange)."""
    b = books.streams[0].book.book
    return b.levels(BID, depth), b.levels(ASK, depth)


def _serve(cfg, tmp_path, server):
    model = _model(cfg, tmp_path)
    exchange = PaperExchange(cfg.data.instruments, cfg.costs)
    loop = LiveLoop(cfg, PolicyRunner.from_path(model), exchange, Journal(tmp_path / "j.sqlite", synchronous="NORMAL"))
    feed = BinanceFeed(["BTCUSDT"], base_ws=f"ws://127.0.0.1:{server.ws_port}",
                       rest_url=f"http://127.0.0.1:{server.rest_port}/fapi/v1/depth", tick_s=0.05,
                       book_state=loop.books.sync_state, snapshot_interval_s=0.01)

    def until_drained():
        for ev in feed:
            yield ev
            if server.done.is_set() and feed._q.empty() and feed.messages == server.sent:
                break

    try:
        summary = loop.run(until_drained())
    finally:
        feed.stop()
        server.stop()
    return loop, feed, summary


def test_live_feed_syncs_the_book_and_trades_on_it(live_cfg, tmp_path, shared_data):
    capture = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
    server = LocalBinance(capture, N_LINES).start()
    loop, feed, summary = _serve(live_cfg, tmp_path, server)
    sync = loop.books.streams[0].book
    assert feed.messages == server.sent == len(server.order)
    assert feed.snapshots == 1 and server.rest_calls == 1
    assert sync.valid and sync.gaps == 0 and sync.applied_diffs > 50
    assert _levels(loop.books) == _levels(_replayed_book(capture))
    # the loop decided on the live clock and filled against the live book
    assert summary.decisions > 0 and summary.fills > 0
    fill = loop.journal.fills()[0]
    assert fill.spread > 0 and 60_000 < fill.price < 63_000  # priced at the book's mid, paying the spread
    # every event was stamped with its receive time: monotone
    assert summary.events >= feed.messages


def test_live_feed_resyncs_after_a_sequence_gap(live_cfg, tmp_path, shared_data):
    capture = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
    server = LocalBinance(capture, N_LINES, drop_diff=120).start()
    loop, feed, summary = _serve(live_cfg, tmp_path, server)
    sync = loop.books.streams[0].book
    assert server.dropped == 1
    assert sync.gaps == 1 and sync.resyncs == 1  # the dropped diff was detected, then re-snapshotted
    assert feed.snapshots == 2 and server.rest_calls == 2
    assert sync.valid
    # after the resync the book is the exchange's again (it applied the diff the client missed)
    assert _levels(loop.books) == _levels(_replayed_book(capture))
    assert np.isfinite(loop.books.mid(0))
