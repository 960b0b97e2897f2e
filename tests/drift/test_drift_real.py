"""Drift on real data: Binance BTC perp 5-minute bars (2023-01 -> 2024-05).

The reference is the first six months of 2023. A feature whose distribution is stable in fact
(returns divided by their trailing EWMA volatility) must not be flagged in later months; the same
feature deliberately shifted, and a copy with its scale doubled, must be flagged.
"""

from __future__ import annotations

import numpy as np
import pyarrow.feather as feather
import pytest

from dea.drift import DriftThresholds, RollingDriftMonitor, build_reference, compare

MONTH = 288 * 30  # 5-minute bars


@pytest.fixture(scope="module")
def vol_scaled_returns(shared_data) -> np.ndarray:
    t = feather.read_table(shared_data / "perps_5m_15m" / "BTC_USDT_USDT-5m-futures.feather", columns=["close"])
    r = np.diff(np.log(t["close"].to_numpy()))
    lam = 0.97
    var = np.empty_like(r)
    var[0] = r[:500].var()
    for i in range(1, r.size):  # variance known before bar i (no look-ahead)
        var[i] = lam * var[i - 1] + (1 - lam) * r[i - 1] ** 2
    return r / np.sqrt(var)


def test_stable_feature_not_flagged_shifted_copy_flagged(vol_scaled_returns) -> None:
    z = vol_scaled_returns
    ref = build_reference(z[: 6 * MONTH, None], ["z"])
    th = DriftThresholds(psi=0.1, ks=0.1)
    for month in (7, 9, 12, 15):
        cur = z[month * MONTH : (month + 1) * MONTH]
        (same,) = compare(ref, cur[:, None], thresholds=th)
        (shifted,) = compare(ref, (cur + 0.5)[:, None], thresholds=th)
        (scaled,) = compare(ref, (cur * 2.0)[:, None], thresholds=th)
        assert not same.flagged, (month, same)
        assert shifted.flagged and shifted.mean_shift > 0.3, (month, shifted)
        assert scaled.flagged, (month, scaled)


def test_rolling_monitor_flags_only_the_shifted_column(vol_scaled_returns) -> None:
    """Two columns of the same real feature; from some point the second one is shifted."""
    z = vol_scaled_returns
    ref = build_reference(np.c_[z[: 6 * MONTH], z[: 6 * MONTH]], ["stable", "shifted"])
    mon = RollingDriftMonitor(ref, window=2000, every=500, thresholds=DriftThresholds(psi=0.1, ks=0.1))
    live = z[8 * MONTH : 8 * MONTH + 6000]
    flags_before, flags_after = [], []
    for i, v in enumerate(live):
        shifted = v + (0.75 if i >= 3000 else 0.0)
        out = mon.update(np.array([v, shifted]))
        if out is not None:
            (flags_after if i >= 5000 else flags_before if i < 3000 else []).append({d.name: d.flagged for d in out})
    assert flags_before and all(not f["stable"] and not f["shifted"] for f in flags_before)
    assert flags_after and all(not f["stable"] and f["shifted"] for f in flags_after)
