"""Historical windows from real data: the March 2020 crash and automatically found drawdowns."""

from __future__ import annotations

import numpy as np
import pytest

from dea.config.stress import HistoricalScenario, StressConfig, WorstDrawdownScenario
from dea.errors import ConfigError, DataError
from dea.stress import build_library, build_scenario, read_coinmetrics, select, worst_drawdowns
from dea.stress.history import rolling_max, slice_window


def test_rolling_max_matches_brute_force() -> None:
    x = np.random.default_rng(3).normal(size=300).cumsum()
    for length in (1, 2, 3, 7, 16, 50):
        brute = np.array([x[max(0, t - length + 1) : t + 1].max() for t in range(x.size)])
        np.testing.assert_array_equal(rolling_max(x, length), brute)


def test_worst_drawdowns_by_hand() -> None:
    p = np.array([10, 12, 6, 8, 9, 3, 9, 10, 9, 11, 5, 6.0])
    dd = worst_drawdowns(p, max_length=4, k=3)
    assert (dd[0].peak, dd[0].trough) == (1, 5) and dd[0].depth == pytest.approx(3 / 12 - 1)
    assert (dd[1].peak, dd[1].trough) == (9, 10) and dd[1].depth == pytest.approx(5 / 11 - 1)
    assert len(dd) == 2  # nothing else is left that does not overlap


def test_march_2020_from_coin_metrics(shared_data, base_path) -> None:
    src = shared_data / "daily_onchain" / "coinmetrics" / "btc.csv"
    clock, price = read_coinmetrics(src)
    w = slice_window(clock, price, "2020-03-01", "2020-03-31", str(src))
    assert w.min() / w[: np.argmin(w)].max() < 0.65  # BTC fell by more than a third
    spec = HistoricalScenario(name="march_2020", source=str(src), start_time="2020-03-01", end_time="2020-03-31", start=0.2)
    out = build_scenario(spec, base_path)
    i0 = out.shock[0]
    np.testing.assert_allclose(out.price[i0 : i0 + w.size, 0] / out.price[i0, 0], w / w[0], rtol=1e-10)


def test_worst_drawdown_of_real_perps_is_found(perps_5m, base_path, shared_data) -> None:
    _, close = perps_5m
    (dd,) = worst_drawdowns(close[:, 0], max_length=288, k=1)
    # the deepest one-day fall really is the deepest: no window of the series falls further
    p = close[:, 0]
    assert dd.depth == pytest.approx((p / rolling_max(p, 289) - 1).min())
    assert dd.depth < -0.05 and dd.trough - dd.peak <= 288
    spec = WorstDrawdownScenario(source=str(shared_data / "perps_5m_15m" / "BTC_USDT_USDT-5m-futures.feather"), pad=0)
    out = build_scenario(spec, base_path)
    seg = out.price[out.shock[0] : out.shock[1] + 1, 0]
    assert seg.min() / seg[0] == pytest.approx(1 + dd.depth, rel=1e-9)


def test_default_library_builds_on_a_real_base(base_path) -> None:
    lib = build_library(StressConfig().scenarios, base_path)
    assert [p.name for p in lib] == [s.label for s in StressConfig().scenarios]
    assert all(p.shock is not None and p.n_steps == base_path.n_steps for p in lib)
    assert [s.label for s in select(StressConfig().scenarios, "vol_spike,stale_feed")] == ["vol_spike", "stale_feed"]
    with pytest.raises(ConfigError, match="unknown stress scenario"):
        select(StressConfig().scenarios, "meteor")


def test_gap_inside_history_is_an_error(tmp_path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("time,PriceUSD\n2020-01-01,\n2020-01-02,10\n2020-01-03,\n2020-01-04,9\n")
    with pytest.raises(DataError, match="x.csv:4: PriceUSD is empty on 2020-01-03"):
        read_coinmetrics(f)
