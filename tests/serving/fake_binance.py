"""A local fake of Binance USDT-M futures REST on 127.0.0.1, for the ccxt adapter's tests.

It speaks the endpoints ccxt's ``binance`` class calls for a linear perpetual (exchangeInfo,
order create / query / cancel, userTrades, positionRisk) with Binance's JSON shapes and error
codes, and matches orders with DEA's own queue simulator on a fixed book, so limit, post-only,
IOC/FOK, reduce-only and partial fills (from trades injected by the test) behave as a venue's.
Every request's path and arrival time is recorded (rate-limit checks).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from dea.execution.order_types import OrderRequest
from dea.execution.queue import LimitOrderSimulator

TICK, STEP, MIN_NOTIONAL = "0.10", "0.001", "100"


class FakeBinance:
    """``fill_price(client_id)``: market orders fill in full at that price (the book is re-quoted
    there, deep, just before each one) -- a venue that follows a replayed market, for failover
    runs whose fills must not depend on how much of a fixed book earlier orders consumed.
    ``book()``: the venue's book is re-quoted to ``(bids, asks)`` from it before every order and
    depth request (a venue that follows a live feed's book, for routed ``dea serve`` runs)."""

    def __init__(self, *, contract_size: float = 1.0, tick: str = TICK, step: str = STEP,
                 fill_price: Callable[[str], float] | None = None,
                 book: Callable[[], tuple[list, list]] | None = None) -> None:
        self.sim = LimitOrderSimulator(maker_fee=0.0002, taker_fee=0.0005)
        self.sim.on_snapshot(0, [(60000.0, 2.0), (59999.9, 5.0)], [(60000.1, 1.0), (60000.5, 4.0)])
        self.tick, self.step, self.contract_size = tick, step, contract_size
        self.fill_price = fill_price
        self.book = book
        self.requests: list[tuple[float, str, str]] = []
        self.ids: dict[str, int] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:  # noqa: ANN002 - silence
                return

            def _send(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                u = urlparse(self.path)
                q = {k: v[-1] for k, v in parse_qs(u.query).items()}
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    q.update({k: v[-1] for k, v in parse_qs(self.rfile.read(n).decode()).items()})
                with fake._lock:
                    fake.requests.append((time.monotonic(), method, u.path))
                    code, body = fake.route(method, u.path, q)
                self._send(code, body)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def urls(self) -> dict[str, str]:
        b = self.base
        return {"fapiPublic": f"{b}/fapi/v1", "fapiPublicV2": f"{b}/fapi/v2", "fapiPublicV3": f"{b}/fapi/v3",
                "fapiPrivate": f"{b}/fapi/v1", "fapiPrivateV2": f"{b}/fapi/v2", "fapiPrivateV3": f"{b}/fapi/v3",
                "fapiData": f"{b}/futures/data", "public": f"{b}/api/v3", "private": f"{b}/api/v3",
                "sapi": f"{b}/sapi/v1", "dapiPublic": f"{b}/dapi/v1", "dapiPrivate": f"{b}/dapi/v1"}

    def reset(self) -> None:
        """A fresh venue on the same port: no orders, fills, position or request log."""
        with self._lock:
            self.sim = LimitOrderSimulator(maker_fee=0.0002, taker_fee=0.0005)
            self.sim.on_snapshot(0, [(60000.0, 2.0), (59999.9, 5.0)], [(60000.1, 1.0), (60000.5, 4.0)])
            self.ids.clear()
            self.requests.clear()

    def order_posts(self) -> int:
        """Order placements received (duplicates included): one per client id means none sent twice."""
        with self._lock:
            return sum(1 for _, m, p in self.requests if m == "POST" and p == "/fapi/v1/order")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def trade(self, price: float, size: float, aggressor: int) -> None:
        """A public trade at the venue (fills resting orders by queue position)."""
        with self._lock:
            self.sim.on_trade(self._now(), price, size, aggressor)

    # ------------------------------------------------------------------ REST
    def _now(self) -> int:
        return time.time_ns()

    def route(self, method: str, path: str, q: dict[str, str]) -> tuple[int, object]:
        if path == "/fapi/v1/exchangeInfo":
            return 200, self.exchange_info()
        if path == "/fapi/v1/order" and method == "POST":
            return self.new_order(q)
        if path == "/fapi/v1/order" and method == "GET":
            o = self._find(q)
            return (200, self.order_json(o)) if o else (400, {"code": -2013, "msg": "Order does not exist."})
        if path == "/fapi/v1/order" and method == "DELETE":
            o = self._find(q)
            if o is None or o.status in ("filled", "cancelled", "expired", "rejected"):
                return 400, {"code": -2011, "msg": "Unknown order sent."}
            self.sim.cancel(self._now(), o.req.client_id)
            return 200, self.order_json(o)
        if path == "/fapi/v1/userTrades":
            return 200, self.user_trades(q)
        if path == "/fapi/v1/depth":  # the book as it stands: levels less what our takers removed
            self._requote()
            n = int(q.get("limit") or 100)
            side = {"bids": self.sim.book.walk(1), "asks": self.sim.book.walk(-1)}
            body = {"lastUpdateId": len(self.requests), "E": int(time.time() * 1000), "T": int(time.time() * 1000)}
            for name, levels in side.items():
                sgn = 1 if name == "bids" else -1
                left = [(p, sz - self.sim._taken.get((sgn, p), 0.0)) for p, sz in levels]  # noqa: SLF001
                body[name] = [[f"{p:.1f}", f"{sz:.3f}"] for p, sz in left if sz > 1e-12][:n]
            return 200, body
        if path == "/fapi/v1/leverageBracket":
            return 200, [{"symbol": "BTCUSDT", "brackets": [{"bracket": 1, "initialLeverage": 125, "notionalCap": 50000,
                                                             "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0}]}]
        if path in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
            # ccxt drops a position whose entry price is not positive (Binance reports none for a flat
            # one) and reads the side from the signed notional
            entry = self.entry_price()
            return 200, [{"symbol": "BTCUSDT", "positionAmt": str(self.sim.position / self.contract_size),
                          "entryPrice": str(entry), "markPrice": str(entry or 60000), "unRealizedProfit": "0", "liquidationPrice": "0",
                          "leverage": "10", "marginType": "cross", "isolatedMargin": "0", "positionSide": "BOTH",
                          "notional": str(self.sim.position * entry), "updateTime": int(time.time() * 1000)}]
        return 404, {"code": -1000, "msg": f"fake has no {method} {path}"}

    def entry_price(self) -> float:
        """Average entry price of the open position (0 when flat), as a venue reports it."""
        pos, entry = 0.0, 0.0
        for f in self.sim.fills:
            q = f.qty
            if pos == 0.0 or (pos > 0) == (q > 0):  # opening or adding: average the price in
                entry = (entry * abs(pos) + f.price * abs(q)) / (abs(pos) + abs(q))
            elif abs(q) > abs(pos):  # through flat: the rest opens at the fill price
                entry = f.price
            pos += q
            if abs(pos) < 1e-12:
                pos, entry = 0.0, 0.0
        return entry

    def exchange_info(self) -> dict:
        return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [], "assets": [],
                "symbols": [{
                    "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
                    "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
                    "quotePrecision": 8, "underlyingType": "COIN", "contractSize": self.contract_size,
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": self.tick},
                        {"filterType": "LOT_SIZE", "stepSize": self.step, "maxQty": "1000", "minQty": self.step},
                        {"filterType": "MARKET_LOT_SIZE", "stepSize": self.step, "maxQty": "120", "minQty": self.step},
                        {"filterType": "MIN_NOTIONAL", "notional": MIN_NOTIONAL},
                    ],
                    "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                }]}

    def new_order(self, q: dict[str, str]) -> tuple[int, object]:
        cid = q.get("newClientOrderId") or f"auto{len(self.ids)}"
        if cid in self.ids:
            return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
        side = 1 if q["side"] == "BUY" else -1
        qty = float(q["quantity"]) * self.contract_size
        kind = "limit" if q["type"] == "LIMIT" else "market"
        tif = q.get("timeInForce", "GTC")
        req = OrderRequest("BTCUSDT", 0, side * qty, cid, self._now(), kind=kind,
                           price=float(q["price"]) if kind == "limit" else None, tif=tif,
                           reduce_only=q.get("reduceOnly") == "true")
        self.ids[cid] = len(self.ids) + 1
        self._requote()
        if self.fill_price is not None and kind == "market":
            px, gap = float(self.fill_price(cid)), float(self.tick)
            bids, asks = ([(px - gap, 1e9)], [(px, 1e9)]) if side > 0 else ([(px, 1e9)], [(px + gap, 1e9)])
            self.sim.on_snapshot(self._now(), bids, asks)
        o = self.sim.submit(self._now(), req)
        if o.status == "rejected" and tif == "GTX":
            return 400, {"code": -5022, "msg": "Due to the order could not be executed as maker, the Post Only order "
                                               "will be rejected."}
        if o.status == "rejected" and req.reduce_only:
            return 400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}
        return 200, self.order_json(o)

    def _requote(self) -> None:
        if self.book is not None:
            bids, asks = self.book()
            if bids and asks:
                self.sim.on_snapshot(self._now(), bids, asks)

    def _find(self, q: dict[str, str]):  # noqa: ANN202
        cid = q.get("origClientOrderId")
        if cid is None and "orderId" in q:
            cid = next((c for c, i in self.ids.items() if str(i) == q["orderId"]), None)
        return self.sim.orders.get(cid) if cid else None

    def order_json(self, o) -> dict:  # noqa: ANN001
        status = {"pending": "NEW", "open": "PARTIALLY_FILLED" if o.filled > 0 else "NEW", "filled": "FILLED",
                  "cancelled": "CANCELED", "expired": "EXPIRED", "rejected": "REJECTED"}[o.status]
        cs = self.contract_size
        return {"orderId": self.ids[o.req.client_id], "symbol": "BTCUSDT", "status": status,
                "clientOrderId": o.req.client_id, "price": str(o.req.price or 0), "avgPrice": str(o.avg_price if o.filled else 0),
                "origQty": str(abs(o.req.qty) / cs), "executedQty": str(o.filled / cs), "cumQuote": str(o.notional),
                "timeInForce": o.req.tif, "type": "LIMIT" if o.req.kind == "limit" else "MARKET",
                "reduceOnly": o.req.reduce_only, "closePosition": False, "side": "BUY" if o.req.qty > 0 else "SELL",
                "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
                "origType": "LIMIT", "time": int(time.time() * 1000), "updateTime": int(time.time() * 1000)}

    def user_trades(self, q: dict[str, str]) -> list[dict]:
        since = int(q.get("startTime", 0))
        out = []
        for k, f in enumerate(self.sim.fills):
            ms = f.ts // 1_000_000
            if ms < since:
                continue
            out.append({"symbol": "BTCUSDT", "id": k + 1, "orderId": self.ids[f.client_id],
                        "side": "BUY" if f.qty > 0 else "SELL", "price": str(f.price), "qty": str(abs(f.qty) / self.contract_size),
                        "realizedPnl": "0", "quoteQty": str(abs(f.qty) * f.price), "commission": str(f.fee),
                        "commissionAsset": "USDT", "time": ms, "positionSide": "BOTH", "buyer": f.qty > 0,
                        "maker": f.maker})
        return out


# -- a venue for failover runs: the fake outlives the ``dea serve`` processes that trade on it ------
#: credentials for ``dea serve --exchange ccxt:binance`` against the fake (it checks none)
FAKE_ENV = {"DEA_BINANCE_API_KEY": "fake-key", "DEA_BINANCE_API_SECRET": "fake-secret"}


def one_perp_sim(tmp: Path, repo_root: Path, n_steps: int) -> dict:
    """configs/sim.yaml cut to its first perpetual (SIM0, ~30 000: a BTC-like price), ``n_steps``
    long: the market a failover run trades on this fake (as ``BTC/USDT:USDT``)."""
    import yaml

    raw = yaml.safe_load((repo_root / "configs" / "sim.yaml").read_text())
    raw["data"]["instruments"] = [dict(raw["data"]["instruments"][0], lot_size=0.001)]
    raw["data"]["sources"] = [dict(s, options=dict(s["options"], n_steps=n_steps))
                              for s in raw["data"]["sources"] if s.get("instrument") in (None, "SIM0")]
    raw["data"]["store"] = str(tmp / "store")
    raw["model"]["base"] = {"kind": "none"}
    raw["model"]["adjust"] = {"vol_scaling": False}
    raw["serving"] = {"journal_sync": "normal", "model_poll": None}
    return raw


def point_serving_at(raw: dict, fake: FakeBinance, symbol: str) -> dict:
    """``raw`` (a config mapping) with ``serving`` sending ``symbol``'s orders to ``fake`` through
    ccxt's binance class: loopback endpoints (``serving.venue_urls``), linear perpetuals only, a
    1 ms rate limit (a local fake, not a venue to protect)."""
    serving = dict(raw.get("serving") or {})
    serving.update(testnet=False, venue_symbols={symbol: "BTC/USDT:USDT"}, venue_urls=fake.urls(),
                   venue_config={"rateLimit": 1, "options": {"defaultType": "swap", "fetchCurrencies": False,
                                                             "fetchMarkets": {"types": ["linear"]}}})
    return {**raw, "serving": serving}


def replay_fill_prices(cfg) -> Callable[[str], float]:  # noqa: ANN001 - an ExperimentConfig
    """``fill_price`` for :class:`FakeBinance`: a loop's market order (client id
    ``PREFIX-T-SYMBOL``) fills at the last bar close the replay published by its decision time T."""
    import bisect

    from serving.events import BarEvent
    from serving.feeds.replay import TableReplay, load_tables
    from serving.market_state import StreamingPanel

    rep = TableReplay(cfg.data, load_tables(cfg))
    bars = sorted((ev.available_at, ev.close) for ev in rep.events(StreamingPanel(cfg.data, native_steps=rep.native_steps))
                  if isinstance(ev, BarEvent) and ev.instrument == 0)
    times = [t for t, _ in bars]

    def price(client_id: str) -> float:
        t = int(client_id.split("-")[-2])
        k = bisect.bisect_right(times, t) - 1
        if k < 0:
            raise ValueError(f"no bar published by {t} for {client_id}")
        return bars[k][1]

    return price


def failover_venue(tmp: Path, repo_root: Path, n_steps: int) -> tuple[Path, FakeBinance]:
    """A running fake that follows :func:`one_perp_sim`'s market, and the config (written under
    ``tmp``) whose ``dea serve --exchange ccxt:binance`` trades on it (env :data:`FAKE_ENV`)."""
    import yaml

    from dea.config import load_config

    raw = one_perp_sim(tmp, repo_root, n_steps)
    (tmp / "plain.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    fake = FakeBinance(fill_price=replay_fill_prices(load_config(tmp / "plain.yaml")))
    cfg_path = tmp / "ccxt.yaml"
    cfg_path.write_text(yaml.safe_dump(point_serving_at(raw, fake, "SIM0"), sort_keys=False))
    return cfg_path, fake
