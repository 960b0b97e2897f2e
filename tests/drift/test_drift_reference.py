"""Training-time reference: what is summarised, JSON round trip, and where a model keeps it."""

from __future__ import annotations

import numpy as np
import pytest

from dea.drift import METADATA_KEY, DriftReference, build_reference, load_reference, reference_from_metadata, sidecar_path
from dea.errors import DataError, ModelError


def _reference() -> DriftReference:
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=1000), rng.exponential(size=1000), np.r_[np.full(100, np.nan), np.ones(900)]]
    return build_reference(x, ["a", "b", "c"], train_window=("2023-01-01T00:00:00Z", "2023-06-30T00:00:00Z"))


def test_reference_summarises_each_feature() -> None:
    ref = _reference()
    a, _, c = ref.features
    assert a.n == 1000 and a.edges.size == 9 and a.shares.size == 11
    assert a.shares[:-1] == pytest.approx(np.full(10, 0.1), abs=2e-3)
    assert c.nan_share == pytest.approx(0.1) and c.shares[-1] == pytest.approx(0.1)
    assert c.edges.size == 0  # a constant feature is one bin, not nine equal edges


def test_json_round_trip_keeps_everything() -> None:
    ref = _reference()
    back = DriftReference.from_json(ref.to_json())
    assert back.names == ref.names and back.train_window == ref.train_window
    for f, g in zip(ref.features, back.features, strict=True):
        np.testing.assert_array_equal(g.quantiles, f.quantiles)  # exact: no rounding
        np.testing.assert_array_equal(g.shares, f.shares)
        np.testing.assert_array_equal(g.edges, f.edges)


def test_metadata_then_sidecar_lookup(tmp_path) -> None:
    ref = _reference()
    assert reference_from_metadata({METADATA_KEY: ref.to_json()}).names == ["a", "b", "c"]
    assert reference_from_metadata({}) is None
    model = tmp_path / "policy.bin"
    model.write_bytes(b"")
    with pytest.raises(ModelError, match="no drift reference"):
        load_reference(model, metadata={})
    sidecar_path(model).write_text(ref.to_json())
    assert load_reference(model, metadata={}).names == ["a", "b", "c"]


def test_malformed_reference_is_refused() -> None:
    with pytest.raises(ModelError, match="format"):
        DriftReference.from_json('{"format": "other"}')
    with pytest.raises(ModelError, match="not valid JSON"):
        DriftReference.from_json("{")


def test_infinite_training_values_are_refused() -> None:
    with pytest.raises(DataError, match="inf"):
        build_reference(np.array([[1.0], [np.inf]]), ["x"])


def test_point_masses_survive_the_json_round_trip() -> None:
    """Day-of-week-like float32 values: the same distribution after a JSON round trip has PSI ~0
    (edges sit between the values, so the last bit of a number cannot move it across a bin)."""
    from dea.drift import compare

    days = np.sin(2 * np.pi * np.arange(7) / 7).astype(np.float32)
    train = np.tile(days, 300)[:, None].astype(np.float64)
    ref = DriftReference.from_json(build_reference(train, ["dow"]).to_json())
    (same,) = compare(ref, np.tile(days, 30)[:, None].astype(np.float64))
    assert same.psi < 1e-3 and same.ks <= 1 / (ref.q_probs.size - 1) + 1e-9 and not same.flagged
    (skewed,) = compare(ref, np.repeat(days[:2], 100)[:, None].astype(np.float64))
    assert skewed.flagged
