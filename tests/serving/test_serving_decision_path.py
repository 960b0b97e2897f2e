"""The decision path's shortcuts give exactly what the reference functions give.

The live loop prepares each feature row with :class:`~dea.features.missing.RowPreparer` (plain
floats instead of numpy on a few dozen values) and the risk engine builds its intervention records
itself (visiting only the rules that fired, reusing the text of count-valued reasons). Both are
held to the public reference functions, :func:`prepare_row` and :func:`interventions_from_trail`,
on random inputs that make every policy branch and most rules fire.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dea.errors import FeatureError
from dea.features.missing import RowPreparer, prepare_row
from dea.instruments import Instrument
from dea.risk import rules
from dea.risk.config import RiskConfig
from dea.risk.engine import RiskEngine, interventions_from_trail
from dea.timeutil import NS_PER_S

NAMES = [f"f{j}" for j in range(7)]


def _rows(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38, -3e38])
    out = []
    for _ in range(n):
        v = rng.normal(0.0, 10.0, len(NAMES))
        mask = rng.random(len(NAMES)) < 0.15
        v[mask] = rng.choice(pool[:5], int(mask.sum()))
        out.append(v)
    return out


def _outcome(fn, *args):  # noqa: ANN001, ANN202
    try:
        x, ok = fn(*args)
    except FeatureError as exc:
        return ("error", str(exc))
    assert x.dtype == np.float32
    return (x.tobytes(), ok)


@pytest.mark.parametrize(
    "policy",
    [{"policy": "mask"}, {"policy": "error"}, {"policy": "fill"}, {"policy": "fill", "indicator": False},
     {"policy": "fill", "fill_value": -1.5}],
)
def test_row_preparer_equals_prepare_row(policy: dict) -> None:
    from dea.features.config import MissingPolicy

    pol = MissingPolicy(**policy)
    prep = RowPreparer(pol, NAMES)
    seen = set()
    for i, row in enumerate(_rows(1, 400)):
        warm = i % 5 != 0
        want = _outcome(prepare_row, row, pol, warm, NAMES)
        assert _outcome(prep, row, warm) == want
        seen.add(want[0] == "error")
    # a finite value beyond float32 is refused the same way (naming the column)
    big = np.zeros(len(NAMES))
    big[3] = 4e38
    assert _outcome(prep, big, True) == _outcome(prepare_row, big, pol, True, NAMES)
    assert _outcome(prep, big, True)[0] == "error"
    if pol.policy == "error":
        assert seen == {True, False}  # both branches were exercised


def test_engine_records_equal_interventions_from_trail() -> None:
    cfg = RiskConfig(max_exposure=0.5, max_gross=0.8, max_net=0.6, max_leverage=0.9, no_trade_band=0.05,
                     max_order_notional=0.3, max_orders_per_minute=3, stale={"max_age": "10s", "action": "derisk"},
                     drawdown={"enabled": True, "soft": 0.05, "hard": 0.5}, dispersion_scale=2.0)
    eng = RiskEngine(cfg, [Instrument(symbol=s) for s in ("BTC", "ETH", "LTC")])
    rng = np.random.default_rng(3)
    fired: set[str] = set()
    cur = np.zeros(3)
    equity = 1e6
    for k in range(600):
        t = (1_700_000_000 + 7 * k) * NS_PER_S
        target = rng.uniform(-1.2, 1.2, 3)
        target[rng.random(3) < 0.1] = np.nan
        age = float(rng.choice([1e9, 30e9]))
        disp = rng.uniform(0.0, 0.5, 3) if k % 2 else None
        equity *= math.exp(rng.normal(0.0, 0.01))
        d = eng.apply(t, target, cur, equity, feature_age_ns=age, dispersion=disp)
        mask = sum(1 << rules.RULE_NAMES.index(r.rule) for r in d.interventions)
        assert d.interventions == interventions_from_trail(t, mask, eng._trail, eng._diag, cfg)
        fired.update(r.rule for r in d.interventions)
        if eng.halted:
            eng.reset_kill_switch()
        cur = d.exposure.copy()
    assert {"no_trade_band", "instrument_cap", "gross_cap", "stale_data", "dispersion", "order_rate"} <= fired, fired
