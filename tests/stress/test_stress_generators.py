"""Each scenario generator does what its name says, on real 5-minute perp prices."""

from __future__ import annotations

import numpy as np
import pytest

from dea.errors import DataError
from dea.stress import (
    BookLevels,
    correlation_one,
    flash_crash,
    funding_squeeze,
    latency_spike,
    liquidity_drain,
    order_rejects,
    path_from_prices,
    stale_feed,
    transplant,
    vol_spike,
)
from dea.timeutil import NS_PER_HOUR


def test_flash_crash_drops_by_x_then_recovers_part(base_path) -> None:
    i0, k, m = 1000, 2, 24  # 10 minutes down, 2 hours back up
    out = flash_crash(base_path, i0=i0, crash_steps=k, drop=0.2, recovery=0.5, recovery_steps=m, volume_factor=5, spread_factor=5)
    p = out.price
    onset, trough, rec = p[i0], p[i0 + k], p[i0 + k + m]
    np.testing.assert_allclose(trough / onset, 0.8, rtol=1e-12)
    np.testing.assert_allclose(rec / onset, 0.9, rtol=1e-12)  # half of the 20 % fall recovered
    assert np.argmin(p[i0 : i0 + k + m + 1, 0]) == k  # the trough is where it should be
    # before the shock nothing changed; after it, the original returns resume
    np.testing.assert_array_equal(p[: i0 + 1], base_path.price[: i0 + 1])
    np.testing.assert_allclose(out.log_returns()[i0 + k + m :], base_path.log_returns()[i0 + k + m :], atol=1e-12)
    assert (out.spread_bps[i0 + 1 : i0 + k + m + 1] == 5 * base_path.spread_bps[i0 + 1 : i0 + k + m + 1]).all()
    assert out.shock == (i0, i0 + k + m)


def test_vol_spike_scales_realised_volatility(base_path) -> None:
    out = vol_spike(base_path, i0=500, i1=788, factor=4.0, instruments=["ETH-PERP"])
    r0, r1 = base_path.log_returns(), out.log_returns()
    np.testing.assert_allclose(r1[500:788, 1].std(), 4.0 * r0[500:788, 1].std(), rtol=1e-10)
    np.testing.assert_allclose(r1[:, [0, 2]], r0[:, [0, 2]], atol=1e-14)  # others untouched
    np.testing.assert_allclose(r1[788:, 1], r0[788:, 1], atol=1e-12)


def test_liquidity_drain_thins_a_real_book(shared_data) -> None:
    """Binance futures 25-level snapshots (Tardis sample): depth x0.1, spread x10."""
    import csv

    rows = list(csv.DictReader(open(shared_data / "orderbook" / "tardis_nautilus" / "tardis_sample_binance-futures_book_snapshot_25_BTCUSDT.csv")))
    lv = range(25)

    def arr(side: str, what: str) -> np.ndarray:
        return np.array([[float(r[f"{side}[{i}].{what}"]) for i in lv] for r in rows])[:, None, :]

    book = BookLevels(arr("bids", "price"), arr("bids", "amount"), arr("asks", "price"), arr("asks", "amount"))
    clock = np.array([int(r["local_timestamp"]) * 1000 for r in rows], dtype=np.int64)
    mid = 0.5 * (book.bid_price[:, 0, 0] + book.ask_price[:, 0, 0])
    path = path_from_prices(clock, mid, ["BTCUSDT"], book=book)
    out = liquidity_drain(path, i0=3, i1=7, depth_factor=0.1, spread_factor=10.0)
    before, after = path.book.depth_notional(), out.book.depth_notional()
    assert (after[3:7] < 0.11 * before[3:7]).all() and (after[3:7] > 0.09 * before[3:7]).all()
    np.testing.assert_allclose(out.book.spread_bps()[3:7], 10 * path.book.spread_bps()[3:7], rtol=1e-9)
    np.testing.assert_array_equal(after[:3], before[:3])
    np.testing.assert_allclose(out.depth[3:7], 0.1 * path.depth[3:7])
    # still a valid book: bids below asks, levels ordered outward
    assert (out.book.bid_price[..., 0] < out.book.ask_price[..., 0]).all()
    assert (np.diff(out.book.ask_price, axis=2) > 0).all() and (np.diff(out.book.bid_price, axis=2) < 0).all()


