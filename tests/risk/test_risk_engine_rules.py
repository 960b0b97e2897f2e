"""Each risk rule on hand-checkable numbers, the kill-switch reset, state persistence, purity."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from dea.errors import RiskError
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.risk.engine import RiskEngine
from dea.timeutil import NS_PER_DAY, NS_PER_S, NS_PER_YEAR

T0 = 1_700_000_000 * NS_PER_S
LOOSE = dict(max_gross=10.0, max_net=10.0, max_leverage=10.0, max_exposure=10.0)


def insts(n: int) -> list[Instrument]:
    return [Instrument(symbol=s, kind="perpetual", funding="none") for s in ("BTC", "ETH", "LTC", "XRP")[:n]]


def engine(n: int = 2, **kw) -> RiskEngine:
    params = {**LOOSE, "drawdown": {"enabled": False}, **kw}
    return RiskEngine(RiskConfig(**params), insts(n))


def rules_of(decision) -> list[str]:  # noqa: ANN001
    return [r.rule for r in decision.interventions]


def test_per_instrument_cap_clips_and_records_before_after():
    eng = engine(2, max_exposure=1.0)
    d = eng.apply(T0, np.array([1.5, -0.2]), np.zeros(2), 1e6)
    np.testing.assert_allclose(d.exposure, [1.0, -0.2])
    (rec,) = d.interventions
    assert rec.rule == "instrument_cap" and rec.before == (1.5, -0.2) and rec.after == (1.0, -0.2)
    assert "clipped" in rec.reason and eng.counts["instrument_cap"] == 1


def test_cap_mapping_with_default_and_unknown_symbol():
    eng = RiskEngine(RiskConfig(max_exposure={"BTC": 0.5, "*": 0.2}), insts(2))
    np.testing.assert_allclose(eng.apply(T0, np.array([0.9, -0.9]), np.zeros(2), 1e6).exposure, [0.5, -0.2])
    with pytest.raises(RiskError, match="unknown instruments"):
        RiskEngine(RiskConfig(max_exposure={"DOGE": 1.0, "*": 1.0}), insts(2))
    with pytest.raises(RiskError, match="no cap"):
        RiskEngine(RiskConfig(max_exposure={"BTC": 1.0}), insts(2))


def test_gross_net_and_leverage_caps_scale_proportionally():
    d = engine(3, max_gross=2.0).apply(T0, np.array([1.0, 1.0, 1.0]), np.zeros(3), 1e6)
    np.testing.assert_allclose(d.exposure, [2 / 3] * 3)
    assert rules_of(d) == ["gross_cap"]
    d = engine(2, max_net=1.0).apply(T0, np.array([1.0, 0.5]), np.zeros(2), 1e6)
    np.testing.assert_allclose(d.exposure, [2 / 3, 1 / 3])
    assert rules_of(d) == ["net_cap"]
    d = engine(2, max_leverage=1.5).apply(T0, np.array([1.0, -1.0]), np.zeros(2), 1e6)
    np.testing.assert_allclose(d.exposure, [0.75, -0.75])
    assert rules_of(d) == ["leverage_cap"]


def test_nan_target_holds_current_exposure():
    d = engine(2).apply(T0, np.array([np.nan, 0.3]), np.array([0.7, 0.0]), 1e6)
    np.testing.assert_allclose(d.exposure, [0.7, 0.3])
    assert d.interventions == ()


def test_vol_targeting_with_forecast_vol():
    eng = engine(1, vol_target={"enabled": True, "target_annual": 0.4, "max_scale": 3.0})
    d = eng.apply(T0, np.array([1.0]), np.zeros(1), 1e6, vol=np.array([0.8]))
    np.testing.assert_allclose(d.exposure, [0.5])
    assert rules_of(d) == ["vol_target"] and "scale 0.5" in d.interventions[0].reason
    # low vol: scale up, but never beyond max_scale
    d = eng.apply(T0 + NS_PER_DAY, np.array([1.0]), np.zeros(1), 1e6, vol=np.array([0.05]))
    np.testing.assert_allclose(d.exposure, [3.0])


def test_vol_targeting_from_ewma_of_prices_matches_hand_computation():
    hl = 2
    eng = engine(1, vol_target={"enabled": True, "target_annual": 0.2, "halflife": hl, "max_scale": 10.0})
    lam = 0.5 ** (1 / hl)
    prices = [100.0, 102.0, 100.98, 102.9996]  # returns +2%, -1%, +2%
    cov = 0.0
    for k, p in enumerate(prices):
        t = T0 + k * NS_PER_DAY
        d = eng.apply(t, np.array([1.0]), np.zeros(1), 1e6, prices=np.array([p]))
        if k >= 1:
            r = p / prices[k - 1] - 1
            cov = lam * cov + (1 - lam) * r * r * (NS_PER_YEAR / NS_PER_DAY)
        if k < hl:  # not warm: no scaling
            np.testing.assert_allclose(d.exposure, [1.0])
    np.testing.assert_allclose(d.exposure, [0.2 / math.sqrt(cov)], rtol=1e-12)
    with pytest.raises(RiskError, match="vol_target is enabled"):
        eng.apply(T0 + 9 * NS_PER_DAY, np.array([1.0]), np.zeros(1), 1e6)


def test_drawdown_brake_is_linear_between_soft_and_hard():
    eng = engine(1, drawdown={"soft": 0.1, "hard": 0.3})
    eng.apply(T0, np.array([1.0]), np.zeros(1), 1_000_000.0)  # peak
    d = eng.apply(T0 + 1, np.array([1.0]), np.zeros(1), 800_000.0)  # dd 20% -> scale 0.5
    np.testing.assert_allclose(d.exposure, [0.5])
    assert rules_of(d) == ["drawdown_brake"] and "20.00%" in d.interventions[0].reason
    d = eng.apply(T0 + 2, np.array([1.0]), np.zeros(1), 950_000.0)  # dd 5%: no brake
    np.testing.assert_allclose(d.exposure, [1.0])


def test_drawdown_brake_does_not_compound_on_held_positions():
    eng = engine(1, drawdown={"soft": 0.1, "hard": 0.3})
    eng.apply(T0, np.array([1.0]), np.zeros(1), 1e6)
    d1 = eng.apply(T0 + 1, np.array([1.0]), np.array([1.0]), 8e5)  # scale 0.5
    np.testing.assert_allclose(d1.exposure, [0.5])
    # holding (NaN) at the same drawdown keeps 0.5, it does not halve again
    d2 = eng.apply(T0 + 2, np.array([np.nan]), np.array([0.5]), 8e5)
    np.testing.assert_allclose(d2.exposure, [0.5])
    # the drawdown recovers to 5%: the held position is restored by 1/0.5
    d3 = eng.apply(T0 + 3, np.array([np.nan]), np.array([0.5]), 9.5e5)
    np.testing.assert_allclose(d3.exposure, [1.0])


def test_kill_switch_flattens_halts_until_reset():
    eng = engine(2, drawdown={"soft": 0.1, "hard": 0.3})
    eng.apply(T0, np.array([1.0, 0.5]), np.zeros(2), 1e6)
    d = eng.apply(T0 + 1, np.array([1.0, 0.5]), np.array([1.0, 0.5]), 7e5)  # dd 30% = hard
    np.testing.assert_allclose(d.exposure, [0.0, 0.0])
    assert d.halted and rules_of(d) == ["drawdown_kill"]
    # equity recovers, the switch stays engaged until reset
    d = eng.apply(T0 + 2, np.array([1.0, 0.5]), np.zeros(2), 2e6)
    np.testing.assert_allclose(d.exposure, [0.0, 0.0])
    assert d.halted and rules_of(d) == ["kill_switch"]
    eng.reset_kill_switch()
    d = eng.apply(T0 + 3, np.array([1.0, 0.5]), np.zeros(2), 6e5)  # new peak = 6e5
    assert not d.halted
    np.testing.assert_allclose(d.exposure, [1.0, 0.5])
    assert eng.counts["drawdown_kill"] == 1 and eng.counts["kill_switch"] == 1


@pytest.mark.parametrize(("action", "expected"), [("hold", [0.4, -0.2]), ("derisk", [0.1, -0.05]), ("flatten", [0.0, 0.0])])
def test_stale_data_guard_actions(action: str, expected: list[float]):
    eng = engine(2, stale={"max_age": "1h", "action": action, "derisk_factor": 0.25})
    cur = np.array([0.4, -0.2])
    d = eng.apply(T0, np.array([1.0, 1.0]), cur, 1e6, feature_age_ns=2 * 3600 * NS_PER_S)
    np.testing.assert_allclose(d.exposure, expected)
    assert rules_of(d)[0] == "stale_data" and "7200.000s" in d.interventions[0].reason
    fresh = eng.apply(T0 + 1, np.array([1.0, 1.0]), cur, 1e6, feature_age_ns=60 * NS_PER_S)
    np.testing.assert_allclose(fresh.exposure, [1.0, 1.0])


def test_dispersion_scaling():
    eng = engine(2, dispersion_scale=2.0)
    d = eng.apply(T0, np.array([0.9, -0.6]), np.zeros(2), 1e6, dispersion=np.array([0.5, 0.0]))
    np.testing.assert_allclose(d.exposure, [0.45, -0.6])  # 0.9 / (1 + 2 * 0.5)
    assert rules_of(d) == ["dispersion"]


def test_no_trade_band_holds_small_moves_but_always_allows_closing():
    eng = engine(2, no_trade_band=0.05)
    d = eng.apply(T0, np.array([0.52, 0.30]), np.array([0.50, 0.10]), 1e6)
    np.testing.assert_allclose(d.exposure, [0.50, 0.30])
    assert rules_of(d) == ["no_trade_band"]
    d = eng.apply(T0 + 1, np.array([0.0, 0.30]), np.array([0.01, 0.30]), 1e6)
    np.testing.assert_allclose(d.exposure, [0.0, 0.30])


def test_band_never_keeps_a_position_above_its_cap():
    eng = engine(1, no_trade_band=0.05, max_exposure=1.0)
    d = eng.apply(T0, np.array([0.99]), np.array([1.02]), 1e6)
    np.testing.assert_allclose(d.exposure, [1.0])
    assert rules_of(d) == ["no_trade_band", "instrument_cap"]


def test_max_order_notional_clips_each_move():
    eng = engine(2, max_order_notional=0.25)
    d = eng.apply(T0, np.array([1.0, -0.1]), np.array([0.0, 0.5]), 1e6)
    np.testing.assert_allclose(d.exposure, [0.25, 0.25])
    assert rules_of(d) == ["max_order_notional"]


def test_order_rate_limit_keeps_largest_moves_and_recovers_after_a_minute():
    eng = engine(3, max_orders_per_minute=2)
    cur = np.zeros(3)
    d = eng.apply(T0, np.array([0.1, 0.5, -0.3]), cur, 1e6)
    np.testing.assert_allclose(d.exposure, [0.0, 0.5, -0.3])
    assert rules_of(d) == ["order_rate"]
    d = eng.apply(T0 + 30 * NS_PER_S, np.array([0.1, 0.6, -0.3]), np.array([0.0, 0.5, -0.3]), 1e6)
    np.testing.assert_allclose(d.exposure, [0.0, 0.5, -0.3])  # budget used up
    d = eng.apply(T0 + 61 * NS_PER_S, np.array([0.1, 0.6, -0.3]), np.array([0.0, 0.5, -0.3]), 1e6)
    np.testing.assert_allclose(d.exposure, [0.1, 0.6, -0.3])
    assert d.interventions == ()


def test_state_dict_round_trip_through_json_continues_identically():
    cfg = dict(vol_target={"enabled": True, "halflife": 3, "target_annual": 0.3},
               drawdown={"soft": 0.05, "hard": 0.5}, max_orders_per_minute=5)
    a = engine(2, **cfg)
    rng = np.random.default_rng(1)
    px = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (40, 2)), axis=0))
    eq = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.02, 40)))
    for k in range(20):
        a.apply(T0 + k * NS_PER_DAY, rng.normal(0, 0.5, 2), np.zeros(2), eq[k], prices=px[k])
    b = engine(2, **cfg)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for k in range(20, 40):
        tgt = rng.normal(0, 0.5, 2)
        da = a.apply(T0 + k * NS_PER_DAY, tgt, np.zeros(2), eq[k], prices=px[k])
        db = b.apply(T0 + k * NS_PER_DAY, tgt, np.zeros(2), eq[k], prices=px[k])
        np.testing.assert_array_equal(da.exposure, db.exposure)
        assert da.interventions == db.interventions
    assert a.counts == b.counts
    with pytest.raises(RiskError, match="instruments"):
        engine(3).load_state_dict(a.state_dict())


def test_bad_inputs_are_refused_with_names():
    eng = engine(2)
    with pytest.raises(RiskError, match=r"shape \(3,\)"):
        eng.apply(T0, np.zeros(3), np.zeros(2), 1e6)
    with pytest.raises(RiskError, match="target for ETH is inf"):
        eng.apply(T0, np.array([0.0, np.inf]), np.zeros(2), 1e6)
    with pytest.raises(RiskError, match="current exposure for BTC is nan"):
        eng.apply(T0, np.zeros(2), np.array([np.nan, 0.0]), 1e6)
    with pytest.raises(RiskError, match="equity"):
        eng.apply(T0, np.zeros(2), np.zeros(2), float("nan"))


def test_risk_engine_and_order_logic_import_with_numpy_and_stdlib_only(repo_root):
    code = (
        "import sys; import dea.risk.engine, dea.execution.orders, dea.execution.fills, dea.execution.account, "
        "dea.backtest.event, dea.backtest.policy_eval; "
        "heavy = [m for m in ('numba','pandas','pyarrow','torch','scipy','matplotlib','onnxruntime','sklearn') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_spot_long_only_and_account_limits():
    """A spot short is refused (set to 0) by the shared bound; venue caps scale one account."""
    from dea.config.accounts import AccountsConfig

    spot = Instrument(symbol="BTC", venue="cb", kind="spot", base="BTC")
    perp = Instrument(symbol="ETHPERP", venue="bn", kind="perpetual", base="ETH", quote="USDT", funding="none")
    accs = AccountsConfig(list=[
        {"name": "bn", "venue": "bn", "collateral": "USDT", "leverage": 5.0, "max_equity_share": 0.2},
    ])
    eng = RiskEngine(RiskConfig(**LOOSE, drawdown={"enabled": False}), [spot, perp], accs)
    d = eng.apply(T0, np.array([-0.5, 0.5]), np.zeros(2), 1e6)
    assert d.exposure.tolist() == [0.0, 0.5]
    assert rules_of(d) == ["long_only"] and "long-only spot" in d.interventions[0].reason
    # 2.0 of ETH needs 2.0 / 5 = 0.4 of equity at venue bn, above its 0.2 share: scaled to 1.0
    d = eng.apply(T0 + 1, np.array([0.8, 2.0]), np.zeros(2), 1e6)
    np.testing.assert_allclose(d.exposure, [0.8, 1.0])
    assert rules_of(d) == ["account_limit"]
    # spot in a cash account is unlevered: at most 1
    d = eng.apply(T0 + 2, np.array([1.7, 0.0]), np.zeros(2), 1e6)
    assert d.exposure.tolist() == [1.0, 0.0]
    with pytest.raises(RiskError, match="leverage"):
        RiskEngine(RiskConfig(), [perp], AccountsConfig(list=[{"name": "bn", "venue": "bn", "collateral": "USDT",
                                                              "max_equity_share": 0.5}]))
    with pytest.raises(RiskError, match="collateral: USDT"):
        RiskEngine(RiskConfig(), [perp], AccountsConfig(list=[{"name": "bn", "venue": "bn", "collateral": "BTC"}]))


def test_haircut_on_coin_collateral_tightens_the_venue_share():
    """BTC collateral with a 20 % haircut at 4x: 1.0 of exposure ties up 1 / (4 * 0.8) = 0.3125 of
    equity; a 0.25 share at that venue allows 0.8."""
    from dea.config.accounts import AccountsConfig

    inv = Instrument(symbol="BTCUSD_PERP", venue="cm", kind="perpetual", contract="inverse", base="BTC",
                     contract_size=100, funding="none")
    accs = AccountsConfig(list=[{"name": "cm", "venue": "cm", "collateral": "BTC", "leverage": 4.0,
                                 "haircut": 0.2, "max_equity_share": 0.25}])
    eng = RiskEngine(RiskConfig(**LOOSE, drawdown={"enabled": False}), [inv], accs)
    d = eng.apply(T0, np.array([1.0]), np.zeros(1), 1e6)
    np.testing.assert_allclose(d.exposure, [0.8])
    assert rules_of(d) == ["account_limit"]
    plain = RiskEngine(RiskConfig(**LOOSE, drawdown={"enabled": False}), [inv], AccountsConfig(list=[
        {"name": "cm", "venue": "cm", "collateral": "BTC", "leverage": 4.0, "max_equity_share": 0.25}]))
    np.testing.assert_allclose(plain.apply(T0, np.array([1.0]), np.zeros(1), 1e6).exposure, [1.0])


def test_live_engine_closes_an_expired_future_and_rolls_it():
    fut = Instrument(symbol="F", kind="future", expiry="2023-11-15T00:00:00Z", roll_to="P", roll_before="1d")
    perp = Instrument(symbol="P", kind="perpetual", funding="none")
    eng = RiskEngine(RiskConfig(**LOOSE, drawdown={"enabled": False}), [fut, perp])
    roll = 1_699_920_000 * NS_PER_S  # 2023-11-14T00:00Z = expiry - 1d
    d = eng.apply(roll - 1, np.array([0.5, 0.1]), np.zeros(2), 1e6)
    assert d.exposure.tolist() == [0.5, 0.1] and rules_of(d) == []
    d = eng.apply(roll, np.array([np.nan, 0.1]), np.array([0.5, 0.1]), 1e6)  # holding the future
    assert d.exposure.tolist() == [0.0, 0.6]
    assert rules_of(d) == ["future_expiry"] and eng.counts["future_expiry"] == 1
