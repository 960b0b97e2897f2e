"""The metrics table printed by ``dea backtest`` and embedded in the tearsheet: one column per
strategy, one row per headline metric, each formatted for its unit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# (key, label, format) — format: pct, num, int, days, money
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("total_return", "total return", "pct"),
    ("annual_return", "annual return", "pct"),
    ("annual_vol", "annual vol", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sharpe_diff", "policy Sharpe minus this", "num"),  # with its stationary-bootstrap CI, when given
    ("diff_ci", "95% CI of the difference (* = distinguishable)", "text"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "max drawdown", "pct"),
    ("max_drawdown_duration_days", "max DD duration (days)", "days"),
    ("var_95", "VaR 95%", "pct"),
    ("es_95", "ES 95%", "pct"),
    ("var_99", "VaR 99%", "pct"),
    ("es_99", "ES 99%", "pct"),
    ("hit_rate", "hit rate", "pct"),
    ("turnover_annual", "turnover / year", "num"),
    ("cost_fees", "fees", "pct"),
    ("cost_spread", "spread", "pct"),
    ("cost_impact", "impact", "pct"),
    ("cost_funding", "funding", "pct"),
    ("exposure_gross_mean", "mean gross exposure", "num"),
    ("exposure_net_mean", "mean net exposure", "num"),
    ("time_in_market", "time in market", "pct"),
    ("interventions_total", "risk interventions", "int"),
    ("liquidations", "liquidations", "int"),
    ("deflated_sharpe", "deflated Sharpe", "num"),
    ("final_equity", "final equity", "money"),
)


def format_value(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "days":
        return f"{value:.0f}"
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "text":
        return str(value)
    return f"{value:.3f}"


def metric_rows(metrics: Mapping[str, Mapping[str, float]],
                keys: Sequence[tuple[str, str, str]] = HEADLINE) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of formatted cells; metrics absent from every strategy are left out."""
    names = list(metrics)
    header = ["metric", *names]
    rows = []
    for key, label, kind in keys:
        if not any(key in metrics[n] for n in names):
            continue
        rows.append([label, *(format_value(metrics[n].get(key), kind) for n in names)])
    return header, rows


def format_metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Plain-text table, strategies side by side."""
    header, rows = metric_rows(metrics)
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    def line(r: list[str]) -> str:
        return "  ".join(r[0].ljust(widths[0]) if c == 0 else r[c].rjust(widths[c]) for c in range(len(r)))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)
