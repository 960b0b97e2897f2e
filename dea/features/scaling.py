"""Per-feature scaling fitted on the training window only, serialisable so export can bake it in.

Robust scaling (default): center = median, scale = IQR / 1.349 (so a Gaussian feature gets unit
scale and ``clip`` reads as "sigmas"), then values are clipped to ±``clip``. Statistics come only
from the rows passed as ``train_rows`` — never from validation or test rows — and ignore NaNs.
Missing-indicator columns (``*__missing``) pass through unscaled. A constant training column gets
scale 1. The fitted scaler is plain JSON (``to_dict``/``from_dict``: names, center, scale, clip),
which the ONNX export turns into ``(x - center) / scale`` and a clip inside the graph. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dea.errors import FeatureError
from dea.features.missing import INDICATOR_SUFFIX

IQR_TO_SIGMA = 1.349  # IQR of a standard normal
SCALER_FORMAT = 1


@dataclass(frozen=True)
class Scaler:
    """A fitted per-feature affine map ``(x - center) / scale``, then clip to ±clip."""

    names: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    clip: float | None = 5.0
    method: str = "robust"

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` [..., F] -> float32 (NaN stays NaN)."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1] != len(self.names):
            raise FeatureError(f"scaler fitted on {len(self.names)} features, got {X.shape[-1]} columns")
        Z = (X - self.center) / self.scale
        if self.clip is not None:
            Z = np.clip(Z, -self.clip, self.clip)
        return Z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SCALER_FORMAT,
            "method": self.method,
            "names": list(self.names),
            "center": [float(v) for v in self.center],
            "scale": [float(v) for v in self.scale],
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Scaler":
        try:
            names = tuple(str(n) for n in d["names"])
            center = np.asarray(d["center"], dtype=np.float64)
            scale = np.asarray(d["scale"], dtype=np.float64)
            clip = None if d.get("clip") is None else float(d["clip"])
            method = str(d.get("method", "robust"))
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"invalid scaler description: {exc}") from None
        if not (len(names) == len(center) == len(scale)):
            raise FeatureError(f"scaler has {len(names)} names, {len(center)} centers, {len(scale)} scales")
        if not (np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise FeatureError("scaler centers/scales must be finite and scales positive")
        return cls(names, center, scale, clip, method)


def fit_scaler(
    X: np.ndarray,
    train_rows: np.ndarray | Sequence[int],
    *,
    names: Sequence[str] | None = None,
    method: Literal["robust", "standard", "none"] = "robust",
    clip: float | None = 5.0,
) -> Scaler:
    """Fit per-column statistics on ``X[train_rows]`` only (bool mask [T] or row indices)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise FeatureError(f"fit_scaler expects a 2-D matrix, got shape {X.shape}")
    rows = np.asarray(train_rows)
    if rows.dtype == bool:
        if rows.shape != (X.shape[0],):
            raise FeatureError(f"train_rows mask has shape {rows.shape}, expected ({X.shape[0]},)")
        rows = np.nonzero(rows)[0]
    if rows.size == 0:
        raise FeatureError("fit_scaler: no training rows")
    F = X.shape[1]
    labels = tuple(names) if names is not None else tuple(f"f{j}" for j in range(F))
    if len(labels) != F:
        raise FeatureError(f"fit_scaler: {len(labels)} names for {F} columns")
    train = X[rows]
    finite = np.isfinite(train)
    empty = [labels[j] for j in range(F) if not finite[:, j].any()]
    if empty and method != "none":
        raise FeatureError(f"fit_scaler: features {empty[:5]} have no finite value on the training rows")
    if method == "none":
        center, scale = np.zeros(F), np.ones(F)
    else:
        with np.errstate(invalid="ignore"):
            clean = np.where(finite, train, np.nan)
            if method == "robust":
                q25, center, q75 = np.nanpercentile(clean, [25.0, 50.0, 75.0], axis=0)
                scale = (q75 - q25) / IQR_TO_SIGMA
            else:
                center = np.nanmean(clean, axis=0)
                scale = np.nanstd(clean, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 1e-12 * np.maximum(1.0, np.abs(center))), scale, 1.0)
    indicator = np.array([n.endswith(INDICATOR_SUFFIX) for n in labels], dtype=bool)
    center = np.where(indicator, 0.0, center)
    scale = np.where(indicator, 1.0, scale)
    return Scaler(labels, np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64), clip, method)
