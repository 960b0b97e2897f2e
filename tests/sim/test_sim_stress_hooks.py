"""Scripted stress on the simulator: forced regimes and shocks do exactly what they say."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from dea.sim.config import SimConfig
from dea.sim.market import simulate

BASE = {"seed": 21, "n_assets": 3, "n_steps": 24 * 30, "exogenous": []}
CALM = {"name": "calm", "vol_scale": 1.0, "mean_duration": "10d"}


def test_flash_crash_drops_by_size_and_recovers_the_fraction() -> None:
    shock = {"step": 100, "size": -0.3, "duration": 3, "recovery": 0.5, "recovery_steps": 6, "symbols": ["SIM0"]}
    plain = simulate(SimConfig(**BASE))
    shocked = simulate(SimConfig(**BASE, shocks=[shock]))
    # the other assets are untouched (random streams do not depend on the script)
    np.testing.assert_array_equal(shocked.mark[:, 1:], plain.mark[:, 1:])
    extra = np.log(shocked.mark[:, 0] / plain.mark[:, 0])  # the scripted part of the log price
    assert np.allclose(extra[:101], 0, atol=1e-12)
    assert np.isclose(np.exp(extra[103]), 0.7)  # -30% over bars 100..102
    assert np.isclose(np.exp(extra[-1]), 0.7**0.5)  # half the log drop recovered by bar 108
    assert np.isclose(extra[109], extra[-1])
    # unforecastable: the oracle and the expected return do not see it coming
    np.testing.assert_array_equal(shocked.oracle_exposure, plain.oracle_exposure)


def test_forced_window_overrides_the_chain_and_forced_only_regimes_stay_out() -> None:
    regimes = [CALM, {"name": "crisis", "vol_scale": 3.0, "forced_only": True}]
    m = simulate(SimConfig(**BASE, regimes=regimes, regime_windows=[{"regime": "crisis", "start": 200, "steps": 48}]))
    crisis = m.regimes == 1
    assert crisis[200:248].all() and crisis.sum() == 48
    assert m.sigma[200:248].min() > 2.9 * m.sigma[~crisis].max()


def test_liquidity_drain_thins_the_book_tenfold() -> None:
    regimes = [CALM, {"name": "drain", "vol_scale": 1.0, "depth_scale": 0.1, "spread_scale": 10.0, "forced_only": True}]
    cfg = SimConfig(
        **BASE,
        regimes=regimes,
        regime_windows=[{"regime": "drain", "start": 300, "steps": 100}],
        book={"enabled": True, "levels": 4},
    )
    m = simulate(cfg)
    drained = np.append(m.regimes, m.regimes[-1]) == 1
    np.testing.assert_allclose(m.depth[drained] / m.depth[~drained][0], 0.1)
    np.testing.assert_allclose(m.half_spread[drained] / m.half_spread[~drained][0], 10.0)
    quotes = m.tables(("quotes",))["quotes"]
    n = m.n_assets
    bid = quotes["bid_price"].to_numpy().reshape(-1, n)
    ask = quotes["ask_price"].to_numpy().reshape(-1, n)
    notional = (quotes["bid_size"].to_numpy().reshape(-1, n) * bid)
    spread = (ask - bid) / (0.5 * (ask + bid))
    assert 7 < np.median(spread[drained]) / np.median(spread[~drained]) < 13
    assert 0.07 < np.median(notional[drained]) / np.median(notional[~drained]) < 0.13


def test_funding_squeeze_and_correlation_to_one() -> None:
    squeeze = {"name": "squeeze", "vol_scale": 1.0, "basis_shift": 0.003, "correlation": 0.99, "forced_only": True}
    regimes = [CALM, squeeze]
    window = {"regime": "squeeze", "start": 240, "steps": 24 * 5}
    m = simulate(SimConfig(**BASE, regimes=regimes, regime_windows=[window], jumps={"idio_intensity": 0.0}))
    inside = (m.funding_times > m.clock[240] + 8 * 3600 * 10**9) & (m.funding_times <= m.clock[359] + m.step_ns)
    assert inside.sum() >= 12
    assert np.all(m.funding_rate[inside] > 0.002)  # ~0.3% + interest per 8h, for days
    assert np.abs(m.funding_rate[~inside & (m.funding_times < m.clock[230])]).max() < 0.002
    c = np.corrcoef(m.returns[240:360].T)[np.triu_indices(m.n_assets, 1)]
    assert c.min() > 0.95


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"regime_windows": [{"regime": "nope", "start": 0, "steps": 1}]}, "unknown regime"),
        ({"regime_windows": [{"regime": "calm", "start": 700, "steps": 100}]}, "runs past n_steps"),
        ({"shocks": [{"step": 719, "size": -0.2, "duration": 2}]}, "past n_steps"),
        ({"shocks": [{"step": 1, "size": -0.2, "symbols": ["BTC"]}]}, "unknown symbols"),
        ({"regimes": [{**CALM, "forced_only": True}]}, "forced_only"),
    ],
)
def test_bad_scripts_are_refused(extra: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        SimConfig(**{**BASE, "regimes": [CALM], **extra})
