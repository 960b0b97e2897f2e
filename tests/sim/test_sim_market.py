"""Statistical shape of the simulated market: regimes, correlation, jumps, signal, funding, depth."""

from __future__ import annotations

import numpy as np

from dea.sim.config import SimConfig
from dea.sim.market import SimMarket, simulate
from dea.sim.moments import regime_moments
from dea.timeutil import NS_PER_HOUR


def _z(market: SimMarket) -> np.ndarray:
    """Returns standardised by their true conditional (diffusion + jump) volatility."""
    return market.returns / regime_moments(market.config).total_sd[market.regimes]


def _se(n: int) -> float:
    return 1.0 / np.sqrt(n)


def test_volatile_regime_has_higher_realised_vol(jump_free_market: SimMarket) -> None:
    m = jump_free_market
    calm = m.returns[m.regimes == 0].std()
    volatile = m.returns[m.regimes == 1].std()
    assert 0.9 * (2.0 / 0.75) < volatile / calm < 1.1 * (2.0 / 0.75)
    # and the level is the configured annualised vol (0.5) times the regime's scale
    annual = np.sqrt(m.config.periods_per_year)
    assert abs(calm * annual / (0.5 * 0.75) - 1) < 0.05


def test_regimes_occupy_their_stationary_shares(signal_market: SimMarket) -> None:
    share_volatile = (signal_market.regimes == 1).mean()
    assert 0.12 < share_volatile < 0.35  # 3d / (10d + 3d) = 0.23; sojourns are long, so loose bounds


def test_correlation_matches_config_per_regime(jump_free_market: SimMarket) -> None:
    m = jump_free_market
    iu = np.triu_indices(m.n_assets, 1)
    for regime, rho in ((0, 0.3), (1, 0.8)):
        c = np.corrcoef(m.returns[m.regimes == regime].T)[iu]
        assert np.all(np.abs(c - rho) < 0.04), (regime, c)


def test_jumps_fatten_the_tails_and_explain_the_outliers(signal_market: SimMarket, jump_free_market: SimMarket) -> None:
    m = signal_market
    assert (m.jumps != 0).any()
    z = (np.log1p(m.returns) / m.sigma).ravel()
    outliers = np.abs(z) > 6
    assert outliers.sum() > 20
    assert np.all(m.jumps.ravel()[outliers] != 0), "a 6-sigma bar without a jump"
    kurt = ((z - z.mean()) ** 4).mean() / z.var() ** 2
    zf = (np.log1p(jump_free_market.returns) / jump_free_market.sigma).ravel()
    kurt_free = ((zf - zf.mean()) ** 4).mean() / zf.var() ** 2
    assert kurt > 6 and abs(kurt_free - 3) < 0.2


def test_expected_return_is_unbiased(signal_market: SimMarket) -> None:
    """E[r | alpha] = mu: jumps are compensated and the Ito term removed (slope 1, no offset)."""
    m = signal_market
    mu, r = m.expected_return.ravel(), m.returns.ravel()
    slope = np.cov(mu, r)[0, 1] / mu.var()
    assert abs(slope - 1) < 0.15
    assert abs(r.mean() - mu.mean()) < 4 * r.std() / np.sqrt(r.size)


def test_planted_signal_has_the_configured_strength(signal_market: SimMarket, control_market: SimMarket) -> None:
    n = signal_market.alpha.size
    ic = np.corrcoef(signal_market.alpha.ravel(), _z(signal_market).ravel())[0, 1]
    assert abs(ic - 0.1) < 4 * _se(n)
    ic0 = np.corrcoef(control_market.alpha.ravel(), _z(control_market).ravel())[0, 1]
    assert abs(ic0) < 4 * _se(n)
    # the latent alpha is the same path in both: only its effect on returns differs
    np.testing.assert_array_equal(signal_market.alpha, control_market.alpha)


def _published_asof(market: SimMarket, series: str) -> tuple[np.ndarray, np.ndarray]:
    """Latest value of ``series`` with available_at <= each bar's open (the decision time)."""
    ex = market.tables(("exogenous",))["exogenous"]
    sel = np.asarray(ex["series"].to_numpy(zero_copy_only=False) == series)
    avail = ex["available_at"].to_numpy()[sel].reshape(-1, market.n_assets)[:, 0]
    values = ex["value"].to_numpy()[sel].reshape(-1, market.n_assets)
    idx = np.searchsorted(avail, market.clock, side="right") - 1
    known = idx >= 0
    return values[idx[known]], known


def test_published_sentiment_predicts_the_next_bar_as_designed(
    signal_market: SimMarket, control_market: SimMarket
) -> None:
    """Through the canonical table and a point-in-time join: the sentiment of bar t-2 (hourly,
    published 1h after its close) is the latest known at bar t's open, so its correlation with
    bar t's standardised return is s * phi^2 / sqrt(1 + noise^2)."""
    phi = 0.5 ** (1 / 48)  # half-life 2d on 1h steps
    noise = signal_market.config.exogenous[0].noise
    assert signal_market.config.exogenous[0].name == "sentiment" and noise > 0
    expected = 0.1 * phi**2 / np.sqrt(1 + noise**2)
    for market, target in ((signal_market, expected), (control_market, 0.0)):
        seen, known = _published_asof(market, "sentiment")
        z = _z(market)[known]
        corr = np.corrcoef(seen.ravel(), z.ravel())[0, 1]
        assert abs(corr - target) < 4 * _se(z.size), (target, corr)


