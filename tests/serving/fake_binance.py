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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from dea.execution.order_types import OrderRequest
from dea.execution.queue import LimitOrderSimulator

TICK, STEP, MIN_NOTIONAL = "0.10", "0.001", "100"


class FakeBinance:
    def __init__(self, *, contract_size: float = 1.0, tick: str = TICK, step: str = STEP) -> None:
        self.sim = LimitOrderSimulator(maker_fee=0.0002, taker_fee=0.0005)
        self.sim.on_snapshot(0, [(60000.0, 2.0), (59999.9, 5.0)], [(60000.1, 1.0), (60000.5, 4.0)])
        self.tick, self.step, self.contract_size = tick, step, contract_size
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
        if path == "/fapi/v1/leverageBracket":
            return 200, [{"symbol": "BTCUSDT", "brackets": [{"bracket": 1, "initialLeverage": 125, "notionalCap": 50000,
                                                             "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0}]}]
        if path in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
            # ccxt drops a position whose entryPrice is 0 (Binance lists flat symbols that way)
            return 200, [{"symbol": "BTCUSDT", "positionAmt": str(self.sim.position / self.contract_size),
                          "entryPrice": str(self.entry_price()), "markPrice": "60000", "unRealizedProfit": "0", "liquidationPrice": "0",
                          "leverage": "10", "marginType": "cross", "isolatedMargin": "0", "positionSide": "BOTH",
                          "notional": "0", "updateTime": int(time.time() * 1000)}]
        return 404, {"code": -1000, "msg": f"fake has no {method} {path}"}

    def entry_price(self) -> float:
        """Average price of the fills in the position's direction (0 when flat)."""
        pos = self.sim.position
        if abs(pos) < 1e-12:
            return 0.0
        same = [f for f in self.sim.fills if (f.qty > 0) == (pos > 0)]
        return sum(abs(f.qty) * f.price for f in same) / sum(abs(f.qty) for f in same)

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
        o = self.sim.submit(self._now(), req)
        if o.status == "rejected" and tif == "GTX":
            return 400, {"code": -5022, "msg": "Due to the order could not be executed as maker, the Post Only order "
                                               "will be rejected."}
        if o.status == "rejected" and req.reduce_only:
            return 400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}
        return 200, self.order_json(o)

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
