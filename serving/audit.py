"""Re-derive journaled decisions from their recorded model inputs (``dea audit``).

Why: "the model said so" must be checkable after the fact. Every journaled decision carries the
SHA-256 of the exact float32 vector the model saw (features, current exposure, recurrent state;
:func:`serving.loop.input_hash`) and, with ``serving.audit_inputs: true``, the vector itself. An
audit loads a model (verified like any load), feeds it each stored vector and compares the output
with the journaled one and, for plain model decisions, the journaled target (the output clipped
to the model's exposure caps). Any difference is reported with its decision time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dea.errors import JournalError
from dea.model_integrity import TrustPolicy
from dea.timeutil import iso
from serving.journal import Journal
from serving.loop import input_hash
from serving.runner import PolicyRunner


@dataclass
class AuditReport:
    decisions: int = 0  # journaled decisions with an audit record
    rederived: int = 0  # re-run from their stored vector
    hash_only: int = 0  # only the input hash was journaled (serving.audit_inputs: false)
    other_model: int = 0  # journaled under another model digest than the audited one
    differences: list[str] = field(default_factory=list)
    max_abs_diff: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences and self.rederived > 0

    def lines(self) -> list[str]:
        head = (f"{self.decisions} decisions with an audit record: {self.rederived} re-derived, "
                f"{self.hash_only} hash only (no stored vector), {self.other_model} under another model; "
                f"max |output difference| {self.max_abs_diff:.3g}; {len(self.differences)} differences")
        return [head, *self.differences[:50]] + ([f"... {len(self.differences) - 50} more"] if len(self.differences) > 50 else [])


def audit_journal(
    journal_path: str | Path, model: str, *, tolerance: float = 1e-6, tracking_uri: str | None = None,
    trust: TrustPolicy | None = None,
) -> AuditReport:
    """Re-run ``model`` on every stored decision input of the journal and compare."""
    path = Path(journal_path)
    if not path.is_file():
        raise JournalError(f"journal not found: {path}")
    runner = PolicyRunner.load(model, tracking_uri=tracking_uri, trust=trust)
    rep = AuditReport()
    caps = runner.caps
    for row in Journal(path).decision_inputs():
        rep.decisions += 1
        t = row["t_ns"]
        if row["model_sha256"] and runner.sha256 and row["model_sha256"] != runner.sha256:
            rep.other_model += 1
            continue
        vec = row["vector"]
        if vec is None:
            rep.hash_only += 1
            continue
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in vec.items()}
        if input_hash(arrays) != row["input_sha256"]:
            rep.differences.append(f"{iso(t)}: stored input vector does not hash to the journaled input_sha256")
            continue
        rep.rederived += 1
        if runner.is_recurrent:
            state = arrays.get("state")
            if state is None or state.size != runner.state_size:
                rep.differences.append(f"{iso(t)}: recurrent model but no state of width {runner.state_size} stored")
                continue
            runner._state_in[0] = state  # type: ignore[index]
        out = runner.decide(arrays["features"], arrays["exposure"])[0].astype(np.float64)
        journaled = row["model_output"]
        if journaled is None:
            continue  # a fallback or warm-up decision: the model's answer was not used
        want = np.array([np.nan if v is None else v for v in journaled], dtype=np.float64)
        diff = float(np.max(np.abs(out - want))) if want.size else 0.0
        rep.max_abs_diff = max(rep.max_abs_diff, diff if np.isfinite(diff) else np.inf)
        if not diff <= tolerance:
            rep.differences.append(f"{iso(t)}: model output {out.round(6).tolist()} vs journaled {want.round(6).tolist()}")
            continue
        if row["action"] == "model":
            target = np.array([np.nan if v is None else v for v in row["target"]], dtype=np.float64)
            clipped = np.clip(out, -caps, caps)
            if not float(np.max(np.abs(clipped - target))) <= tolerance:
                rep.differences.append(f"{iso(t)}: target {clipped.round(6).tolist()} (output within the model's caps) "
                                       f"vs journaled {target.round(6).tolist()}")
    return rep


__all__ = ["AuditReport", "audit_journal"]
