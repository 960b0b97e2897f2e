"""The end-of-run summary of ``dea serve`` in human units, from the journal.

Why from the journal: it is the record of what was traded (it survives restarts, so a summary
after a takeover covers the whole account, not only this process). Times are ISO-8601 UTC, PnL a
percentage of the initial equity, costs in account currency and in basis points of it, Sharpe
annualised over the decision step (the backtest's definition, :func:`dea.metrics.performance
.return_metrics`), guard and risk interventions by name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dea.metrics.performance import return_metrics
from dea.timeutil import iso
from serving.journal import Journal

YEAR_NS = 365.25 * 86400e9


def serve_report(journal: Journal, summary: Any, *, step_ns: int, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able summary of the run and the account (``summary``: the loop's LoopSummary)."""
    initial = float(journal.get_meta("initial_equity") or "nan")
    decisions = journal.decisions()
    eq = np.array([d["equity"] for d in decisions if d["equity"] is not None], dtype=np.float64)
    eq = eq[np.isfinite(eq)]
    final = float(summary.equity)
    out: dict[str, Any] = {
        "model": model or {},
        "this_run": {
            "events": summary.events,
            "decisions": summary.decisions,
            "replayed_silently": summary.silent_decisions,
            "warmup_decisions": summary.warmup_decisions,
            "orders": summary.orders,
            "fills": summary.fills,
            "resent_after_restart": summary.resent,
            "cancelled_unsent": summary.cancelled,
            "first_decision": _iso(summary.first_decision),
            "last_decision": _iso(summary.last_decision),
            "wall_seconds": round(float(summary.wall_s), 3),
            "stopped": summary.stopped,
        },
        "account": {
            "initial_equity": initial,
            "equity": final,
            "pnl": final - initial,
            "pnl_pct": 100.0 * (final / initial - 1.0) if initial > 0 and math.isfinite(final) else None,
            "decisions_journaled": len(decisions),
            "first_decision": _iso(decisions[0]["t_ns"]) if decisions else None,
            "last_decision": _iso(decisions[-1]["t_ns"]) if decisions else None,
        },
        "guards": dict(summary.guarded),
        "risk_interventions": dict(summary.interventions),
        "fallbacks": dict(summary.fallbacks),
        "model_swaps": summary.model_swaps,
        "halted": bool(summary.halted),
    }
    if len(eq) > 2 and step_ns > 0:
        r = eq[1:] / eq[:-1] - 1.0
        m = return_metrics(r, YEAR_NS / step_ns)
        out["account"]["sharpe"] = _num(m.get("sharpe"))
        out["account"]["max_drawdown_pct"] = _num(100.0 * m["max_drawdown"]) if "max_drawdown" in m else None
    else:
        out["account"]["sharpe"] = None  # fewer than 3 equity marks: no meaningful ratio
    fees = spread = impact = funding = 0.0
    for e in journal.ledger():
        if e.fill is not None:
            fees += e.fill.fee
            spread += e.fill.spread
            impact += e.fill.impact
        elif e.kind == "funding":
            funding += e.amount
    total = fees + spread + impact
    bps = (lambda x: 1e4 * x / initial) if initial > 0 else (lambda x: None)
    out["costs"] = {"fees": fees, "spread": spread, "impact": impact, "total": total, "total_bps": bps(total),
                    "funding_paid": funding, "funding_bps": bps(funding)}
    return out


def _iso(t: int | None) -> str | None:
    return None if t is None else iso(int(t))


def _num(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)
