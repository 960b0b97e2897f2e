"""The end-of-run summary of ``dea serve`` in human units, from the journal.

Why from the journal: it is the record of what was traded (it survives restarts, so a summary
after a takeover covers the whole account, not only this process). Times are ISO-8601 UTC, PnL a
percentage of the initial equity, costs in account currency and in basis points of it, Sharpe
annualised over the decision step (the backtest's definition, :func:`dea.metrics.performance
.return_metrics`), guard and risk interventions by name. Figures are rounded for reading (money
to the cent, percentages and basis points to 0.01, Sharpe to 0.001); the journal keeps the exact
values.
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
    pnl_pct = 100.0 * (final / initial - 1.0) if initial > 0 and math.isfinite(final) else None
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
            "initial_equity": _round(initial, 2),
            "equity": _round(final, 2),
            "pnl": _round(final - initial, 2),
            "pnl_pct": _round(pnl_pct, 2),
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
        out["account"]["sharpe"] = _round(m.get("sharpe"), 3)
        out["account"]["max_drawdown_pct"] = _round(100.0 * m["max_drawdown"], 2) if "max_drawdown" in m else None
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
    bps = (lambda x: _round(1e4 * x / initial, 2)) if initial > 0 else (lambda x: None)
    out["costs"] = {"fees": _round(fees, 2), "spread": _round(spread, 2), "impact": _round(impact, 2),
                    "total": _round(total, 2), "total_bps": bps(total),
                    "funding_paid": _round(funding, 2), "funding_bps": bps(funding)}
    from serving.options_overlay import options_report

    options = options_report(journal)
    if options is not None:  # serving.options_overlay: the option held, its greeks, rolls and fees
        out["options"] = options
    return out


def _iso(t: int | None) -> str | None:
    return None if t is None else iso(int(t))


def _round(x: Any, digits: int) -> float | None:
    """``x`` rounded for reading; None (JSON null) for a missing or non-finite value, never 0."""
    return None if x is None or not math.isfinite(float(x)) else round(float(x), digits)
