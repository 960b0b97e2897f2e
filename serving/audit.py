"""``dea audit JOURNAL --model M``: re-derive every journaled decision and report differences.

Why: a journal says what was traded; an audit must be able to show *why*, from the record alone.
Each decision carries the SHA-256 of the model that made it and of its exact float32 input vector
(:mod:`serving.audit_hash`); with ``serving.journal_inputs`` the vector itself is stored. The audit
opens the journal read-only, checks every stored vector against its hash (a stored vector that
was altered is a difference), runs the model on it and compares with the journaled target.

Only decisions whose target *is* the model's output (action ``model``) can be compared exactly;
guard actions, fallbacks, warm-up and halts are counted by kind. Recurrent models carry hidden
state across decisions (and restarts reset it), so their decisions cannot be re-derived one at a
time: auditing one is refused with a clear error rather than reporting made-up differences.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dea.errors import JournalError, ModelError
from dea.model_artifact import LAX, TrustPolicy
from dea.timeutil import iso
from serving.audit_hash import input_digest
from serving.runner import PolicyRunner

#: |re-derived - journaled| above this is a difference (the model runs in float32; the journal
#: stores float64 copies of float32 outputs, so an honest re-run matches to the last bit)
TOLERANCE = 1e-6


@dataclass
class AuditReport:
    journal: str
    model: str
    model_sha256: str | None
    decisions: int = 0
    rederived: int = 0
    matched: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    hash_only: int = 0  # a hash but no stored vector (serving.journal_inputs was off)
    no_audit_trail: int = 0  # journaled before decisions carried input hashes
    other_model: int = 0  # made by a model with another digest
    not_model_output: dict[str, int] = field(default_factory=dict)  # by action kind

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ok"] = self.ok
        return out


def _read_decisions(path: Path) -> list[tuple[int, str, list[Any], dict[str, Any]]]:
    """(t_ns, action, target, detail) of every decision, from a read-only connection."""
    if not path.is_file():
        raise JournalError(f"journal not found: {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT t_ns, action, target, detail FROM decisions ORDER BY t_ns").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a readable DEA journal: {exc}") from None
    out = []
    for t, action, target, detail in rows:
        try:
            out.append((int(t), str(action), json.loads(target), json.loads(detail or "{}")))
        except json.JSONDecodeError as exc:
            raise JournalError(f"{path}: decision at {iso(int(t))} is not valid JSON: {exc}") from None
    return out


def _floats(values: Any, what: str, t: int) -> np.ndarray:
    if not isinstance(values, list):
        raise JournalError(f"decision at {iso(t)}: stored {what} is not a list")
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float32)


def audit_journal(
    journal: str | Path,
    model: str,
    *,
    tracking_uri: str | None = None,
    trust: TrustPolicy = LAX,
    tolerance: float = TOLERANCE,
) -> AuditReport:
    """Re-derive the journaled decisions of ``journal`` with ``model`` (a path or registry URI)."""
    path = Path(journal)
    runner = PolicyRunner.load(model, None, tracking_uri=tracking_uri, trust=trust)
    if runner.is_recurrent:
        raise ModelError(f"{model}: a recurrent model's decisions depend on its hidden state across decisions; "
                         "dea audit re-derives decisions one at a time and supports feed-forward models only")
    rep = AuditReport(str(path), str(model), runner.sha256)
    for t, action, target, detail in _read_decisions(path):
        rep.decisions += 1
        digest = detail.get("input_sha256")
        if digest is None:
            rep.no_audit_trail += 1
            continue
        if detail.get("model_sha256") != runner.sha256:
            rep.other_model += 1
            continue
        inputs = detail.get("inputs")
        if inputs is None:
            rep.hash_only += 1
            continue
        x = _floats(inputs.get("features"), "features", t)
        e = _floats(inputs.get("exposure"), "exposure", t)
        if input_digest(x, e) != digest:
            rep.differences.append({"t": iso(t), "problem": "stored input vector does not match its hash"})
            continue
        if action != "model":
            kind = action.split(":")[0]
            rep.not_model_output[kind] = rep.not_model_output.get(kind, 0) + 1
            continue
        if x.shape[0] != runner.n_features or e.shape[0] != runner.n_instruments:
            rep.differences.append({"t": iso(t), "problem": f"input widths {x.shape[0]}/{e.shape[0]} do not fit the "
                                                            f"model ({runner.n_features}/{runner.n_instruments})"})
            continue
        out = runner.decide(x, e).ravel().astype(np.float64)
        want = np.array([math.nan if v is None else float(v) for v in target], dtype=np.float64)
        rep.rederived += 1
        diff = np.abs(out - want)
        if want.shape != out.shape or not (np.isfinite(diff).all() and float(diff.max()) <= tolerance):
            rep.differences.append({"t": iso(t), "problem": "re-derived target differs",
                                    "journaled": want.tolist(), "rederived": out.tolist(),
                                    "max_abs_diff": float(np.nanmax(diff)) if diff.size else math.nan})
        else:
            rep.matched += 1
    return rep
