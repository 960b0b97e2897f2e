"""The compiled streaming execution equals the generic one bit for bit.

Serving runs expression features through :mod:`dea.features.stream_plan` (one traced, shared,
straight-line row program); ``FeatureSet.streaming(compiled=False)`` runs every feature's own
generic stream. The two must produce *identical* values (not merely within the batch parity
tolerance): on the real 5-minute panel with corrupted inputs, for every registered feature, and
for a feature written to exercise numpy's promotion, NaN and zero-division rules. What the tracer
cannot reproduce must fall back to the generic execution, never be computed differently.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from features_realdata import completed_panel, registered_variants, replay

from dea.data.panel import Panel
from dea.errors import FeatureError
from dea.features import FeatureSet
from dea.features.base import ExprFeature, Input
from dea.features.config import FeaturesConfig
from dea.features.ops import as_int64, safe_div, safe_log


def _assert_identical(a: np.ndarray, b: np.ndarray, names: tuple[str, ...]) -> None:
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if not same.all():
        i, j = (int(v) for v in np.argwhere(~same)[0])
        raise AssertionError(f"{names[j]!r} row {i}: compiled {b[i, j]!r} vs generic {a[i, j]!r}")


def _corrupted(panel: Panel, rows: int, seed: int) -> Panel:
    """The first ``rows`` of ``panel`` with NaN, +-inf, zero and negative inputs sprinkled in."""
    rng = np.random.default_rng(seed)
    fields = {}
    for k, v in panel.fields.items():
        a = np.array(v[:rows], dtype=np.float64)
        n = a.shape[1]
        for bad in (np.nan, np.inf, -np.inf, 0.0, -1.0, -0.0):
            a[rng.integers(0, rows, 12), rng.integers(0, n, 12)] = bad
        fields[k] = a
    series = {}
    for k, v in panel.series.items():
        s = np.array(v[:rows], dtype=np.float64)
        s[rng.integers(0, rows, 10)] = np.nan
        s[rng.integers(0, rows, 3)] = 0.0
        series[k] = s
    return Panel(panel.clock[:rows], panel.step_ns, panel.instruments, fields, series, None, "corrupted")


def test_compiled_equals_generic_on_corrupted_real_bars(perps_cfg, perps_panel: Panel) -> None:
    fs = FeatureSet.from_config(perps_cfg.features, perps_panel.instruments)
    compiled = fs.streaming(step_ns=perps_panel.step_ns)
    assert compiled.plan.fallback == [] and len(compiled.plan.compiled) == len(fs.features)
    panel = _corrupted(perps_panel, 3000, seed=5)
    a = replay(fs.streaming(step_ns=panel.step_ns, compiled=False), panel)
    b = replay(compiled, panel)
    _assert_identical(a, b, fs.names)
    assert np.isfinite(b[-1000:]).mean() > 0.5  # not vacuous: values are mostly valid


VARIANTS = registered_variants()


@pytest.mark.parametrize("label,item", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_registered_feature_compiles_and_matches(label: str, item: dict[str, Any], daily_panel: Panel) -> None:
    fs = FeatureSet.from_config(FeaturesConfig.model_validate({"set": [item]}), daily_panel.instruments)
    panel = completed_panel(daily_panel, fs.inputs())
    compiled = fs.streaming(step_ns=panel.step_ns)
    assert compiled.plan.fallback == [], f"{label} fell back: {compiled.plan.fallback}"
    _assert_identical(replay(fs.streaming(compiled=False), panel), replay(compiled, panel), fs.names)


class _Edgy(ExprFeature):
    """Exercises every emulated numpy rule, one per column so no NaN masks another: int/bool/
    float promotion, NaN-propagating maximum/minimum/clip, zero divisors, comparisons, casts,
    ``np.where``, plus ufuncs numpy computes and the operator cells."""

    name: ClassVar[str] = "edgy_test_only"
    family: ClassVar[str] = "test"

    def inputs(self) -> tuple[Input, ...]:
        return (Input("field", "a"), Input("field", "b"), Input("series", "s"))

    def warmup(self) -> int:
        return 0

    def stems(self) -> tuple[str, ...]:
        return tuple(f"e{i}" for i in range(31))

    def compute(self, ops: Any, x: Any) -> Any:
        a, b, s = x.field("a"), x.field("b"), x.series("s")
        fin = np.isfinite(a)
        hour = (as_int64(x.t) // 3_600_000_000_000) % 24  # int arithmetic on the clock
        return (
            a / b,  # zero and non-finite divisors
            a % 3.0 - b // 2.0,  # float floor division: left to numpy
            np.maximum(a, b),
            np.minimum(a, s),
            np.clip(a * 3.0, -1.0, 1.0),
            np.where(a > b, a, np.nan),
            np.where(fin, 1, 0) + np.zeros(()),  # int + float
            np.zeros(()) + fin,  # float + bool
            ((a >= 0) & (b < s)) + 0.0,
            ((a == b) | (a != s)) ^ ~(b <= a),
            np.sqrt(a),
            np.abs(b) - (-s),
            safe_div(a, b),
            safe_log(b),
            np.log1p(np.where(a >= 0, a, np.nan)),
            np.sin(hour.astype(np.float64)),
            hour / 7,  # int true division
            hour % 5 - hour // 4,
            hour > a,  # mixed int/float comparison
            np.power(np.abs(a), 1.5),
            np.arctan2(a, b),
            np.isnan(b) + 0.0,
            np.isinf(a) * 1.0,
            fin * 2,
            ops.rolling_sum(np.where(fin, a, 0.0), 3),
            ops.lag(hour, 1),
            ops.ewma(s, 3, 2),
            ops.rolling_max(b, 4) - ops.rolling_min(a, 2),
            ops.rolling_mean_std(a * b, 5)[1],
            np.square(a),
            np.broadcast_to(s * 2, a.shape) + (s != s),
        )


def _edgy_rows(T: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pool = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 2.0, 1e-300, 1e300, -5.5])
    def draw(shape: tuple[int, ...]) -> np.ndarray:
        v = rng.normal(0.0, 2.0, shape)
        mask = rng.random(shape) < 0.3
        v[mask] = rng.choice(pool, int(mask.sum()))
        return v
    clock = 1_700_000_000_000_000_000 + np.arange(T, dtype=np.int64) * 3_600_000_000_000
    return clock, {"a": draw((T, 2)), "b": draw((T, 2))}, {"s": draw((T,))}


def _edgy_set(instruments: tuple[str, ...]) -> FeatureSet:
    f = _Edgy.from_item({}, instruments)
    return FeatureSet([f], instruments, FeaturesConfig.model_validate({"set": [{"name": "logret"}]}))


def test_emulated_numpy_rules_are_exact() -> None:
    fs = _edgy_set(("X", "Y"))
    compiled = fs.streaming()
    assert compiled.plan.compiled == ["edgy_test_only"], compiled.plan.fallback
    clock, fields, series = _edgy_rows(600, seed=2)
    outs = []
    for st in (fs.streaming(compiled=False), compiled):
        rows = []
        with np.errstate(all="ignore"):
            for i, t in enumerate(clock.tolist()):
                rows.append(st.update(t, {k: v[i] for k, v in fields.items()}, {k: float(v[i]) for k, v in series.items()}))
        outs.append(np.array(rows))
    _assert_identical(outs[0], outs[1], fs.names)
    assert np.isfinite(outs[1]).mean() > 0.3
    # not vacuous: the inputs hit the cases the emulation must get right
    assert np.isnan(outs[1][:, 1]).any() and np.isinf(fields["b"]).any() and (fields["b"] == 0.0).any()


class _Branchy(_Edgy):
    """Data-dependent branching and an unsupported numpy reduction: cannot be traced."""

    name: ClassVar[str] = "branchy_test_only"

    def stems(self) -> tuple[str, ...]:
        return ("k0", "k1")

    def compute(self, ops: Any, x: Any) -> Any:
        a = x.field("a")
        total = np.nansum(a)  # a reduction the tracer does not reproduce
        lagged = ops.lag(a, 1)
        return (lagged + total, np.where(a > 0, a, 0.0) if np.all(np.isfinite(a)) else a * 0.0)


def test_untraceable_feature_falls_back_and_keeps_its_values() -> None:
    instruments = ("X", "Y")
    cfg = FeaturesConfig.model_validate({"set": [{"name": "logret"}]})
    fs = FeatureSet([_Branchy.from_item({}, instruments), _Edgy.from_item({}, instruments)], instruments, cfg)
    compiled = fs.streaming()
    assert compiled.plan.compiled == ["edgy_test_only"]
    assert [name for name, _ in compiled.plan.fallback] == ["branchy_test_only"]
    clock, fields, series = _edgy_rows(200, seed=4)
    outs = []
    for st in (fs.streaming(compiled=False), compiled):
        with np.errstate(all="ignore"):
            outs.append(np.array([
                st.update(t, {k: v[i] for k, v in fields.items()}, {k: float(v[i]) for k, v in series.items()})
                for i, t in enumerate(clock.tolist())
            ]))
    _assert_identical(outs[0], outs[1], fs.names)


def test_missing_inputs_raise_feature_errors_naming_them(perps_cfg, perps_panel: Panel) -> None:
    fs = FeatureSet.from_config(perps_cfg.features, perps_panel.instruments)
    fields, series = perps_panel.row(0)
    st = fs.streaming()
    with pytest.raises(FeatureError, match="'close'"):
        st.update(int(perps_panel.clock[0]), {k: v for k, v in fields.items() if k != "close"}, series)
    st = fs.streaming()
    with pytest.raises(FeatureError, match="fear_greed_index"):
        st.update(int(perps_panel.clock[0]), fields, {})
    st = fs.streaming()
    with pytest.raises(FeatureError, match="shape"):
        st.update(int(perps_panel.clock[0]), {**fields, "close": fields["close"][:2]}, series)
