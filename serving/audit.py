"""``dea audit JOURNAL --model M``: re-derive every journaled decision and report differences.

Why: a journal says what was traded; an audit must be able to show *why*, from the record alone.
Each decision carries the SHA-256 of the model that made it and of its exact float32 input vector
(:mod:`serving.audit_hash`); with ``serving.journal_inputs`` the vector itself is stored. The audit
opens the journal read-only, checks every stored vector against its hash (a stored vector that
was altered is a difference), runs the model on it and compares with the journaled target.

Only decisions whose target *is* the model's output (action ``model``) can be compared exactly;
guard actions, fallbacks, warm-up and halts are counted by kind.

Recurrent models carry hidden state across decisions, so a decision can only be re-derived after
every earlier step of the same state. Each decision of a recurrent model journals the SHA-256 of
the state it saw and whether it ran the model (``detail.state``); the audit replays the steps in
decision order from the journaled inputs, resets where the journal shows a zero state (a restart
that could not replay, a model swapped back in) and checks its replayed state against the
journaled digest before every step. A state that differs is a difference; a step it cannot
replay (no stored vector) leaves the state unknown, and the decisions after it are counted as
``state_unknown`` until the next reset. :func:`replay_recurrent_state` is the same walk without
the comparisons: a restarted or standby loop uses it to continue from the primary's state.

With an options overlay whose underlying ``risk.greeks`` budgets (``serving.options_overlay``),
each decision journals the option delta the risk engine counted (``detail.option_delta``) and,
when the greek rule cut, the exposure before the cut (``detail.greek_before``). Given the
serving config (``--config``), the audit re-derives both: the option delta re-priced from the
overlay's journaled steps (the series held before the decision, the last inputs that passed, the
decision's equity) with the overlay's own code, and the greek rule re-applied to the exposure
before it with that delta (:meth:`dea.risk.engine.RiskEngine.greek_stage`, the code
``RiskEngine.apply`` runs); a journaled delta or allowed exposure that differs is a difference.
The rest of the risk engine is not re-derived (its inputs, e.g. prices, are not journaled).
Without the config those decisions are counted as ``greeks_unchecked`` and noted.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dea.errors import ConfigError, JournalError
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
    recurrent: bool = False
    replayed_steps: int = 0  # recurrent: model steps replayed to rebuild the hidden state
    state_unknown: int = 0  # recurrent: decisions after a step that could not be replayed
    greeks_checked: int = 0  # decisions whose option delta and greek rule were re-derived
    greeks_unchecked: int = 0  # decisions with a journaled option delta, audited without --config
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ok"] = self.ok
        return out


def _read_decisions(path: Path) -> list[tuple[int, str, list[Any], dict[str, Any], list[Any], float]]:
    """(t_ns, action, target, detail, allowed, equity) of every decision, from a read-only connection."""
    if not path.is_file():
        raise JournalError(f"journal not found: {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT t_ns, action, target, detail, allowed, equity FROM decisions ORDER BY t_ns").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a readable DEA journal: {exc}") from None
    out = []
    for t, action, target, detail, allowed, equity in rows:
        try:
            out.append((int(t), str(action), json.loads(target), json.loads(detail or "{}"), json.loads(allowed),
                        float(equity)))
        except json.JSONDecodeError as exc:
            raise JournalError(f"{path}: decision at {iso(int(t))} is not valid JSON: {exc}") from None
    return out


def _read_option_states(path: Path) -> list[tuple[int, str, str | None, float, float, float]]:
    """(t_ns, action, instrument, contracts, price, iv) of the overlay's journaled steps (none
    for a journal written without ``serving.options_overlay``)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='option_state'").fetchall():
            return []
        rows = db.execute("SELECT t_ns, action, instrument, contracts, price, iv FROM option_state ORDER BY t_ns").fetchall()
    finally:
        db.close()
    return [(int(t), str(a), i, float(q), float(p), float(v)) for t, a, i, q, p, v in rows]


