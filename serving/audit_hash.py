"""The hash of a decision's model input vector: one definition for the loop and ``dea audit``.

Why float32: the model sees float32 (the runner's bound buffers); hashing the float64 values the
loop holds would make an audit miss a difference that the cast hides, or report one it made up.
A NaN (a missing input the policy fills) hashes by its bit pattern, like any other value.
"""

from __future__ import annotations

import hashlib

import numpy as np


def as_model_inputs(features: np.ndarray, exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (features, exposure) vectors exactly as the runner feeds them: contiguous float32."""
    return (np.ascontiguousarray(features, dtype=np.float32).ravel(),
            np.ascontiguousarray(exposure, dtype=np.float32).ravel())


def input_digest(features: np.ndarray, exposure: np.ndarray) -> str:
    """SHA-256 over the float32 feature vector, a separator, and the float32 exposure vector."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(exposure, dtype=np.float32).tobytes())
    return h.hexdigest()
