"""Compare current feature values with a model's training reference (batch and rolling).

:func:`compare` scores a block of rows (``dea drift`` uses it on a data file);
:class:`RollingDriftMonitor` keeps the last ``window`` rows in a ring buffer and re-scores them
every ``every`` updates, which is what the live loop calls once per decision. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.drift.reference import DriftReference, FeatureReference
from dea.drift.stats import bin_counts, ks_pvalue, ks_statistic, psi_from_shares
from dea.errors import DataError, ModelError


@dataclass(frozen=True)
class DriftThresholds:
    """A feature is flagged when PSI >= ``psi`` or the KS distance >= ``ks``.

    The KS *distance* is thresholded rather than its p-value because with thousands of rows per
    window any trivial change is "significant"; PSI 0.25 is the customary "significant shift".
    """

    psi: float = 0.25
    ks: float = 0.15
    min_samples: int = 200


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    n: int
    psi: float
    ks: float
    ks_pvalue: float
    nan_share: float
    mean_shift: float
    flagged: bool
    reasons: tuple[str, ...]


def score_feature(ref: FeatureReference, values: np.ndarray, q_probs: np.ndarray, th: DriftThresholds) -> FeatureDrift:
    """PSI, KS and context figures of one feature's current values against its reference."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    nan = np.isnan(values)
    counts = bin_counts(values, ref.edges)
    p = psi_from_shares(ref.shares, counts / max(n, 1)) if n else float("nan")
    finite = values[~nan]
    if finite.size and ref.quantiles.size:
        ks = ks_statistic(finite, ref.quantiles, q_probs)
        pval = ks_pvalue(ks, finite.size)
        shift = (float(finite.mean()) - ref.mean) / ref.std if ref.std > 0 else float("nan")
    elif finite.size == 0 and ref.quantiles.size == 0:
        ks, pval, shift = 0.0, 1.0, float("nan")
    else:  # one side all-NaN, the other not: maximal distance
        ks, pval, shift = 1.0, 0.0, float("nan")
    reasons: list[str] = []
    if n >= th.min_samples:
        if p >= th.psi:
            reasons.append(f"psi {p:.3f} >= {th.psi}")
        if ks >= th.ks:
            reasons.append(f"ks {ks:.3f} >= {th.ks}")
    return FeatureDrift(ref.name, n, p, ks, pval, float(nan.mean()) if n else float("nan"), shift, bool(reasons), tuple(reasons))


def compare(
    reference: DriftReference,
    values: np.ndarray,
    names: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[FeatureDrift]:
    """Score every reference feature on ``values`` [n, F] (columns in ``names`` order).

    ``names`` defaults to the reference order; a name the reference lacks (or the reverse) is a
    :class:`ModelError`, because comparing a differently ordered feature set is meaningless.
    """
    th = thresholds or DriftThresholds()
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"drift: values must be 2-D [rows, features], got shape {x.shape}")
    names = list(names) if names is not None else reference.names
    if x.shape[1] != len(names):
        raise DataError(f"drift: {x.shape[1]} columns but {len(names)} feature names")
    missing = sorted(set(reference.names) - set(names))
    extra = sorted(set(names) - set(reference.names))
    if missing or extra:
        raise ModelError(f"drift: features differ from the model's reference (missing {missing}, unknown {extra})")
    col = {n: j for j, n in enumerate(names)}
    return [score_feature(f, x[:, col[f.name]], reference.q_probs, th) for f in reference.features]


def format_report(rows: Sequence[FeatureDrift]) -> str:
    """Plain-text table, flagged features first, then by PSI."""
    ordered = sorted(rows, key=lambda r: (not r.flagged, -(r.psi if np.isfinite(r.psi) else -1)))
    width = max([len("feature")] + [len(r.name) for r in rows])
    lines = [f"{'feature':<{width}}  {'n':>7}  {'psi':>7}  {'ks':>6}  {'ks_p':>8}  {'nan':>5}  {'shift_sd':>8}  flag"]
    for r in ordered:
        lines.append(
            f"{r.name:<{width}}  {r.n:>7d}  {r.psi:>7.3f}  {r.ks:>6.3f}  {r.ks_pvalue:>8.2g}  "
            f"{r.nan_share:>5.2f}  {r.mean_shift:>8.2f}  {'DRIFT: ' + '; '.join(r.reasons) if r.flagged else ''}"
        )
    n_flag = sum(r.flagged for r in rows)
    lines.append(f"{n_flag} of {len(rows)} features drifted")
    return "\n".join(lines)


class RollingDriftMonitor:
    """PSI/KS per feature over the last ``window`` observations, re-scored every ``every`` rows.

    ``update(row)`` takes one feature vector in the reference's order and returns the fresh
    scores when an evaluation is due (else None); ``latest`` keeps the last scores. Memory is one
    ``[window, F]`` float64 buffer; nothing grows with uptime.
    """

    def __init__(
        self,
        reference: DriftReference,
        window: int = 2000,
        every: int = 50,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        if window < 2 or every < 1:
            raise DataError(f"drift monitor: window ({window}) must be >= 2 and every ({every}) >= 1")
        self.reference = reference
        self.window = window
        self.every = every
        self.thresholds = thresholds or DriftThresholds()
        self._buf = np.full((window, len(reference.features)), np.nan)
        self._count = 0
        self.latest: list[FeatureDrift] | None = None

    @property
    def count(self) -> int:
        return self._count

    def update(self, row: np.ndarray) -> list[FeatureDrift] | None:
        row = np.asarray(row, dtype=np.float64).ravel()
        if row.size != self._buf.shape[1]:
            raise DataError(f"drift monitor: row has {row.size} features, reference has {self._buf.shape[1]}")
        self._buf[self._count % self.window] = row
        self._count += 1
        if self._count % self.every or self._count < self.thresholds.min_samples:
            return None
        return self.evaluate()

    def evaluate(self) -> list[FeatureDrift]:
        """Score the rows currently in the window (oldest rows are overwritten first)."""
        filled = self._buf[: min(self._count, self.window)]
        self.latest = compare(self.reference, filled, thresholds=self.thresholds)
        return self.latest
