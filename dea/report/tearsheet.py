"""Tearsheet: one PNG (equity against baselines, drawdown, exposure per instrument, rolling
Sharpe, cost breakdown) and a self-contained HTML page (the PNG embedded as base64, the metrics
table, account events and risk interventions). matplotlib with the Agg backend, so it runs
headless; imported lazily by the CLI.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dea.backtest.result import COST_KINDS, BacktestResult
from dea.metrics import compute_metrics
from dea.report.table import metric_rows
from dea.timeutil import NS_PER_S

_MAX_POINTS = 4000


def _dates(clock: np.ndarray) -> np.ndarray:
    return (np.asarray(clock, dtype=np.int64) // NS_PER_S).astype("datetime64[s]")


def _thin(n: int) -> slice:
    return slice(None, None, max(1, math.ceil(n / _MAX_POINTS)))


def _rolling_sharpe(r: np.ndarray, window: int, ppy: float) -> np.ndarray:
    out = np.full(len(r), np.nan)
    if len(r) < window or window < 2:
        return out
    c1 = np.cumsum(np.concatenate([[0.0], r]))
    c2 = np.cumsum(np.concatenate([[0.0], r * r]))
    s1 = c1[window:] - c1[:-window]
    s2 = c2[window:] - c2[:-window]
    mean = s1 / window
    var = np.maximum((s2 - s1 * mean) / (window - 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[window - 1:] = np.where(var > 0, mean / np.sqrt(var) * math.sqrt(ppy), np.nan)
    return out


def plot_tearsheet(results: Mapping[str, BacktestResult], path: Path, title: str) -> Path:
    """Write the five-panel PNG for ``results`` (the first one is the policy under review)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = list(results)
    primary = results[names[0]]
    fig, axes = plt.subplots(5, 1, figsize=(12, 18), constrained_layout=True)
    fig.suptitle(title, fontsize=14)
    ax_eq, ax_dd, ax_x, ax_rs, ax_c = axes
    for k, name in enumerate(names):
        res = results[name]
        sl = _thin(len(res.clock))
        d = _dates(res.clock)[sl]
        wealth = res.equity / res.initial_equity
        lw = 2.0 if k == 0 else 1.0
        ax_eq.plot(d, wealth[sl], lw=lw, label=name)
        peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
        ax_dd.plot(d, (wealth / peak - 1.0)[sl] * 100, lw=lw, label=name)
        ppy = res.periods_per_year
        window = int(max(2, min(len(res.returns) // 4, round(ppy / 4))))
        ax_rs.plot(d, _rolling_sharpe(res.returns, window, ppy)[sl], lw=lw, label=name)
    ax_eq.set_yscale("log")
    ax_eq.set_ylabel("equity (start = 1, log)")
    ax_eq.set_title("equity: policy against baselines")
    ax_eq.legend(loc="upper left", fontsize=8)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.set_title("drawdown")
    ax_rs.set_ylabel("Sharpe")
    ax_rs.set_title("rolling Sharpe (about a quarter of a year, annualised)")
    ax_rs.axhline(0.0, color="grey", lw=0.5)
    sl = _thin(len(primary.clock))
    d = _dates(primary.clock)[sl]
    for j, sym in enumerate(primary.instruments):
        ax_x.plot(d, primary.exposures[sl, j], lw=1.0, label=sym)
    ax_x.set_title(f"exposure per instrument: {names[0]}")
    ax_x.set_ylabel("exposure (notional / equity)")
    ax_x.axhline(0.0, color="grey", lw=0.5)
    ax_x.legend(loc="upper left", fontsize=8)
    width = 0.8 / len(COST_KINDS)
    x = np.arange(len(names))
    for k, kind in enumerate(COST_KINDS):
        vals = [float(np.sum(results[n].costs[kind])) * 100 for n in names]
        ax_c.bar(x + (k - (len(COST_KINDS) - 1) / 2) * width, vals, width, label=kind)
    ax_c.set_xticks(x, names, rotation=20, ha="right")
    ax_c.set_ylabel("% of equity (sum over steps)")
    ax_c.set_title("cost breakdown (negative funding = received)")
    ax_c.axhline(0.0, color="grey", lw=0.5)
    ax_c.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_tearsheet(results: Mapping[str, BacktestResult], out_dir: str | Path, title: str,
                    metrics: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Path]:
    """Write ``tearsheet.png``, ``tearsheet.html`` and ``metrics.json`` into ``out_dir``.

    ``results``: strategy name -> result, the policy under review first. ``metrics``: precomputed
    :func:`~dea.metrics.compute_metrics` per name (computed here when absent).
    """
    if not results:
        raise ValueError("write_tearsheet needs at least one result")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = dict(metrics) if metrics is not None else {n: compute_metrics(r) for n, r in results.items()}
    png = plot_tearsheet(results, out / "tearsheet.png", title)
    header, rows = metric_rows({n: metrics[n] for n in results})
    events = [[n, str(e.kind), str(np.datetime64(e.t_ns // NS_PER_S, "s")), e.detail]
              for n, r in results.items() for e in r.events]
    rules = sorted({rule for r in results.values() for rule in r.interventions})
    inter_rows = [[rule, *(f"{results[n].interventions.get(rule, 0):,}" for n in results)] for rule in rules]
    notes = [[n, note] for n, r in results.items() for note in r.notes]
    embedded = base64.b64encode(png.read_bytes()).decode("ascii")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    first = results[next(iter(results))]
    span = f"{np.datetime64(int(first.clock[0]) // NS_PER_S, 's')} to {np.datetime64(int(first.clock[-1]) // NS_PER_S, 's')}" if len(first.clock) else "empty"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ background: #f0f0f0; }}
img {{ max-width: 100%; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(span)} &middot; {len(first.clock):,} decisions &middot; instruments {html.escape(", ".join(first.instruments))}
&middot; latency {first.latency_ns / 1e9:g}s &middot; engine {html.escape(first.engine)} &middot; generated {generated}</p>
<h2>Metrics</h2>
{_html_table(header, rows)}
<h2>Charts</h2>
<img alt="tearsheet" src="data:image/png;base64,{embedded}">
<h2>Risk interventions (decisions changed, per rule)</h2>
{_html_table(["rule", *results], inter_rows) if inter_rows else "<p>none</p>"}
<h2>Account events</h2>
{_html_table(["strategy", "event", "time", "detail"], events) if events else "<p>no liquidations</p>"}
<h2>Notes</h2>
{_html_table(["strategy", "note"], notes) if notes else "<p>none</p>"}
</body></html>
"""
    html_path = out / "tearsheet.html"
    html_path.write_text(page, encoding="utf-8")
    json_path = out / "metrics.json"
    json_path.write_text(json.dumps({n: {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                         for k, v in m.items()} for n, m in metrics.items()}, indent=2))
    return {"png": png, "html": html_path, "metrics": json_path}
