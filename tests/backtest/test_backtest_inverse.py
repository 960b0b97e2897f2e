"""Inverse (coin-margined) perpetuals in the vectorised backtest agree with the per-account ledger:
orders in whole contracts of ``contract_size`` USD, funding on the open contract notional (the
ledger's ``rate * N / P`` BTC, worth ``rate * N`` USD when it settles), on a hand case and on the
real Binance COIN-M capture around its 00:00 UTC funding settlement."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bt_helpers import FREE, LOOSE, market
from dea.backtest.ledger import ContractLedger
from dea.backtest.vectorized import backtest, kernel_lots
from dea.config.accounts import AccountsConfig
from dea.instruments import Instrument
from dea.timeutil import NS_PER_S

INV = Instrument(symbol="BTCUSD_PERP", venue="binance_cm", kind="perpetual", contract="inverse", base="BTC",
                 contract_size=100.0, funding="none", taker_fee=0.0, maker_fee=0.0)
CM = AccountsConfig(list=[{"name": "cm", "venue": "binance_cm", "collateral": "BTC"}])


def _held(res, price):  # noqa: ANN001, ANN202 - the kernel's linear-equivalent position (BTC) per step
    return res.exposures[:, 0] * res.equity / price


def _funding_usd(res):  # noqa: ANN001, ANN202 - funding paid per step in USD
    return res.costs["funding"] * np.concatenate([[res.initial_equity], res.equity[:-1]])


@pytest.mark.parametrize("kernel", ["auto", "general"])
def test_inverse_hand_case_whole_contracts_and_funding_on_contract_notional(kernel: str):
    """1,000,000 USD; target 0.1 at 50,000: 2 BTC-equivalent = 100,000 USD = 1,000 contracts.
    At 40,000 funding 0.1% is 100 USD (rate * N), not 80 (rate * q * P); equity 979,900; the top-up
    to 0.1 wants 0.44975 BTC = 179.9 contracts: 179 (17,900 USD). At 44,000 funding is 117.9 USD;
    the cut to 0.05 closes whole contracts at the 48,171.6 entry: 1,179 -> 542 contracts."""
    price = np.array([50_000.0, 40_000.0, 44_000.0])
    fund = np.array([[0.0], [0.001], [0.001]])
    res = backtest(market(price, instruments=[INV], funding=fund), np.array([[0.1], [0.1], [0.05]]),
                   costs=FREE, risk=LOOSE, kernel=kernel)
    q = _held(res, price)
    np.testing.assert_allclose(q[:2], [2.0, 2.0 + 179 * 100 / 40_000], rtol=1e-12)
    np.testing.assert_allclose(_funding_usd(res), [0.0, 100.0, 117.9], rtol=1e-12)
    assert res.equity[1] == pytest.approx(1e6 - 100.0 - 2.0 * 10_000.0)
    n_contracts = 1_179 * q[2] / q[1]  # pro-rata close at the entry price keeps whole contracts
    assert n_contracts == pytest.approx(542.0, abs=1e-9)
    np.testing.assert_array_equal(kernel_lots([INV, Instrument(symbol="L", kind="perpetual", funding="none",
                                                               lot_size=0.001)]), [-100.0, 0.001])


def _replay_ledger(res, price, fund):  # noqa: ANN001, ANN202
    """Feed the ledger the contracts the kernel holds (whole contracts, reductions at the entry)
    and its funding settlements; return per-step contracts and funding in USD."""
    led = ContractLedger([INV], CM, initial={"cm": 10.0})
    q = _held(res, price)
    n_usd, q_prev = 0.0, 0.0
    contracts, paid_usd = [], []
    for t, p in enumerate(price.tolist()):
        led.mark(0, p)
        paid_usd.append(led.settle_funding(0, float(fund[t])) * p)  # BTC at the mark, in USD
        qt = float(q[t])
        if abs(qt) < 1e-12:
            new_n = 0.0
        elif q_prev == 0.0 or (q_prev > 0) != (qt > 0):
            new_n = qt * p
        elif abs(qt) >= abs(q_prev):
            new_n = n_usd + (qt - q_prev) * p
        else:
            new_n = n_usd * qt / q_prev
        if new_n != n_usd:
            led.fill(0, new_n - n_usd, p)
        n_usd, q_prev = new_n, qt
        contracts.append(led.contracts(0))
    return np.array(contracts), np.array(paid_usd), led


def test_inverse_on_the_real_coinm_capture_matches_the_ledger(shared_data):  # noqa: ANN001
    """Real BTCUSD_PERP trades (Binance COIN-M, 2024-08-08 23:54 -> 08-09 00:05) on a 10 s clock,
    a policy swinging between long and short, and a funding settlement at the real 00:00 UTC
    instant (rate 0.01%, Binance's base rate: the capture carries no funding): every position is
    a whole number of 100 USD contracts and the kernel's funding equals the ledger's BTC funding
    at the mark."""
    from dea.data.config import SourceConfig
    from dea.data.sources import load_source

    ts_parts, px_parts = [], []
    for day in ("20240808", "20240809"):
        cap = shared_data / f"orderbook/binance_ws_2024/cm_btcusd_perp_{day}.gz"
        src = SourceConfig(name="cm", kind="trades", format="binance_ws", path=str(cap), instrument="BTCUSD_PERP")
        trades = load_source(src, cap.parent).table
        ts_parts.append(trades["ts_event"].to_numpy())
        px_parts.append(np.asarray(trades["price"].to_numpy(zero_copy_only=False), dtype=np.float64))
    ts, px = np.concatenate(ts_parts), np.concatenate(px_parts)
    order = np.argsort(ts, kind="stable")
    ts, px = ts[order], px[order]
    step = 10 * NS_PER_S
    clock = np.arange(ts[0] // step * step + step, ts[-1], step, dtype=np.int64)
    price = px[np.searchsorted(ts, clock, "right") - 1]  # last trade known at each decision
    assert len(clock) > 50 and 55_000 < price.min() < price.max() < 65_000
    midnight = 1_723_161_600 * 10**9  # 2024-08-09T00:00:00Z
    fund = np.zeros(len(clock))
    fund[np.searchsorted(clock, midnight)] = 1e-4
    assert fund.sum() == 1e-4
    rng = np.random.default_rng(7)
    targets = np.round(rng.uniform(-0.8, 0.8, (len(clock), 1)), 3)
    m = replace(market(price, instruments=[INV], funding=fund[:, None], step=step), clock=clock)
    res = backtest(m, targets, costs=FREE, risk=LOOSE, accounts=CM)
    contracts, ledger_funding, _ = _replay_ledger(res, price, fund)
    np.testing.assert_allclose(contracts, np.round(contracts), atol=1e-6)  # whole contracts throughout
    assert np.abs(contracts).max() > 1_000
    paid = _funding_usd(res)
    k = int(np.argmax(fund))
    assert paid[k] != 0.0
    np.testing.assert_allclose(paid, ledger_funding, rtol=1e-9, atol=1e-9)
    # and not the linear q * P charge (the contract notional was opened at other prices)
    assert paid[k] != pytest.approx(_held(res, price)[k - 1] * price[k] * 1e-4, rel=1e-6)
