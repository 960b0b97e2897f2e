"""A real venue through ccxt's unified API (imported lazily: ``pip install 'dea[serve]'``).

Market orders carry the loop's deterministic client id (``clientOrderId``); a re-submission
after a crash is detected either by the venue rejecting the duplicate id or by looking the id up
first, and answered with the existing order, so an order is never placed twice. Fills come from
``fetch_my_trades`` and are keyed by the venue's trade id. API keys come from
:mod:`serving.secrets`; ``testnet=True`` switches ccxt to the venue's sandbox. Nothing here logs
a credential: only :class:`~serving.secrets.Credentials`' masked repr can appear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dea.errors import ConfigError, ExchangeError
from dea.execution.order_types import OrderRequest
from dea.execution.orders import Order
from serving.exchanges.base import ExecFill, OrderAck
from serving.secrets import Credentials

log = logging.getLogger("dea.serving.ccxt")

_CLOSED = {"closed": "filled", "canceled": "rejected", "cancelled": "rejected", "rejected": "rejected", "expired": "rejected"}


class CcxtExchange:
    """``ccxt.<venue>`` with the loop's order/fill semantics.

    ``symbols`` maps DEA instrument symbols to ccxt market symbols (``BTCUSDT`` ->
    ``BTC/USDT:USDT``); ``client`` injects a ready ccxt-like object (tests, custom setups);
    ``options`` are extra ccxt constructor settings and ``api_urls`` override entries of the
    client's ``urls['api']`` (checked like every endpoint: TLS except on loopback).
    """

    def __init__(
        self,
        venue: str,
        symbols: Mapping[str, str],
        *,
        credentials: Credentials | None = None,
        testnet: bool = True,
        client: Any = None,
        options: Mapping[str, Any] | None = None,
        api_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.name = f"ccxt:{venue}"
        self.symbols = dict(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        if client is None:
            try:
                import ccxt
            except ImportError as exc:
                raise ExchangeError("the ccxt exchange adapter needs ccxt: pip install 'dea[serve]'") from exc
            if not hasattr(ccxt, venue):
                raise ExchangeError(f"ccxt has no venue {venue!r}")
            config: dict[str, Any] = {"enableRateLimit": True, **dict(options or {})}
            if credentials is not None:
                config.update(credentials.ccxt_config())
            client = getattr(ccxt, venue)(config)
            if testnet:
                client.set_sandbox_mode(True)
        if api_urls:  # a gateway or a local fake venue (serving.venue_urls), after any sandbox switch
            urls = dict(getattr(client, "urls", None) or {})
            urls["api"] = {**dict(urls.get("api") or {}), **dict(api_urls)}
            client.urls = urls
        check_endpoints(getattr(client, "urls", None), self.name)
        if hasattr(client, "enableRateLimit"):
            client.enableRateLimit = True  # never hammer a venue, whatever the options said
        self.client = client
        self.testnet = testnet
        self.contract_size: dict[str, float] = {s: 1.0 for s in self.symbols}  # base units per contract
        # inverse (coin-margined) markets: contract_size is quote units per contract, and DEA's
        # base-unit quantities are their linear equivalent (N / P, dea.risk.margin)
        self.inverse: dict[str, bool] = {s: False for s in self.symbols}
        self._since_ms: int | None = None
        self._seen_order_ids: dict[str, str] = {}  # venue order id -> client id

    # -- units -------------------------------------------------------------------------------------
    def _to_contracts(self, symbol: str, qty: float, price: float | None) -> float:
        """|qty| base units -> contracts: ``|q| / size`` (linear), ``|q| * P / size`` (inverse:
        the quote notional over the contract's quote size; needs the order's price)."""
        cs = self.contract_size.get(symbol, 1.0)
        if not self.inverse.get(symbol, False):
            return abs(qty) / cs
        if price is None or not price > 0:
            raise ExchangeError(f"{self.name}: {symbol} is inverse; sizing an order in contracts needs its price")
        return abs(qty) * price / cs

    def _from_contracts(self, symbol: str, amount: float, price: float | None) -> float:
        """Contracts -> base units (inverse: ``amount * size / P`` at the fill or entry price)."""
        cs = self.contract_size.get(symbol, 1.0)
        if not self.inverse.get(symbol, False):
            return amount * cs
        if price is None or not price > 0:
            raise ExchangeError(f"{self.name}: {symbol} is inverse; converting contracts needs a price")
        return amount * cs / price

    # -- orders ------------------------------------------------------------------------------------
    def submit(self, orders: Sequence[Order]) -> list[OrderAck]:
        return [self._submit_one(o) for o in orders]

    def _submit_one(self, order: Order) -> OrderAck:
        market = self._market(order.instrument)
        try:
            # an inverse order sized in whole contracts carries its count (a reduction closes
            # contracts at the entry lot, which the decision price would not convert back to)
            amount = order.contracts if order.contracts > 0.0 else \
                self._to_contracts(order.instrument, order.qty, order.price_ref)
            res = self.client.create_order(
                market, "market", order.side, amount, None, {"clientOrderId": order.client_id}
            )
        except Exception as exc:
            if _is_duplicate(exc):
                log.warning("order %s already at the venue; looking it up", order.client_id)
                return self.lookup(order.client_id, order.instrument)
            name = type(exc).__name__
            return OrderAck(order.client_id, "rejected", None, f"{name}: {_safe_message(exc)}")
        return self._ack(order.client_id, res)

    def lookup(self, client_id: str, instrument: str) -> OrderAck:
        market = self._market(instrument)
        try:
            res = self.client.fetch_order(None, market, {"clientOrderId": client_id})
        except Exception as exc:
            if type(exc).__name__ in ("OrderNotFound",):
                return OrderAck(client_id, "unknown", None, "venue has no such order")
            raise ExchangeError(f"{self.name}: cannot look up order {client_id}: {type(exc).__name__}: {_safe_message(exc)}") from None
        return self._ack(client_id, res)

    def _ack(self, client_id: str, res: Mapping[str, Any]) -> OrderAck:
        venue_id = None if res.get("id") is None else str(res["id"])
        if venue_id is not None:
            self._seen_order_ids[venue_id] = client_id
        status = _CLOSED.get(str(res.get("status") or "").lower(), "sent")
        return OrderAck(client_id, status, venue_id)

    # -- fills / positions -------------------------------------------------------------------------
    def poll_fills(self, now_ns: int) -> list[ExecFill]:
        out: list[ExecFill] = []
        for sym, market in self.symbols.items():
            try:
                trades = self.client.fetch_my_trades(market, self._since_ms)
            except Exception as exc:
                raise ExchangeError(f"{self.name}: fetch_my_trades({market}) failed: {type(exc).__name__}: {_safe_message(exc)}") from None
            for tr in trades:
                out.append(self._fill(sym, tr))
        if out:
            self._since_ms = max(f.ts for f in out) // 1_000_000
        return out

    def _fill(self, symbol: str, tr: Mapping[str, Any]) -> ExecFill:
        qty = self._from_contracts(symbol, float(tr["amount"]), float(tr["price"])) * (
            1.0 if tr.get("side") == "buy" else -1.0)
        fee = tr.get("fee") or {}
        client_id = tr.get("clientOrderId") or self._seen_order_ids.get(str(tr.get("order")), "")
        return ExecFill(
            fill_id=f"{self.name}:{symbol}:{tr['id']}",
            client_id=str(client_id),
            ts=int(tr["timestamp"]) * 1_000_000,
            instrument=symbol,
            index=self.index[symbol],
            qty=qty,
            price=float(tr["price"]),
            fee=float(fee.get("cost") or 0.0),
            maker=None if tr.get("takerOrMaker") is None else tr.get("takerOrMaker") == "maker",
        )

    def order_book(self, instrument: str, depth: int = 100) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The venue's book now (REST ``fetch_order_book``), in base units: a routed venue with
        no live feed of its own is planned on this (:meth:`VenueOrderPort.refresh_book`)."""
        market = self._market(instrument)
        try:
            ob = self.client.fetch_order_book(market, depth)
        except Exception as exc:  # noqa: BLE001 - ccxt raises many types; name the venue and market
            raise ExchangeError(f"{self.name}: fetch_order_book {market}: {exc}") from exc
        out = []
        for side in ("bids", "asks"):
            levels = []
            for lv in ob.get(side) or ():
                p, a = float(lv[0]), float(lv[1])
                levels.append((p, self._from_contracts(instrument, a, p)))
            out.append(levels)
        return out[0], out[1]

    def positions(self) -> dict[str, float]:
        out = {s: 0.0 for s in self.symbols}
        by_market = {m: s for s, m in self.symbols.items()}
        try:
            if self.client.has.get("fetchPositions"):
                for p in self.client.fetch_positions(list(self.symbols.values())):
                    sym = by_market.get(p.get("symbol"))
                    if sym is not None:
                        n = float(p.get("contracts") or 0.0)
                        if self.inverse.get(sym, False):  # linear equivalent: N / entry price
                            size = self._from_contracts(sym, n, _num(p.get("entryPrice"))) if n else 0.0
                        else:
                            size = n * float(p.get("contractSize") or 1.0)
                        out[sym] = size if p.get("side") != "short" else -size
            else:
                bal = self.client.fetch_balance()
                for sym, market in self.symbols.items():
                    base = market.split("/")[0]
                    out[sym] = float((bal.get("total") or {}).get(base) or 0.0)
        except Exception as exc:
            raise ExchangeError(f"{self.name}: cannot read positions: {type(exc).__name__}: {_safe_message(exc)}") from None
        return out

    # -- typed orders (dea.execution.order_types) --------------------------------------------------
    def submit_order(self, req: OrderRequest) -> OrderAck:
        """Send a limit / post-only / IOC / FOK / reduce-only order in contracts (base units /
        contract size); idempotent on the client id like :meth:`submit`. ``expire_ns`` is not
        sent (venue-side GTD is not portable): :class:`~serving.exchanges.order_port.VenueOrderPort`
        cancels an expired order through :meth:`cancel_order`."""
        market = self._market(req.instrument)
        try:
            amount = self._to_contracts(req.instrument, req.qty, req.price)
        except ExchangeError as exc:
            return OrderAck(req.client_id, "rejected", None, str(exc))
        params: dict[str, Any] = {"clientOrderId": req.client_id}
        if req.kind == "limit":
            if req.tif == "GTX":
                params["postOnly"] = True
            else:
                params["timeInForce"] = req.tif
        if req.reduce_only:
            params["reduceOnly"] = True
        try:
            amt = float(self.client.amount_to_precision(market, amount)) if hasattr(self.client, "amount_to_precision") else amount
            px = None
            if req.price is not None:
                px = float(self.client.price_to_precision(market, req.price)) if hasattr(self.client, "price_to_precision") else req.price
            res = self.client.create_order(market, req.kind, req.side_name, amt, px, params)
        except Exception as exc:
            if _is_duplicate(exc):
                log.warning("order %s already at the venue; looking it up", req.client_id)
                return self.lookup(req.client_id, req.instrument)
            return OrderAck(req.client_id, "rejected", None, f"{type(exc).__name__}: {_safe_message(exc)}")
        return self._ack(req.client_id, res)

    def cancel_order(self, client_id: str, instrument: str) -> OrderAck:
        """Cancel by client id; an order already final answers with its state (no error)."""
        market = self._market(instrument)
        try:
            res = self.client.cancel_order(None, market, {"origClientOrderId": client_id, "clientOrderId": client_id})
        except Exception as exc:
            if type(exc).__name__ in ("OrderNotFound", "OperationRejected", "ExchangeError"):
                return self.lookup(client_id, instrument)
            raise ExchangeError(f"{self.name}: cannot cancel {client_id}: {type(exc).__name__}: {_safe_message(exc)}") from None
        return self._ack(client_id, res)

    def replace_order(self, client_id: str, new: OrderRequest) -> OrderAck:
        """Cancel/replace: cancel ``client_id``, then send ``new`` (a new id, the back of the queue)."""
        self.cancel_order(client_id, new.instrument)
        return self.submit_order(new)

    def order_state(self, client_id: str, instrument: str) -> tuple[str, float, float]:
        """(ccxt status, filled, remaining) in base units: partial fills of a working order."""
        market = self._market(instrument)
        res = self.client.fetch_order(None, market, {"origClientOrderId": client_id, "clientOrderId": client_id})
        px = _num(res.get("average")) or _num(res.get("price"))
        conv = (lambda a: self._from_contracts(instrument, a, px) if a else 0.0)  # noqa: E731
        return str(res.get("status")), conv(float(res.get("filled") or 0.0)), conv(float(res.get("remaining") or 0.0))

    def check_markets(self, instruments: Sequence[Any]) -> None:
        """Compare contract size, tick, lot and minimum notional of ``instruments`` (DEA config)
        with the venue's ``load_markets``; a mismatch is a :class:`ConfigError` naming both.
        Contract sizes are adopted for order and fill conversion."""
        try:
            markets = self.client.load_markets()
        except Exception as exc:
            raise ExchangeError(f"{self.name}: load_markets failed: {type(exc).__name__}: {_safe_message(exc)}") from None
        problems = []
        for inst in instruments:
            market = self._market(inst.symbol)
            m = markets.get(market)
            if m is None:
                problems.append(f"{inst.symbol}: venue has no market {market}")
                continue
            cs = float(m.get("contractSize") or 1.0)
            prec = m.get("precision") or {}
            limits = m.get("limits") or {}
            checks = [("contract_size", inst.contract_size, cs),
                      ("tick_size", inst.tick_size, _num(prec.get("price"))),
                      ("lot_size", inst.lot_size, _num(prec.get("amount")) * cs if _num(prec.get("amount")) else None),
                      ("min_notional", inst.min_notional, _num((limits.get("cost") or {}).get("min")))]
            for field, mine, venue in checks:
                if venue is None or (field != "contract_size" and mine == 0.0):
                    continue  # the venue does not say, or the config leaves it to the venue
                if abs(mine - venue) > 1e-12 * max(abs(venue), 1.0):
                    problems.append(f"{inst.symbol}.{field}: config {mine:g} but {self.name} {market} says {venue:g}")
            inverse = bool(getattr(inst, "inverse", False))
            if m.get("inverse") is not None and bool(m.get("inverse")) != inverse:
                problems.append(f"{inst.symbol}.contract: config {getattr(inst, 'contract', 'linear')} but {self.name} "
                                f"{market} is {'inverse' if m.get('inverse') else 'linear'}")
            self.contract_size[inst.symbol] = cs
            self.inverse[inst.symbol] = inverse
        if problems:
            raise ConfigError("instrument config disagrees with the venue: " + "; ".join(problems))

    def close(self) -> None:
        closer = getattr(self.client, "close", None)
        if callable(closer):
            try:
                closer()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass

    def _market(self, instrument: str) -> str:
        try:
            return self.symbols[instrument]
        except KeyError:
            raise ExchangeError(f"{self.name}: instrument {instrument!r} has no venue symbol; known {sorted(self.symbols)}") from None


def _is_duplicate(exc: Exception) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "DuplicateOrderId" or "duplicate" in text and "order" in text


def _safe_message(exc: Exception) -> str:
    """ccxt messages can echo request URLs; cut query strings (signatures) out."""
    text = str(exc)
    cut = text.find("?")
    return (text[:cut] + "?<redacted>") if cut >= 0 else text[:300]


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def check_endpoints(urls: Any, venue: str) -> None:
    """Refuse plain ``http://``/``ws://`` endpoints except on loopback (local fakes in tests)."""
    from urllib.parse import urlparse

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, str) and "://" in node:
            u = urlparse(node)
            if u.scheme in ("https", "wss"):
                return
            if u.scheme in ("http", "ws") and (u.hostname or "") in _LOOPBACK:
                return
            if u.scheme in ("http", "ws"):
                raise ExchangeError(f"{venue}: endpoint urls.{path} = {node.split('?')[0]} is not TLS "
                                    "(https/wss required except on loopback)")

    if isinstance(urls, Mapping):
        walk(urls.get("api", {}), "api")
        if "test" in urls and isinstance(urls.get("test"), Mapping):
            walk(urls["test"], "test")


def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None
