"""Hand-checkable contract arithmetic: inverse perpetual PnL in BTC, liquidation prices, spot refusals."""

from __future__ import annotations

import math

import pytest

from dea.backtest.ledger import ContractLedger
from dea.config.accounts import AccountsConfig
from dea.errors import RiskError
from dea.instruments import Instrument
from dea.risk import margin as M

INV = Instrument(symbol="BTCUSD_PERP", venue="binance_cm", kind="perpetual", contract="inverse", base="BTC",
                 quote="USD", contract_size=100.0, funding="none", maintenance_margin=0.005)
LIN = Instrument(symbol="BTCUSDT", venue="binance_um", kind="perpetual", base="BTC", quote="USD", funding="none",
                 maintenance_margin=0.005)
SPOT = Instrument(symbol="BTC", venue="spotx", kind="spot", base="BTC", quote="USD")


def test_inverse_perpetual_pnl_in_btc_over_a_price_path():
    """100 contracts x 100 USD = 10,000 USD long at 50,000 in a 1 BTC coin-margined account."""
    led = ContractLedger([INV], initial={"binance_cm:BTC": 1.0})
    fee_in = led.fill(0, 10_000.0, 50_000.0, fee_rate=0.0005)
    assert fee_in == pytest.approx(0.0005 * 10_000 / 50_000)  # 0.0001 BTC
    assert led.contracts(0) == pytest.approx(100.0)
    led.mark(0, 40_000.0)
    # 10,000 * (1/50,000 - 1/40,000) = 0.2 - 0.25 = -0.05 BTC
    assert led.unrealised(0) == pytest.approx(-0.05)
    assert led.equity("binance_cm:BTC") == pytest.approx(1.0 - 0.0001 - 0.05)
    assert led.margin("binance_cm:BTC") == pytest.approx(0.005 * 10_000 / 40_000)  # 0.00125 BTC
    led.mark(0, 62_500.0)
    assert led.unrealised(0) == pytest.approx(0.2 - 0.16)  # +0.04 BTC
    paid = led.settle_funding(0, 0.0001)
    assert paid == pytest.approx(10_000 / 62_500 * 0.0001)  # 0.000016 BTC, longs pay
    led.fill(0, -10_000.0, 62_500.0, fee_rate=0.0005)  # close: fee 0.00008 BTC
    final = 1.0 - 0.0001 + 0.04 - 0.000016 - 0.00008
    assert led.size[0] == 0.0
    assert led.equity("binance_cm:BTC") == pytest.approx(final, abs=1e-12)
    assert led.equity_reporting("binance_cm:BTC") == pytest.approx(final * 62_500.0)
    # valued in USD at the exit, the BTC PnL is a linear position's: 10,000 * (62,500/50,000 - 1)
    assert 62_500 * M.pnl(True, 10_000, 50_000, 62_500) == pytest.approx(2_500.0)


def test_liquidation_prices_linear_and_inverse():
    # linear long 1 BTC at 50,000 with 5,000 USD: (50,000 - 5,000) / (1 - 0.005)
    p = M.liquidation_price(False, 1.0, 50_000.0, 5_000.0, 0.005)
    assert p == pytest.approx(45_000 / 0.995)
    assert 5_000 + 1.0 * (p - 50_000) == pytest.approx(0.005 * p)  # equity == maintenance margin there
    # inverse short 10,000 USD at 50,000 with 0.1 BTC: (-10,000 + 50) / (0.1 - 0.2) = 99,500
    q = M.liquidation_price(True, -10_000.0, 50_000.0, 0.1, 0.005)
    assert q == pytest.approx(99_500.0)
    assert 0.1 + M.pnl(True, -10_000, 50_000, q) == pytest.approx(M.maintenance_margin(True, -10_000, q, 0.005))
    led = ContractLedger([INV], initial={"binance_cm:BTC": 0.1})
    led.fill(0, -10_000.0, 50_000.0)
    assert led.liquidation_price(0) == pytest.approx(99_500.0)
    led.mark(0, 99_000.0)
    assert not led.check_liquidation("binance_cm:BTC")
    led.mark(0, 99_600.0)
    assert led.check_liquidation("binance_cm:BTC")
    assert led.size[0] == 0.0 and led.equity("binance_cm:BTC") >= 0.0
    with pytest.raises(RiskError, match="liquidated"):
        led.fill(0, 100.0, 99_600.0)


