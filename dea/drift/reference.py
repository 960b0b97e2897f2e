"""Training-time distribution summary of each feature, stored with the exported model.

Why a summary and not the training data: the live loop must compare today's features with what
the model was trained on, without shipping (or being able to read) the training set. A fixed
set of quantiles and bin shares per feature is enough for both PSI and KS, serialises to a few
kilobytes of JSON, and can live inside the ONNX metadata (key :data:`METADATA_KEY`) or in a
sidecar file ``<model>.drift.json`` beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dea.errors import DataError, ModelError

METADATA_KEY = "dea.drift_reference"
SIDECAR_SUFFIX = ".drift.json"
FORMAT = "dea.drift.reference/1"


def _round(values: np.ndarray) -> list[float]:
    """JSON floats at full precision: a stored quantile must compare equal to the value the
    live feature takes (a rounded point mass would land on the wrong side of itself)."""
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


@dataclass(frozen=True)
class FeatureReference:
    """One feature's training distribution.

    ``edges``: interior PSI bin edges (training deciles, duplicates removed so point masses keep
    one bin). ``shares``: training share per bin plus a last entry for NaN. ``quantiles``: values
    at the document's ``q_probs`` (for the KS reference CDF), over finite values only.
    """

    name: str
    n: int
    nan_share: float
    mean: float
    std: float
    edges: np.ndarray
    shares: np.ndarray
    quantiles: np.ndarray

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n": self.n,
            "nan_share": self.nan_share,
            "mean": self.mean,
            "std": self.std,
            "edges": _round(self.edges),
            "shares": _round(self.shares),
            "quantiles": _round(self.quantiles),
        }


@dataclass(frozen=True)
class DriftReference:
    """The reference of every model input feature, in the model's feature order."""

    features: tuple[FeatureReference, ...]
    q_probs: np.ndarray
    n_bins: int
    train_window: tuple[str, str] | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureReference:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "n_bins": self.n_bins,
            "q_probs": _round(self.q_probs),
            "train_window": list(self.train_window) if self.train_window else None,
            "features": [f.to_dict() for f in self.features],
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> "DriftReference":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: drift reference is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ModelError(f"{source}: drift reference format must be {FORMAT!r}, got {doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}")
        try:
            q_probs = np.asarray(doc["q_probs"], dtype=np.float64)
            feats = []
            for f in doc["features"]:
                ref = FeatureReference(
                    name=str(f["name"]),
                    n=int(f["n"]),
                    nan_share=float(f["nan_share"]),
                    mean=float(f["mean"]),
                    std=float(f["std"]),
                    edges=np.asarray(f["edges"], dtype=np.float64),
                    shares=np.asarray(f["shares"], dtype=np.float64),
                    quantiles=np.asarray(f["quantiles"], dtype=np.float64),
                )
                if ref.shares.size != ref.edges.size + 2 or ref.quantiles.size not in (0, q_probs.size):
                    raise ModelError(f"{source}: feature {ref.name!r} has inconsistent bins/quantiles")
                feats.append(ref)
            window = doc.get("train_window")
            return cls(tuple(feats), q_probs, int(doc["n_bins"]), tuple(window) if window else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: malformed drift reference ({exc!r})") from None


def bin_edges(finite: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior PSI bin edges at the training quantiles, never *on* a value the data takes.

    An edge equal to a point mass (a day-of-week, a 0/1 indicator, a clipped value) would put
    that mass on one side or the other depending on the last bit of the number — and the JSON
    round trip or a float32 cast can flip it. Such an edge is moved to the midpoint between that
    value and the next smaller one, so a point mass sits squarely inside one bin.
    """
    u = np.unique(finite)
    q = np.unique(np.quantile(finite, np.arange(1, n_bins) / n_bins))
    k = np.searchsorted(u, q, side="left")
    on_value = (k < u.size) & (u[np.minimum(k, u.size - 1)] == q)
    lower = u[np.maximum(k - 1, 0)]
    q = np.where(on_value & (k > 0), 0.5 * (lower + q), q)
    q = q[~(on_value & (k == 0))]  # an edge at the minimum separates nothing
    return np.unique(q)


def summarise_feature(name: str, values: np.ndarray, n_bins: int, q_probs: np.ndarray) -> FeatureReference:
    """Summarise one training column (NaNs counted, never dropped silently)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise DataError(f"feature {name!r}: no training values to summarise")
    nan = np.isnan(values)
    finite = values[~nan]
    if np.isinf(finite).any():
        raise DataError(f"feature {name!r}: training values contain +/-inf")
    if finite.size == 0:
        edges = np.empty(0)
        quantiles = np.empty(0)
        mean = std = float("nan")
    else:
        edges = bin_edges(finite, n_bins)
        quantiles = np.quantile(finite, q_probs)
        mean, std = float(finite.mean()), float(finite.std())
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)
    shares = np.append(counts, nan.sum()) / values.size
    return FeatureReference(name, int(values.size), float(nan.mean()), mean, std, edges, shares, quantiles)


def build_reference(
    features: np.ndarray,
    names: Sequence[str],
    n_bins: int = 10,
    n_quantiles: int = 101,
    train_window: tuple[str, str] | None = None,
) -> DriftReference:
    """Summarise a training feature matrix ``[T, F]`` (columns in ``names`` order)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise DataError(f"drift reference: features shape {x.shape} does not match {len(names)} names")
    if n_bins < 2 or n_quantiles < 3:
        raise DataError("drift reference needs n_bins >= 2 and n_quantiles >= 3")
    q_probs = np.linspace(0.0, 1.0, n_quantiles)
    feats = tuple(summarise_feature(n, x[:, j], n_bins, q_probs) for j, n in enumerate(names))
    return DriftReference(feats, q_probs, n_bins, train_window)


def reference_from_metadata(metadata: Mapping[str, str], source: str = "<model>") -> DriftReference | None:
    """The reference embedded in ONNX metadata properties, or None when the model has none."""
    text = metadata.get(METADATA_KEY)
    return None if not text else DriftReference.from_json(text, f"{source}[{METADATA_KEY}]")


def sidecar_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def load_reference(model_path: str | Path, metadata: Mapping[str, str] | None = None) -> DriftReference:
    """Find a model's drift reference: in its metadata first, then in ``<model>.drift.json``.

    ``metadata`` is the ONNX custom metadata map when the caller already has a session open.
    """
    model_path = Path(model_path)
    if metadata is None and model_path.suffix == ".onnx" and model_path.is_file():
        import onnxruntime as ort  # lazy: only this path needs it

        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        metadata = sess.get_modelmeta().custom_metadata_map
    ref = reference_from_metadata(metadata or {}, str(model_path))
    if ref is not None:
        return ref
    side = sidecar_path(model_path)
    if side.is_file():
        return DriftReference.from_json(side.read_text(encoding="utf-8"), str(side))
    raise ModelError(
        f"{model_path}: no drift reference (metadata key {METADATA_KEY!r} absent and no {side.name}); "
        "re-export the model with dea export, which stores the training feature distribution"
    )