def test_funding_follows_the_basis_with_the_design_sign(signal_market: SimMarket) -> None:
    m = signal_market
    f = m.config.funding
    tables = m.tables(("mark", "funding"))
    mark, funding = tables["mark"], tables["funding"]
    n = m.n_assets
    ts = mark["ts_event"].to_numpy().reshape(-1, n)[:, 0]
    premium = (mark["mark_price"].to_numpy() / mark["index_price"].to_numpy() - 1).reshape(-1, n)
    settle = funding["ts_event"].to_numpy().reshape(-1, n)[:, 0]
    rate = funding["rate"].to_numpy().reshape(-1, n)
    assert np.all(settle % (8 * NS_PER_HOUR) == 0), "settlements at 00/08/16 UTC"
    assert np.all(funding["interval_ns"].to_numpy() == 8 * NS_PER_HOUR)
    # the rate is the mean premium sampled in (T - 8h, T] plus interest, clamped
    # (hourly marks: the eight marks stamped T - 7h ... T, fewer at the very start)
    last = np.searchsorted(ts, settle)
    assert np.all(ts[last] == settle)
    idx = last[:, None] - np.arange(8)[None, :]
    inside = (idx >= 0)[:, :, None]
    mean_premium = (premium[np.maximum(idx, 0)] * inside).sum(axis=1) / inside.sum(axis=1)
    np.testing.assert_allclose(rate, np.clip(mean_premium + f.interest, -f.cap, f.cap), rtol=1e-9, atol=1e-12)
    # positive premium (mark above index) -> longs pay more than the interest, and vice versa
    assert np.all(np.sign(rate - f.interest) == np.sign(mean_premium))
    assert np.corrcoef(rate.ravel(), mean_premium.ravel())[0, 1] > 0.99
    # crowding: the premium leans with the alpha, so high-alpha longs pay more funding
    assert np.corrcoef(m.basis[:-1].ravel(), m.alpha.ravel())[0, 1] > 0.2


def test_depth_thins_and_spread_widens_when_volatility_rises(signal_market: SimMarket) -> None:
    m = signal_market
    tables = m.tables(("book", "quotes"))
    book, quotes = tables["book"], tables["quotes"]
    levels, n = m.config.book.levels, m.n_assets
    seq = book["seq"].to_numpy().reshape(-1, n, 2, levels)[:, 0, 0, 0]
    regime = np.append(m.regimes, m.regimes[-1])[seq]
    price = book["price"].to_numpy().reshape(-1, n, 2, levels)
    size = book["size"].to_numpy().reshape(-1, n, 2, levels)
    side = book["side"].to_numpy().reshape(-1, n, 2, levels)
    assert np.all(side[:, :, 0] == 1) and np.all(side[:, :, 1] == -1)
    bids, asks = price[:, :, 0], price[:, :, 1]
    assert np.all(np.diff(bids, axis=-1) < 0) and np.all(np.diff(asks, axis=-1) > 0)  # best first
    assert np.all(bids[:, :, 0] < asks[:, :, 0])
    depth = (price * size).sum(axis=(2, 3))  # quote notional on the book
    spread = (asks[:, :, 0] - bids[:, :, 0]) / (0.5 * (asks[:, :, 0] + bids[:, :, 0]))
    calm, volatile = regime == 0, regime == 1
    ratio = 2.0 / 0.75
    depth_ratio = np.median(depth[volatile]) / np.median(depth[calm])
    spread_ratio = np.median(spread[volatile]) / np.median(spread[calm])
    assert abs(depth_ratio / ratio**-1.5 - 1) < 0.1
    assert abs(spread_ratio / ratio - 1) < 0.1
    # quotes are the book's best level
    np.testing.assert_array_equal(quotes["bid_price"].to_numpy(), bids[:, :, 0].ravel())
    np.testing.assert_array_equal(quotes["ask_size"].to_numpy(), size[:, :, 1, 0].ravel())


def test_bars_are_consistent_with_marks(signal_market: SimMarket) -> None:
    m = signal_market
    assert np.all(m.high >= np.maximum(m.open, m.close)) and np.all(m.low <= np.minimum(m.open, m.close))
    np.testing.assert_array_equal(m.open[1:], m.close[:-1])
    np.testing.assert_array_equal(m.close, m.mark[1:])
    np.testing.assert_array_equal(m.returns, m.close / m.open - 1)
    np.testing.assert_allclose(m.mark / m.index - 1, m.basis, rtol=1e-9, atol=1e-15)
    assert np.all(m.volume > 0)
    # volume scales with the regime's volatility (2.0 / 0.75 = 2.67 in expectation)
    assert m.volume[m.regimes == 1].mean() / m.volume[m.regimes == 0].mean() > 2.0


def test_funding_per_step_books_each_settlement_once(signal_market: SimMarket) -> None:
    m = signal_market
    # settlements at every 8h boundary of [first open, last close]; the one at the first open
    # is published (a rate is known from the start) but charges no bar
    span = m.price_times[-1] - m.price_times[0]
    assert m.funding_times[0] == m.price_times[0] and m.funding_times[-1] == m.price_times[-1]
    assert m.funding_times.size == span // (8 * NS_PER_HOUR) + 1
    np.testing.assert_allclose(m.funding_per_step.sum(0), m.funding_rate[1:].sum(0), rtol=1e-12)
    charged = m.funding_times[1:]
    bar = np.searchsorted(m.clock, charged, side="left") - 1
    assert np.all(m.clock[bar] < charged) and np.all(charged <= m.clock[bar] + m.step_ns)
    assert (m.funding_per_step != 0).any(axis=1).sum() == charged.size


def test_daily_steps_with_eight_hour_funding() -> None:
    """A step longer than the funding interval: several settlements per bar, each counted."""
    m = simulate(SimConfig(seed=2, n_assets=2, n_steps=60, step="1d", exogenous=[]))
    assert m.funding_times.size == 60 * 3 + 1
    assert np.all((m.funding_per_step != 0).sum(axis=0) == 60)
    assert m.tables(("exogenous",))["exogenous"].num_rows == 0