class _GreekAudit:
    """Re-derives a decision's option delta and greek rule (see the module docstring)."""

    TOL = 1e-9

    def __init__(self, cfg: Any, states: list[tuple[int, str, str | None, float, float, float]]) -> None:
        from dea.options.contracts import parse_option_name
        from dea.options.overlay import OverlayStepper
        from dea.risk.engine import RiskEngine

        ov = cfg.serving.options_overlay
        if ov is None or not cfg.risk.greeks:
            raise ConfigError("dea audit --config: the journal's decisions carry option deltas (an options overlay "
                              "counted in risk.greeks), but this config lacks serving.options_overlay or risk.greeks; "
                              "give the config the journal was served with")
        self.engine = RiskEngine(cfg.risk, cfg.data.instruments, cfg.accounts)
        self.n = len(cfg.data.instruments)
        inst = next((i for i in cfg.data.instruments if i.symbol == ov.instrument), None)
        self.underlying = (inst.base or inst.symbol) if inst is not None else ov.instrument
        self.multiplier = ov.leg.multiplier
        self.stepper = OverlayStepper(ov.leg, ov.budgets, ov.fees, underlying=self.underlying)
        self.parse = parse_option_name
        self.states = states

    def delta(self, t: int, equity: float) -> float:
        """The option delta the loop's risk engine counted at ``t`` (``LiveOverlay.greeks``)."""
        from dea.options.overlay import OptionPosition

        held = next((s for s in reversed(self.states) if s[0] < t), None)
        good = next((s for s in reversed(self.states) if s[0] <= t and not s[1].startswith("hold:inputs")), None)
        if held is None or held[2] is None or held[3] == 0.0 or good is None:
            return 0.0
        _, _, name, q, _, _ = held
        _, _, _, _, price, iv = good
        if not (price > 0 and equity > 0) or not math.isfinite(iv):
            return 0.0
        c = self.parse(name)
        self.stepper.restore(OptionPosition(name, c.strike, c.expiry_ns, c.is_call, q, self.multiplier), 0.0)
        return float(self.stepper.exposure(good[0], price, iv, equity).delta)

    def check(self, t: int, allowed: list[Any], equity: float, detail: dict[str, Any]) -> list[dict[str, Any]]:
        from dea.options.portfolio import GreekExposure

        out: list[dict[str, Any]] = []
        journaled = detail.get("option_delta") or {}
        if set(journaled) != {self.underlying}:
            return [{"t": iso(t), "problem": f"journaled option delta names {sorted(journaled)}, the overlay's "
                                             f"underlying is {self.underlying!r}"}]
        d = float(journaled[self.underlying])
        priced = self.delta(t, float(equity))
        if not abs(priced - d) <= self.TOL:
            out.append({"t": iso(t), "problem": "journaled option delta differs from the one re-priced from the "
                                                "overlay's journaled steps", "journaled": d, "rederived": priced})
        rules = list(detail.get("rules") or [])
        if detail.get("halted"):  # a halted engine does not run the greek rule
            return out
        cut_rule = "greek_budget" in rules
        before = detail.get("greek_before") if cut_rule else allowed
        if not isinstance(before, list) or len(before) != self.n or any(v is None for v in before):
            return out + [{"t": iso(t), "problem": "exposure before the greek rule is not journaled (or not "
                                                   f"{self.n} finite values)"}]
        got, cut = self.engine.greek_stage([float(v) for v in before], {self.underlying: GreekExposure(delta=d)})
        want = [math.nan if v is None else float(v) for v in allowed]
        if len(want) != self.n or not all(abs(a - b) <= self.TOL for a, b in zip(got, want, strict=True)) \
                or bool(cut) != cut_rule:
            out.append({"t": iso(t), "problem": "greek rule re-derived with the journaled option delta differs",
                        "journaled": want, "rederived": got, "journaled_cut": cut_rule, "rederived_cut": bool(cut)})
        return out


def _floats(values: Any, what: str, t: int) -> np.ndarray:
    if not isinstance(values, list):
        raise JournalError(f"decision at {iso(t)}: stored {what} is not a list")
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float32)


@dataclass
class _Walk:
    """The replay of a recurrent model's state along a journal (see the module docstring)."""

    runner: PolicyRunner
    zero: str | None = None
    known: bool = True

    def __post_init__(self) -> None:
        self.runner.reset_state()
        self.zero = self.runner.state_digest()

    def before(self, journaled: str) -> str | None:
        """Align with the state the decision saw: None when aligned, else why not."""
        mine = self.runner.state_digest()
        if journaled == mine:
            self.known = True
            return None
        if journaled == self.zero:  # the loop started this state afresh here
            self.runner.reset_state()
            self.known = True
            return None
        if self.known:
            self.known = False
            return "recurrent state differs"
        return "state unknown"


def replay_recurrent_state(runner: PolicyRunner, decisions: list[dict[str, Any]]) -> tuple[int, str | None]:
    """Advance ``runner``'s hidden state through the journaled ``decisions`` (``Journal.decisions()``
    order) made by the same model: (steps replayed, None) when the state now equals the state the
    journal's last step left, else (steps, why not) with the state reset to zero."""
    walk = _Walk(runner)
    steps = 0
    for d in decisions:
        detail = d.get("detail") or {}
        st = detail.get("state")
        if detail.get("model_sha256") != runner.sha256 or not isinstance(st, dict):
            continue
        if walk.before(str(st.get("sha256"))) is not None:
            continue
        if not st.get("ran"):
            continue
        inputs = detail.get("inputs")
        if inputs is None:
            walk.known = False
            continue
        t = int(d["t_ns"])
        x, e = _floats(inputs.get("features"), "features", t), _floats(inputs.get("exposure"), "exposure", t)
        if input_digest(x, e) != detail.get("input_sha256"):
            walk.known = False
            continue
        runner.decide(x, e)
        steps += 1
    if not walk.known:
        runner.reset_state()
        return steps, ("a step of the journaled recurrent state cannot be replayed (no stored input vector: "
                       "serving.journal_inputs is off, or a stored vector does not match its hash)")
    return steps, None


