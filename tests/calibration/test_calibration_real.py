"""The reliability report on real data: Coin Metrics BTC daily and Binance BTC perp 15-minute."""

from __future__ import annotations

import numpy as np
import pytest

from dea.calibration import calibration_report, choose_halflife, ewma_variance, format_calibration, qlike
from dea.stress import read_coinmetrics, read_freqtrade_close


@pytest.fixture(scope="module")
def btc_daily(shared_data) -> np.ndarray:
    _, p = read_coinmetrics(shared_data / "daily_onchain" / "coinmetrics" / "btc.csv")
    return np.diff(np.log(p[p > 0.01]))[-2500:]  # 2013 -> 2020-07


def test_report_runs_on_daily_btc_and_exposes_fat_tails(btc_daily) -> None:
    rep = calibration_report(btc_daily, series="BTC daily", garch_window=500, refit_every=50, candidates=(5, 10, 20, 40, 80))
    assert rep.n_fit + rep.n_oos == btc_daily.size and len(rep.methods) == 3
    for m in rep.methods:
        normal, fhs = m.var["normal@0.99"], m.var["fhs@0.99"]
        # crypto returns are fat-tailed: Gaussian 99 % VaR is breached more often than 1 %,
        # and the filtered-historical VaR, which uses the empirical tail, is closer to nominal
        assert normal.exceedances > normal.expected
        assert abs(fhs.rate - 0.01) < abs(normal.rate - 0.01)
    text = format_calibration(rep)
    assert "kupiec_p" in text and "re-estimated" in text


def test_reestimated_halflife_is_the_best_on_its_fit_window(shared_data) -> None:
    _, p = read_freqtrade_close(shared_data / "perps_5m_15m" / "BTC_USDT_USDT-15m-futures.feather")
    r = np.diff(np.log(p))[:20000]
    choice = choose_halflife(r, (5, 20, 80))
    assert choice.losses[choice.best] == min(choice.losses.values())
    assert qlike(ewma_variance(r, choice.best)[80:], r[80:]) == pytest.approx(choice.losses[choice.best])