def test_spot_short_and_levered_spot_refused_in_a_cash_account():
    led = ContractLedger([SPOT], initial={"spotx:USD": 10_000.0})
    with pytest.raises(RiskError, match="spot short refused"):
        led.fill(0, -0.1, 50_000.0)
    with pytest.raises(RiskError, match="levered spot refused"):
        led.fill(0, 0.3, 50_000.0)  # 15,000 USD of BTC with 10,000 cash
    led.fill(0, 0.2, 50_000.0)
    led.mark(0, 40_000.0)
    assert led.equity("spotx:USD") == pytest.approx(8_000.0)
    assert led.margin("spotx:USD") == 0.0
    margin = AccountsConfig(list=[{"name": "m", "venue": "spotx", "collateral": "USD", "margin": True}])
    led2 = ContractLedger([SPOT], margin, initial={"m": 10_000.0})
    led2.fill(0, -0.1, 50_000.0)  # a margin account may short spot
    led2.mark(0, 40_000.0)
    assert led2.equity("m") == pytest.approx(11_000.0)


def test_haircut_and_collateral_conversion():
    accs = AccountsConfig(list=[{"name": "cm", "venue": "binance_cm", "collateral": "BTC", "haircut": 0.1}])
    led = ContractLedger([INV], accs, initial={"cm": 2.0})
    led.mark(0, 30_000.0)
    assert led.equity_reporting("cm") == pytest.approx(60_000.0)
    assert led.equity_reporting("cm", haircut=True) == pytest.approx(54_000.0)
    assert led.collateral_exposure("cm", 60_000.0) == pytest.approx(1.0)  # coin collateral is a long coin
    with pytest.raises(RiskError, match="conversion rate"):
        M.collateral_value(1.0, math.nan)


def test_dated_future_settles_in_the_ledger():
    fut = Instrument(symbol="BTCUSD_240927", venue="binance_cm", kind="future", contract="inverse", base="BTC",
                     contract_size=100.0, expiry="2024-09-27T08:00:00Z")
    led = ContractLedger([fut], initial={"binance_cm:BTC": 1.0})
    led.fill(0, 5_000.0, 50_000.0)
    led.mark(0, 55_000.0)
    led.settle_expiry(0, 60_000.0)
    assert led.equity("binance_cm:BTC") == pytest.approx(1.0 + 5_000 * (1 / 50_000 - 1 / 60_000))
    with pytest.raises(RiskError, match="settled"):
        led.fill(0, 100.0, 60_000.0)


def test_isolated_margin_liquidates_one_position_and_caps_its_loss():
    """Isolated at 10x: each position's margin is notional / 10; one liquidation leaves the rest."""
    eth = Instrument(symbol="ETHUSDT", venue="binance_um", kind="perpetual", base="ETH", quote="USDT", funding="none",
                     maintenance_margin=0.005)
    btc = LIN.model_copy(update={"quote": "USDT"})
    accs = AccountsConfig(list=[{"name": "um", "venue": "binance_um", "collateral": "USDT", "margin_mode": "isolated",
                                 "leverage": 10}])
    led = ContractLedger([btc, eth], accs, initial={"um": 10_000.0})
    led.fill(0, 0.1, 50_000.0)  # 5,000 USDT notional -> 500 isolated margin
    led.fill(1, 2.0, 2_500.0)  # 5,000 USDT -> 500
    # BTC long liquidates where 500 + 0.1 (P - 50,000) = 0.005 * 0.1 * P: P = 45,000 / 0.995 ... for 500
    p_liq = led.liquidation_price(0)
    assert p_liq == pytest.approx((0.1 * 50_000 - 500) / (0.1 * 0.995))
    led.mark(0, p_liq * 0.99)
    led.mark(1, 2_500.0)
    assert led.check_liquidation("um")
    assert led.size[0] == 0.0 and led.size[1] == 2.0  # ETH untouched
    assert led.equity("um") == pytest.approx(10_000.0 - 500.0)  # BTC lost exactly its isolated margin
    with pytest.raises(ValueError, match="isolated"):
        AccountsConfig(list=[{"name": "x", "venue": "v", "margin_mode": "isolated"}])
