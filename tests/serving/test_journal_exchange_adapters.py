"""State journal (WAL, write-ahead orders, idempotent fills, ledger replay), credentials that never
leak, and the ccxt adapter's idempotent submission against a fake venue."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from dea.errors import ConfigError, JournalError
from dea.execution.account import Account
from dea.execution.fills import Fill
from dea.execution.orders import Order
from serving.exchanges.ccxt_exchange import CcxtExchange
from serving.journal import FillRow, Journal, OrderRow
from serving.secrets import load_credentials


def _order(cid="dea-1-BTC", qty=0.5):
    return OrderRow(cid, 1, 1, "BTC", 0, qty, 100.0, "new")


def test_journal_is_wal_and_commits_decision_with_orders_atomically(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    assert sqlite3.connect(tmp_path / "j.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.set_cash(1000.0)
    j.record_decision(1, model_version="1", action="model", target=[0.5, float("nan")], allowed=[0.5, 0.0],
                      equity=1000.0, orders=[_order()], risk_state={"peak": 1000.0})
    with pytest.raises(JournalError, match="already journaled"):  # same decision twice: refused, nothing half-written
        j.record_decision(1, model_version="1", action="model", target=[0.5], allowed=[0.5], equity=1000.0,
                          orders=[_order("dea-1-ETH")])
    assert [o.client_id for o in j.orders()] == ["dea-1-BTC"]
    st = Journal(tmp_path / "j.sqlite").load()  # a second process sees the committed state
    assert st.last_decision_t == 1 and st.risk_state == {"peak": 1000.0} and st.cash == 1000.0
    assert [o.status for o in st.open_orders] == ["new"]
    assert j.decisions()[0]["target"] == [0.5, None]


def test_fills_are_idempotent_and_the_ledger_rebuilds_the_account_exactly(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.set_cash(10_000.0)
    j.record_decision(1, model_version="1", action="model", target=[0.3], allowed=[0.3], equity=1e4, orders=[_order()])
    acc = Account(1, 10_000.0)
    fill = FillRow("v-1", "dea-1-BTC", 2, "BTC", 0, 0.5, 101.3, 0.05, 0.01, 0.003)
    assert j.record_fill(fill) is True
    assert j.record_fill(fill) is False  # a repeated report changes nothing
    acc.apply_fill(Fill(0, 2, 0.5, 101.3, 0.05, 0.01, 0.003))
    acc.price[0] = 101.3
    paid = acc.settle_funding(0, 0.0001)
    j.record_funding(3, "BTC", 0, paid)
    st = j.load()
    assert st.positions == {"BTC": 0.5} and st.open_orders == []
    assert j.orders()[0].status == "filled"
    rebuilt = Account(1, 10_000.0)
    for e in j.ledger():
        if e.kind == "fill":
            f = e.fill
            rebuilt.apply_fill(Fill(f.index, f.ts, f.qty, f.price, f.fee, f.spread, f.impact))
        else:
            rebuilt.cash -= e.amount
    assert rebuilt.cash == acc.cash and rebuilt.qty == acc.qty
    assert st.cash == pytest.approx(acc.cash, rel=1e-15)


def test_a_corrupt_journal_is_refused(tmp_path):
    bad = tmp_path / "j.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="not a usable SQLite journal"):
        Journal(bad)


def test_credentials_from_env_or_file_never_appear_in_reprs(tmp_path, caplog):
    env = {"DEA_BINANCEUSDM_API_KEY": "key-123456", "DEA_BINANCEUSDM_API_SECRET": "sec-abcdef"}
    creds = load_credentials("binanceusdm", environ=env)
    assert creds.ccxt_config() == {"apiKey": "key-123456", "secret": "sec-abcdef"}
    with caplog.at_level(logging.INFO):
        logging.getLogger("dea.test").info("credentials %s %r", creds, creds)
    assert "key-123456" not in caplog.text and "sec-abcdef" not in caplog.text and "***" in caplog.text
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("kraken: {apiKey: k, secret: s}\n")
    secrets.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_credentials("kraken", secrets_file=secrets, environ={})
    secrets.chmod(0o600)
    assert load_credentials("kraken", secrets_file=secrets, environ={}).api_key == "k"
    with pytest.raises(ConfigError, match="has no 'bybit: {apiKey, secret}' entry"):
        load_credentials("bybit", secrets_file=secrets, environ={})
    with pytest.raises(ConfigError, match="set DEA_BYBIT_API_KEY and DEA_BYBIT_API_SECRET"):
        load_credentials("bybit", environ={})


class FakeVenue:
    """The subset of a ccxt exchange the adapter uses; rejects duplicate client order ids."""

    has = {"fetchPositions": True}

    def __init__(self):
        self.orders = {}
        self.trades = []

    def create_order(self, symbol, type_, side, amount, price, params):
        cid = params["clientOrderId"]
        if cid in self.orders:
            raise type("DuplicateOrderId", (Exception,), {})(f"binance {{\"code\":-4116,\"msg\":\"ClientOrderId is duplicated\"}}")
        oid = str(len(self.orders) + 1)
        self.orders[cid] = {"id": oid, "status": "closed", "clientOrderId": cid}
        self.trades.append({"id": f"t{oid}", "order": oid, "clientOrderId": cid, "side": side, "amount": amount,
                            "price": 100.0, "timestamp": 1_700_000_000_000, "fee": {"cost": 0.01}})
        return self.orders[cid]

    def fetch_order(self, id_, symbol, params):
        cid = params["clientOrderId"]
        if cid not in self.orders:
            raise type("OrderNotFound", (Exception,), {})("no such order")
        return self.orders[cid]

    def fetch_my_trades(self, symbol, since=None):
        return list(self.trades)

    def fetch_positions(self, symbols):
        net = sum(t["amount"] * (1 if t["side"] == "buy" else -1) for t in self.trades)
        return [{"symbol": "BTC/USDT:USDT", "contracts": abs(net), "contractSize": 1.0, "side": "long" if net >= 0 else "short"}]


def test_ccxt_adapter_submits_once_per_client_id_and_reports_fills():
    venue = FakeVenue()
    ex = CcxtExchange("binanceusdm", {"BTCUSDT": "BTC/USDT:USDT"}, client=venue)
    order = Order("BTCUSDT", 0, 0.25, 5, 5, 100.0, "dea-5-BTCUSDT")
    assert ex.lookup(order.client_id, "BTCUSDT").status == "unknown"
    first = ex.submit([order])[0]
    again = ex.submit([order])[0]  # a restarted loop re-sends: the venue refuses, the adapter looks it up
    assert first.status == again.status == "filled" and first.venue_id == again.venue_id == "1"
    assert len(venue.orders) == 1
    fills = ex.poll_fills(0)
    assert [(f.client_id, f.qty, f.price, f.fee) for f in fills] == [("dea-5-BTCUSDT", 0.25, 100.0, 0.01)]
    assert ex.positions() == {"BTCUSDT": 0.25}
    sell = Order("BTCUSDT", 0, -0.1, 6, 6, 100.0, "dea-6-BTCUSDT")
    ex.submit([sell])
    assert ex.positions() == {"BTCUSDT": pytest.approx(0.15)}
