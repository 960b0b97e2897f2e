"""The ccxt adapter sizes inverse (coin-margined) orders in contracts of quote units and reads
fills and positions back as DEA's base-unit linear equivalent."""

from __future__ import annotations

from typing import Any

import pytest

from dea.errors import ConfigError
from dea.execution.orders import Order
from dea.instruments import Instrument
from serving.exchanges.ccxt_exchange import CcxtExchange

INV = Instrument(symbol="BTCUSD_PERP", venue="binance_cm", kind="perpetual", contract="inverse", base="BTC",
                 contract_size=100.0, funding="none")


class CoinMClient:
    """A ccxt-shaped client with one COIN-M market (Binance BTCUSD_PERP: 100 USD per contract)."""

    has = {"fetchPositions": True}
    urls: dict[str, Any] = {}

    def __init__(self, inverse: bool = True) -> None:
        self.orders: list[tuple] = []
        self.inverse = inverse

    def load_markets(self) -> dict[str, Any]:
        return {"BTC/USD:BTC": {"contractSize": 100.0, "inverse": self.inverse, "precision": {}, "limits": {}}}

    def create_order(self, market, kind, side, amount, price, params):  # noqa: ANN001, ANN201
        self.orders.append((market, kind, side, amount))
        return {"id": "1", "status": "closed"}

    def fetch_my_trades(self, market, since):  # noqa: ANN001, ANN201
        return [{"id": "t1", "amount": 100.0, "price": 62_500.0, "side": "buy", "timestamp": 1_700_000_000_000,
                 "order": "1", "fee": {"cost": 0.0}}]

    def fetch_positions(self, markets):  # noqa: ANN001, ANN201
        return [{"symbol": "BTC/USD:BTC", "contracts": 100.0, "contractSize": 100.0, "entryPrice": 50_000.0,
                 "side": "long"}]


def test_inverse_orders_fills_and_positions_convert_through_the_contract_size():
    client = CoinMClient()
    ex = CcxtExchange("binancecoinm", {"BTCUSD_PERP": "BTC/USD:BTC"}, client=client)
    ex.check_markets([INV])
    # 0.2 BTC-equivalent at 50,000 = 10,000 USD = 100 contracts of 100 USD
    ex.submit([Order("BTCUSD_PERP", 0, 0.2, 0, 0, 50_000.0, "c1")])
    assert client.orders[-1][3] == pytest.approx(100.0)
    fill = ex.poll_fills(0)[0]
    assert fill.qty == pytest.approx(100 * 100 / 62_500)  # 10,000 USD at 62,500 = 0.16 BTC-equivalent
    assert ex.positions()["BTCUSD_PERP"] == pytest.approx(10_000 / 50_000)


def test_contract_type_mismatch_with_the_venue_is_refused():
    ex = CcxtExchange("binancecoinm", {"BTCUSD_PERP": "BTC/USD:BTC"}, client=CoinMClient(inverse=False))
    with pytest.raises(ConfigError, match="contract: config inverse but .* is linear"):
        ex.check_markets([INV])


def test_a_reduction_sized_in_whole_contracts_is_sent_as_those_contracts():
    """100 contracts held from a 50,000 entry (0.2 BTC-equivalent); cutting to 0.051 of 100,000 USD
    at 62,500 closes 59 contracts (0.118 BTC at the entry lot): the venue is sent 59, not the
    0.118 * 62,500 / 100 = 73.75 the decision price would convert the coins to; an opening is sent
    as the contracts it buys."""
    import numpy as np

    from dea.execution.orders import OrderSpec, generate_orders

    client = CoinMClient()
    ex = CcxtExchange("binancecoinm", {"BTCUSD_PERP": "BTC/USD:BTC"}, client=client)
    ex.check_markets([INV])
    spec = OrderSpec.from_instruments([INV])
    (cut,) = generate_orders(0, np.array([0.051]), np.array([0.2]), np.array([0.0]), 100_000.0,
                             np.array([62_500.0]), spec, contract_n=[10_000.0])
    assert cut.contracts == pytest.approx(59.0, abs=1e-9) and cut.qty == pytest.approx(-0.118)
    (flip,) = generate_orders(0, np.array([-0.1]), np.array([0.2]), np.array([0.0]), 100_000.0,
                              np.array([62_500.0]), spec, contract_n=[10_000.0])
    assert flip.contracts == pytest.approx(100.0 + 100.0, abs=1e-9)  # close 100, open 10,000 USD short
    ex.submit([cut, flip])
    assert [o[2:] for o in client.orders] == [("sell", pytest.approx(59.0)), ("sell", pytest.approx(200.0))]
