"""Properties every registered feature must have, checked automatically for each one.

The list comes from the registry, so a feature added later (order book included) is covered
without touching this file. Inputs come from the real daily Coin Metrics + sentiment + FRED
panel; inputs that data lacks (mark/index, open interest, order-book fields) are synthesised.

- parity: streaming == batch (relative difference <= 1e-9, same NaN pattern) at every row;
- warm-up: the declared warm-up is exactly the first valid row when inputs are complete;
- no leakage: perturbing every input after row c leaves every value at rows <= c unchanged
  (and does change later values, so the check is not vacuous).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from features_realdata import assert_parity, completed_panel, registered_variants, replay

from dea.data.panel import Panel
from dea.features import FeatureSet
from dea.features.config import FeaturesConfig

VARIANTS = registered_variants()


def _feature_set(item: dict[str, Any], panel: Panel) -> FeatureSet:
    return FeatureSet.from_config(FeaturesConfig.model_validate({"set": [item]}), panel.instruments)


@pytest.fixture(scope="module")
def base_panel(daily_panel: Panel) -> Panel:
    return daily_panel


def test_registry_is_populated() -> None:
    names = {v[0].split("[")[0] for v in VARIANTS}
    families = {"bars", "derivatives", "exogenous", "cross_asset", "calendar"}
    from dea.features import registry

    assert families <= {registry.get(n).family for n in names}
    assert len(names) >= 20


@pytest.mark.parametrize("label,item", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_parity_warmup_and_no_leakage(label: str, item: dict[str, Any], base_panel: Panel) -> None:
    fs = _feature_set(item, base_panel)
    panel = completed_panel(base_panel, fs.inputs())
    T = len(panel)
    matrix = fs.batch(panel)

    # parity at every decision time
    stream = replay(fs.streaming(step_ns=panel.step_ns), panel)
    assert_parity(matrix.values, stream, matrix.names)

    # warm-up: flagged, and exactly as declared where inputs are complete from row 0
    complete_from_start = all(
        np.isfinite(panel.fields[i.name][0]).all() if i.kind == "field" else np.isfinite(panel.series[i.name][0])
        for i in fs.inputs()
    )
    for j, name in enumerate(matrix.names):
        w = matrix.warmups[j]
        assert not matrix.valid[:w, j].any(), f"{name}: valid inside its warm-up"
        first = int(np.argmax(matrix.valid[:, j]))
        assert matrix.valid[:, j].any(), f"{name}: never valid on real data"
        if complete_from_start:
            assert first == w, f"{name}: declared warm-up {w}, first valid row {first}"
        else:
            assert first >= w

    # no leakage: perturb every input strictly after row c
    rng = np.random.default_rng(7)
    has_inputs = bool(fs.inputs())
    for c in (T // 3, (2 * T) // 3):
        fields = {}
        for k, v in panel.fields.items():
            v = v.copy()
            v[c + 1 :] *= np.exp(rng.normal(0.0, 0.3, v[c + 1 :].shape))
            v[c + 1 :: 7] = np.nan
            fields[k] = v
        series = {}
        for k, v in panel.series.items():
            v = v.copy()
            v[c + 1 :] = v[c + 1 :] * np.exp(rng.normal(0.0, 0.3, v[c + 1 :].shape)) + rng.normal(0.0, 1.0, v[c + 1 :].shape)
            series[k] = v
        perturbed = Panel(panel.clock, panel.step_ns, panel.instruments, fields, series, panel.age, "perturbed")
        m2 = fs.batch(perturbed)
        np.testing.assert_array_equal(m2.values[: c + 1], matrix.values[: c + 1], err_msg=f"{label}: future leaked into rows <= {c}")
        if has_inputs:
            after = ~np.isclose(m2.values[c + 1 :], matrix.values[c + 1 :], equal_nan=True)
            assert after.any(), f"{label}: perturbation did not reach the feature (vacuous check)"
