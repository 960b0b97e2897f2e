"""Missing-data policy: how NaNs are kept away from a model, explicitly and per feature set.

Three policies (``features.missing.policy`` in the config):

- ``mask``: rows where any feature is invalid (warm-up or NaN) are excluded (``row_mask`` False);
  their values stay NaN in ``X`` so misuse is loud, never a silent zero.
- ``fill``: after the warm-up, invalid values are replaced by ``fill_value`` and, with
  ``indicator``, a ``<name>__missing`` column (1.0 = was missing) is appended so the model can
  tell a filled value from a real one. Warm-up rows are excluded.
- ``error``: any invalid value after the warm-up raises :class:`~dea.errors.FeatureError`
  naming the feature, how many rows, and the first time.

:func:`prepare_inputs` applies a policy to a batch matrix (training); :func:`prepare_row` applies
the same policy to one streaming vector (serving). numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dea.errors import FeatureError
from dea.features.config import MissingPolicy
from dea.timeutil import iso

if TYPE_CHECKING:
    from dea.features.featureset import FeatureMatrix

INDICATOR_SUFFIX = "__missing"
_F32_MAX = float(np.finfo(np.float32).max)


def as_policy(policy: MissingPolicy | str) -> MissingPolicy:
    """Accept a :class:`MissingPolicy` or its name (``"mask"``, ``"fill"``, ``"error"``)."""
    if isinstance(policy, MissingPolicy):
        return policy
    try:
        return MissingPolicy(policy=policy)
    except Exception:
        raise FeatureError(f"unknown missing-data policy {policy!r}; expected mask, fill or error") from None


def input_names(names: Sequence[str], policy: MissingPolicy | str) -> tuple[str, ...]:
    """Model input column names under ``policy`` (features, then indicators when filling)."""
    policy = as_policy(policy)
    names = tuple(names)
    if policy.policy == "fill" and policy.indicator:
        return names + tuple(n + INDICATOR_SUFFIX for n in names)
    return names


def _to_f32(values: np.ndarray, names: Sequence[str]) -> np.ndarray:
    big = np.isfinite(values) & (np.abs(values) > _F32_MAX)
    if big.any():
        j = int(np.nonzero(big.any(axis=0))[0][0]) if values.ndim == 2 else int(np.nonzero(big)[0][0])
        raise FeatureError(f"feature {names[j]!r} has values beyond float32 range; rescale it")
    return values.astype(np.float32)


def prepare_inputs(
    matrix: "FeatureMatrix", policy: MissingPolicy | str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Apply ``policy`` to a feature matrix -> (X float32 [T, F'], row_mask bool [T], names [F'])."""
    policy = as_policy(policy)
    values = np.asarray(matrix.values, dtype=np.float64)
    valid = np.asarray(matrix.valid, dtype=bool) & np.isfinite(values)
    T = values.shape[0]
    past_warmup = np.arange(T) >= matrix.warmup
    names = input_names(matrix.names, policy)
    if policy.policy == "mask":
        row_mask = valid.all(axis=1)
        return _to_f32(np.where(valid, values, np.nan), matrix.names), row_mask, names
    if policy.policy == "error":
        bad = ~valid & past_warmup[:, None]
        if bad.any():
            j = int(np.nonzero(bad.any(axis=0))[0][0])
            rows = np.nonzero(bad[:, j])[0]
            raise FeatureError(
                f"missing policy 'error': feature {matrix.names[j]!r} is missing on {len(rows)} rows after "
                f"the warm-up, first at {iso(int(matrix.clock[rows[0]]))} (row {int(rows[0])})"
            )
        return _to_f32(np.where(valid, values, np.nan), matrix.names), past_warmup, names
    filled = np.where(valid, values, policy.fill_value)
    if policy.indicator:
        filled = np.concatenate([filled, (~valid).astype(np.float64)], axis=1)
    return _to_f32(filled, names), past_warmup, names


def prepare_row(
    values: np.ndarray, policy: MissingPolicy | str, warm: bool, names: Sequence[str] | None = None
) -> tuple[np.ndarray, bool]:
    """Serving counterpart of :func:`prepare_inputs` for one vector -> (x float32 [F'], usable)."""
    policy = as_policy(policy)
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    labels = list(names) if names is not None else [f"#{j}" for j in range(len(values))]
    if policy.policy == "mask":
        return _to_f32(np.where(valid, values, np.nan), labels), bool(warm and valid.all())
    if policy.policy == "error":
        if warm and not valid.all():
            missing = [labels[j] for j in np.nonzero(~valid)[0][:5]]
            raise FeatureError(f"missing policy 'error': features {missing} are missing on this row")
        return _to_f32(np.where(valid, values, np.nan), labels), bool(warm)
    filled = np.where(valid, values, policy.fill_value)
    if policy.indicator:
        filled = np.concatenate([filled, (~valid).astype(np.float64)])
    return _to_f32(filled, labels + labels), bool(warm)


class RowPreparer:
    """:func:`prepare_row` bound to one policy and column list, for the live loop's decision path.

    The policy and labels are resolved once and the row (a few dozen values) is handled as plain
    floats: numpy's per-call overhead on such a vector costs several times the work. Same
    results as :func:`prepare_row`, errors included.
    """

    __slots__ = ("policy", "names", "_labels", "_mode", "_fill", "_indicator")

    def __init__(self, policy: MissingPolicy | str, names: Sequence[str]) -> None:
        self.policy = as_policy(policy)
        self.names = list(names)
        self._mode = self.policy.policy
        self._fill = float(self.policy.fill_value)
        self._indicator = self._mode == "fill" and self.policy.indicator
        self._labels = self.names + self.names if self._indicator else self.names

    def __call__(self, values: np.ndarray, warm: bool) -> tuple[np.ndarray, bool]:
        if type(values) is np.ndarray and values.dtype == np.float64 and values.ndim == 1:
            vals = values.tolist()
        else:
            vals = np.asarray(values, dtype=np.float64).tolist()
        if len(vals) != len(self.names):
            return prepare_row(values, self.policy, warm, self.names)
        if self._mode == "fill":
            fill = self._fill
            out = [v if v - v == 0.0 else fill for v in vals]
            if self._indicator:
                out += [0.0 if v - v == 0.0 else 1.0 for v in vals]
            usable = bool(warm)
        else:
            nan = math.nan
            out = [v if v - v == 0.0 else nan for v in vals]
            bad = [j for j, v in enumerate(out) if v != v]
            if self._mode == "error":
                if warm and bad:
                    missing = [self.names[j] for j in bad[:5]]
                    raise FeatureError(f"missing policy 'error': features {missing} are missing on this row")
                usable = bool(warm)
            else:
                usable = bool(warm and not bad)
        for j, v in enumerate(out):  # what _to_f32 refuses: finite values beyond float32
            if (v > _F32_MAX or v < -_F32_MAX) and v - v == 0.0:
                raise FeatureError(f"feature {self._labels[j]!r} has values beyond float32 range; rescale it")
        return np.array(out, dtype=np.float32), usable
