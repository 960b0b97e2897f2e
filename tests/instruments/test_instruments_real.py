"""Instrument kinds on the real COIN-M capture: ``dea data inspect`` shows the contract terms, and an
inverse position's BTC PnL over the captured trades is the exchange's formula."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from dea.backtest.ledger import ContractLedger
from dea.cli.main import main
from dea.config import load_config
from dea.data.sources import load_source


def _config(shared_data, tmp_path):  # noqa: ANN001, ANN202
    cap = str(shared_data / "orderbook/binance_ws_2024/cm_btcusd_perp_20240808.gz")
    cfg = {
        "name": "coinm",
        "data": {
            "store": str(tmp_path / "store"),
            "instruments": [
                {"symbol": "BTCUSD_PERP", "venue": "binance_cm", "kind": "perpetual", "contract": "inverse",
                 "base": "BTC", "quote": "USD", "contract_size": 100, "funding": "none"},
                {"symbol": "BTCUSD_240927", "venue": "binance_cm", "kind": "future", "contract": "inverse",
                 "base": "BTC", "quote": "USD", "contract_size": 100, "expiry": "2024-09-27T08:00:00Z",
                 "roll_to": "BTCUSD_PERP", "roll_before": "1d"},
                {"symbol": "BTCUSDT", "venue": "binance_spot", "kind": "spot", "base": "BTC", "quote": "USDT"},
            ],
            "sources": [{"name": "cm_trades", "kind": "trades", "format": "binance_ws", "path": cap,
                         "instrument": "BTCUSD_PERP"}],
        },
        "features": {"set": [{"name": "logret", "params": {"horizon": 1}}]},
        "accounts": {"list": [{"name": "cm", "venue": "binance_cm", "collateral": "BTC", "haircut": 0.05,
                               "leverage": 20}]},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_inspect_shows_kind_and_contract_terms(shared_data, tmp_path, capsys):  # noqa: ANN001
    path = _config(shared_data, tmp_path)
    out_json = tmp_path / "i.json"
    assert main(["data", "inspect", "--config", str(path), "--json", str(out_json)]) == 0
    shown = capsys.readouterr().out
    assert "BTCUSD_PERP: perpetual at binance_cm; BTC/USD; inverse, contract 100 USD, settles in BTC" in shown
    assert "BTCUSD_240927: future" in shown and "expires 2024-09-27T08:00:00Z, rolls to BTCUSD_PERP 1d before" in shown
    assert "BTCUSDT: spot at binance_spot" in shown and "exposure [0, 1] long-only" in shown
    assert "account cm (BTC, cash, cross)" in shown
    rows = {r["symbol"]: r for r in json.loads(out_json.read_text())["instruments"]}
    assert rows["BTCUSD_PERP"]["settlement"] == "BTC" and rows["BTCUSD_PERP"]["bounds"] == [-1.0, 1.0]


def test_inverse_pnl_on_the_captured_coinm_trades(shared_data, tmp_path):  # noqa: ANN001
    cfg = load_config(_config(shared_data, tmp_path))
    trades = load_source(cfg.data.sources[0], cfg.base_dir).table
    px = np.asarray(trades["price"].to_numpy(zero_copy_only=False), dtype=np.float64)
    assert 50_000 < px.min() <= px.max() < 70_000  # BTCUSD_PERP traded around 61k on 2024-08-08
    led = ContractLedger(cfg.data.instruments, cfg.accounts, initial={"cm": 1.0})
    led.fill(0, 10 * 100.0, float(px[0]))  # long 10 contracts of 100 USD at the first trade
    for p in px[1:]:
        led.mark(0, float(p))
    expected = 1_000.0 * (1.0 / px[0] - 1.0 / px[-1])
    assert led.unrealised(0) == pytest.approx(expected, rel=1e-12)
    assert led.equity("cm") == pytest.approx(1.0 + expected)
    # in USD at the last trade: the linear-equivalent PnL 1,000 * (P1/P0 - 1), plus the 1 BTC collateral
    assert led.equity_reporting("cm") == pytest.approx(px[-1] + 1_000.0 * (px[-1] / px[0] - 1.0))
    assert led.equity_reporting("cm", haircut=True) == pytest.approx(0.95 * led.equity_reporting("cm"))