def audit_journal(
    journal: str | Path,
    model: str,
    *,
    tracking_uri: str | None = None,
    trust: TrustPolicy = LAX,
    tolerance: float = TOLERANCE,
    config: Any = None,
) -> AuditReport:
    """Re-derive the journaled decisions of ``journal`` with ``model`` (a path or registry URI);
    ``config`` (an ``ExperimentConfig`` or its YAML path): the serving config, needed to
    re-derive the option delta and greek rule of an options overlay (module docstring)."""
    path = Path(journal)
    runner = PolicyRunner.load(model, None, tracking_uri=tracking_uri, trust=trust)
    walk = _Walk(runner) if runner.is_recurrent else None
    rep = AuditReport(str(path), str(model), runner.sha256, recurrent=runner.is_recurrent)
    decisions = _read_decisions(path)
    greeks: _GreekAudit | None = None
    if config is not None and any("option_delta" in d for _, _, _, d, _, _ in decisions):
        if isinstance(config, (str, Path)):
            from dea.config import load_config

            config = load_config(config)
        greeks = _GreekAudit(config, _read_option_states(path))
    for t, action, target, detail, allowed, equity in decisions:
        rep.decisions += 1
        if "option_delta" in detail:
            if greeks is None:
                rep.greeks_unchecked += 1
            else:
                rep.greeks_checked += 1
                rep.differences.extend(greeks.check(t, allowed, equity, detail))
        digest = detail.get("input_sha256")
        if digest is None:
            rep.no_audit_trail += 1
            continue
        if detail.get("model_sha256") != runner.sha256:
            rep.other_model += 1
            continue
        ran = action.startswith("model") or action == "fallback:nan_output"
        if walk is not None:
            st = detail.get("state")
            if not isinstance(st, dict):  # journaled before recurrent decisions carried their state
                rep.no_audit_trail += 1
                walk.known = False
                continue
            why = walk.before(str(st.get("sha256")))
            if why == "recurrent state differs":
                rep.differences.append({"t": iso(t), "problem": "recurrent state before the decision differs from "
                                                                "the one replayed from the journaled inputs"})
            if why is not None:
                rep.state_unknown += 1
                continue
            ran = bool(st.get("ran"))
        inputs = detail.get("inputs")
        if inputs is None:
            rep.hash_only += 1
            if walk is not None and ran:
                walk.known = False  # this step cannot be replayed: the state after it is unknown
            continue
        x = _floats(inputs.get("features"), "features", t)
        e = _floats(inputs.get("exposure"), "exposure", t)
        if input_digest(x, e) != digest:
            rep.differences.append({"t": iso(t), "problem": "stored input vector does not match its hash"})
            if walk is not None and ran:
                walk.known = False
            continue
        if x.shape[0] != runner.n_features or e.shape[0] != runner.n_instruments:
            rep.differences.append({"t": iso(t), "problem": f"input widths {x.shape[0]}/{e.shape[0]} do not fit the "
                                                            f"model ({runner.n_features}/{runner.n_instruments})"})
            if walk is not None and ran:
                walk.known = False
            continue
        if action != "model":
            kind = action.split(":")[0]
            rep.not_model_output[kind] = rep.not_model_output.get(kind, 0) + 1
            if walk is not None and ran:
                runner.decide(x, e)  # the step still advanced the state
                rep.replayed_steps += 1
            continue
        out = runner.decide(x, e).ravel().astype(np.float64)
        if walk is not None:
            rep.replayed_steps += 1
        want = np.array([math.nan if v is None else float(v) for v in target], dtype=np.float64)
        rep.rederived += 1
        diff = np.abs(out - want)
        if want.shape != out.shape or not (np.isfinite(diff).all() and float(diff.max()) <= tolerance):
            rep.differences.append({"t": iso(t), "problem": "re-derived target differs",
                                    "journaled": want.tolist(), "rederived": out.tolist(),
                                    "max_abs_diff": float(np.nanmax(diff)) if diff.size else math.nan})
        else:
            rep.matched += 1
    if rep.greeks_unchecked:
        rep.notes.append(f"{rep.greeks_unchecked} decisions counted an option delta under risk.greeks; their option "
                         "delta and greek rule were not re-derived (pass the serving config: --config)")
    return rep