def test_funding_squeeze_pays_the_rate_at_every_settlement(base_path) -> None:
    i0, i1 = 300, 300 + 3 * 288  # three days of 5-minute steps
    out = funding_squeeze(base_path, i0=i0, i1=i1, rate=0.003, interval_ns=8 * NS_PER_HOUR, instruments=["BTC-PERP"])
    assert out.funding_settled[i0:i1, 0].sum() == pytest.approx(0.003 * 9)  # 3 days x 3 settlements
    assert np.count_nonzero(out.funding_settled[i0:i1, 0]) == 9
    np.testing.assert_array_equal(out.funding_settled[:, 1], base_path.funding_settled[:, 1])
    # on a daily clock one step spans three 8 h settlements
    daily = path_from_prices(np.arange(1, 11) * 24 * NS_PER_HOUR, np.linspace(100, 110, 10), ["X"])
    out_d = funding_squeeze(daily, i0=2, i1=5, rate=-0.003, interval_ns=8 * NS_PER_HOUR)
    np.testing.assert_allclose(out_d.funding_settled[2:5, 0], -0.009)


def test_correlation_jumps_to_one_and_vols_are_kept(base_path) -> None:
    r0 = base_path.log_returns()[400:700]
    assert np.corrcoef(r0.T)[0, 2] < 0.99
    r1 = correlation_one(base_path, i0=400, i1=700).log_returns()[400:700]
    np.testing.assert_allclose(np.corrcoef(r1.T), np.ones((3, 3)), atol=1e-10)
    np.testing.assert_allclose(r1.std(axis=0), r0.std(axis=0), rtol=1e-10)


def test_venue_failures_mark_exactly_their_window(base_path) -> None:
    s = stale_feed(base_path, i0=100, i1=106)
    assert (~s.feed_ok).sum() == 6 and not s.feed_ok[100:106].any()
    np.testing.assert_array_equal(s.price, base_path.price)  # the market keeps moving
    lat = latency_spike(base_path, i0=10, i1=20, latency_ns=30 * 10**9)
    assert (lat.latency_ns[10:20] == 30 * 10**9).all() and lat.latency_ns.sum() == 10 * 30 * 10**9
    rej = order_rejects(base_path, i0=50, i1=62, share=1.0)
    assert rej.reject_share.sum() == 12 and rej.reject_share[50:62].min() == 1.0


def test_transplant_replays_history_returns(base_path) -> None:
    hist = np.array([100.0, 60.0, 75.0, 80.0])
    out = transplant(base_path, i0=10, history=hist)
    np.testing.assert_allclose(out.price[11:14] / out.price[10:13], (hist[1:] / hist[:-1])[:, None] * np.ones((1, 3)))


def test_bad_input_is_refused(base_path) -> None:
    with pytest.raises(DataError, match="drop"):
        flash_crash(base_path, i0=10, crash_steps=2, drop=1.5, recovery=0.5, recovery_steps=2)
    with pytest.raises(DataError, match="no instrument"):
        vol_spike(base_path, i0=0, i1=10, factor=2, instruments=["DOGE"])
    with pytest.raises(DataError, match="finite and positive"):
        path_from_prices(np.arange(3), np.array([1.0, np.nan, 2.0]), ["X"])


def test_canonical_bars_round_trip(base_path) -> None:
    """A shocked path written as a canonical bars table reads back as the same path."""
    from dea.stress import path_from_bars_table, path_to_bars_table

    shocked = flash_crash(base_path, i0=100, crash_steps=3, drop=0.3, recovery=0.2, recovery_steps=10)
    table = path_to_bars_table(shocked)
    assert table.num_rows == shocked.n_steps * 3
    back = path_from_bars_table(table, ["BTC-PERP", "ETH-PERP", "LTC-PERP"])
    np.testing.assert_array_equal(back.clock, shocked.clock)
    np.testing.assert_allclose(back.price, shocked.price)
    assert (table["available_at"].to_numpy() - table["ts_event"].to_numpy() == shocked.step_ns).all()
