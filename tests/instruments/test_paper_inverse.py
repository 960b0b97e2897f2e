"""The paper venue's statement for a coin-margined account: contracts, BTC equity, BTC margin and
funding; and a spot short rejected by a cash account."""

from __future__ import annotations

import numpy as np
import pytest

from dea.backtest.config import CostsConfig
from dea.backtest.event import BarEvent, FundingEvent
from dea.config.accounts import AccountsConfig
from dea.execution.orders import Order
from dea.instruments import Instrument
from serving.exchanges.paper import PaperExchange

NO_COSTS = CostsConfig(half_spread_bps=0.0, impact={"model": "none"}, initial_equity=50_000.0)
INV = Instrument(symbol="BTCUSD_PERP", venue="binance_cm", kind="perpetual", contract="inverse", base="BTC",
                 contract_size=100.0, funding="none", taker_fee=0.0005, maker_fee=0.0002)
SPOT = Instrument(symbol="ETH", venue="spotx", kind="spot", base="ETH", taker_fee=0.0, maker_fee=0.0)
T = 1_700_000_000_000_000_000


def _bar(ts: int, *px: float) -> BarEvent:
    return BarEvent(ts, np.array(px, dtype=np.float64))


def test_paper_venue_accounts_an_inverse_perpetual_in_btc():
    accs = AccountsConfig(list=[{"name": "cm", "venue": "binance_cm", "collateral": "BTC"}])
    ex = PaperExchange([INV], NO_COSTS, accounts=accs, initial_collateral={"cm": 1.0})
    ex.on_market(_bar(T, 50_000.0))
    # 0.2 BTC-equivalent at 50,000 = 10,000 USD of contract notional = 100 contracts
    acks = ex.submit([Order("BTCUSD_PERP", 0, 0.2, T, T, 50_000.0, "c1")], np.array([50_000.0]))
    assert acks[0].status == "filled"
    ex.on_market(_bar(T + 1, 62_500.0))
    ex.on_market(FundingEvent(T + 2, 0, 0.0001))
    st = ex.statement()["cm"]
    assert st["collateral"] == "BTC" and st["positions"]["BTCUSD_PERP"] == pytest.approx(100.0)
    fee = 0.0005 * 10_000 / 50_000
    funding = 0.0001 * 10_000 / 62_500
    assert st["equity"] == pytest.approx(1.0 - fee + 10_000 * (1 / 50_000 - 1 / 62_500) - funding)
    assert st["margin"] == pytest.approx(0.005 * 10_000 / 62_500)
    assert st["equity_reporting"] == pytest.approx(st["equity"] * 62_500)
    # the venue's reporting-currency account agrees on the contract's USD PnL at the mark
    # (10,000 * (62,500/50,000 - 1) = 2,500 USD, less the fee paid in USD at the fill) and on the
    # funding: rate * N = 1 USD, the statement's BTC funding at the mark (not rate * q * P = 1.25)
    assert ex.venue.account.funding[0] == pytest.approx(funding * 62_500, rel=1e-12) == pytest.approx(1.0)
    assert ex.equity == pytest.approx(50_000 + 2_500 - 5.0 - 1.0)


def test_paper_venue_rejects_a_spot_short_in_a_cash_account():
    ex = PaperExchange([SPOT], NO_COSTS)
    ex.on_market(_bar(T, 2_000.0))
    ack = ex.submit([Order("ETH", 0, -1.0, T, T, 2_000.0, "s1")], np.array([2_000.0]))[0]
    assert ack.status == "rejected" and "spot short refused" in ack.reason
    assert ex.positions() == {"ETH": 0.0}
    ok = ex.submit([Order("ETH", 0, 1.0, T, T, 2_000.0, "b1")], np.array([2_000.0]))[0]
    assert ok.status == "filled" and ex.statement()["spotx:USD"]["positions"]["ETH"] == pytest.approx(1.0)


def test_paper_venue_accepts_only_closing_orders_on_an_expired_future():
    fut = Instrument(symbol="F", venue="v", kind="future", expiry="2023-11-14T22:13:20Z", taker_fee=0.0,
                     maker_fee=0.0)  # = T
    ex = PaperExchange([fut], NO_COSTS)
    ex.on_market(_bar(T - 10, 100.0))
    assert ex.submit([Order("F", 0, 1.0, T - 10, T - 10, 100.0, "o1")], np.array([100.0]))[0].status == "filled"
    ex.on_market(_bar(T, 101.0))
    ack = ex.submit([Order("F", 0, 1.0, T, T, 101.0, "o2")], np.array([101.0]))[0]
    assert ack.status == "rejected" and "expired" in ack.reason
    assert ex.submit([Order("F", 0, -1.0, T, T, 101.0, "o3")], np.array([101.0]))[0].status == "filled"
    assert ex.positions() == {"F": 0.0}


def test_statement_stops_visibly_at_a_fill_it_cannot_book():
    from dea.execution.fills import Fill
    from serving.exchanges.paper_ledger import PaperStatement

    st = PaperStatement([INV], None, {"binance_cm:BTC": 1.0})
    st.on_fill(Fill(0, T, 0.1, float("inf"), 0.0, 0.0, 0.0))
    out = st.statement()
    assert list(out) == ["error"] and "not a positive finite number" in out["error"]["errors"][0]


def test_paper_statement_closes_inverse_contracts_at_their_entry():
    """Long 0.2 BTC-equivalent at 50,000 = 100 contracts; selling 0.1 at 62,500 closes 50 of them
    (the venue keeps the 50,000 entry), not 0.1 * 62,500 / 100 = 62.5; selling the rest leaves 0
    contracts and the coin PnL 10,000 * (1/50,000 - 1/62,500) = 0.04 BTC in the wallet."""
    accs = AccountsConfig(list=[{"name": "cm", "venue": "binance_cm", "collateral": "BTC"}])
    inv = INV.model_copy(update={"taker_fee": 0.0, "maker_fee": 0.0})
    ex = PaperExchange([inv], NO_COSTS, accounts=accs, initial_collateral={"cm": 1.0})
    ex.on_market(_bar(T, 50_000.0))
    ex.submit([Order("BTCUSD_PERP", 0, 0.2, T, T, 50_000.0, "o1")], np.array([50_000.0]))
    ex.on_market(_bar(T + 1, 62_500.0))
    ex.submit([Order("BTCUSD_PERP", 0, -0.1, T + 1, T + 1, 62_500.0, "o2")], np.array([62_500.0]))
    assert ex.statement()["cm"]["positions"]["BTCUSD_PERP"] == pytest.approx(50.0)
    ex.submit([Order("BTCUSD_PERP", 0, -0.1, T + 1, T + 1, 62_500.0, "o3")], np.array([62_500.0]))
    st = ex.statement()["cm"]
    assert st["positions"]["BTCUSD_PERP"] == 0.0
    assert st["equity"] == pytest.approx(1.0 + 10_000 * (1 / 50_000 - 1 / 62_500))
