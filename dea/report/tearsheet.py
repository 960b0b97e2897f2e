"""Tearsheet: a static PNG a quant recognises and two HTML pages beside it.

- ``tearsheet.png``: equity of the informative strategies (policy, its base, buy-and-hold, the best
  other baseline; every strategy stays in the table), gross against net equity, the underwater
  plot with the five worst drawdowns (peak, trough, recovery, depth), monthly returns heatmap,
  yearly returns, return distribution, rolling volatility and rolling beta to buy-and-hold,
  turnover over time, the cost breakdown (fees, spread, impact, funding, with each trading cost per
  unit of turnover so equal totals are explained, not hidden) and exposure per instrument; the
  walk-forward test blocks' starts are marked on every time axis.
- ``tearsheet.html``: self-contained (the PNG embedded), with the metrics table, the drawdown table,
  risk interventions, account events and notes.
- ``tearsheet_interactive.html``: the same panels in Plotly (:mod:`dea.report.interactive`), when
  the ``report`` extra is installed; otherwise the HTML page says so and how to install it.

matplotlib with the Agg backend (headless); imported lazily by the CLI and training's report.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dea.backtest.result import COST_KINDS, BacktestResult
from dea.metrics import compute_metrics
from dea.report.panels import DRAWDOWN_HEADER, Panels, build_panels, drawdown_rows
from dea.report.table import metric_rows
from dea.timeutil import NS_PER_S

log = logging.getLogger(__name__)

_MAX_POINTS = 4000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
COST_COLOURS = {"fees": "#4c72b0", "spread": "#dd8452", "impact": "#55a868", "funding": "#c44e52"}
INSTALL_REPORT = "pip install 'dea-allocation[report]'"


def _thin(n: int) -> slice:
    return slice(None, None, max(1, math.ceil(n / _MAX_POINTS)))


def _growth_axis(ax: Any, lo: float, hi: float) -> None:
    """Growth of 1 on a log axis when it spans more than 3x, linear otherwise; ticks read as
    multiples ("0.5×", "1×", "2×", or "1.005×" on a narrow range), never as 6x10^-1."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    class _Times(ScalarFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return super().__call__(x, pos) + "×"

    if hi / max(lo, 1e-9) > 3.0:
        ax.set_yscale("log")
        for subs in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
            ticks = [t for t in (m * 10.0 ** e for e in range(-3, 5) for m in subs) if lo * 0.95 <= t <= hi * 1.05]
            if len(ticks) >= 5:
                break
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
    fmt = _Times(useOffset=False)
    fmt.set_scientific(False)
    ax.yaxis.set_major_formatter(fmt)


def _time_axis(ax: Any, p: Panels, label: bool = False) -> None:
    """A panel over time: walk-forward fold boundaries marked, the same span as every other
    time panel (a rolling series that starts late, or a beta undefined once the benchmark is flat,
    must not stretch its axis differently), and at most about 7 date ticks whatever the panel's
    width (a half-width panel would otherwise get crowded monthly labels that run into each other);
    the year is on the ticks or, for a span inside one year, at the axis end."""
    import matplotlib.dates as mdates

    for k, t in enumerate(p.fold_starts):
        ax.axvline(t, color="#888", lw=0.8, ls="--", zorder=0, label="fold start" if label and k == 0 else None)
    d = p.dates[p.primary]
    ax.set_xlim(d[0], d[-1])
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _pct_label(x: float) -> str:
    """A fraction as a short percent label: whole percents from 10 % on, one decimal below."""
    return f"{x * 100:.0f}%" if abs(x) >= 0.1 else f"{x * 100:.1f}%"


def _pct_axis(ax: Any, axis: str = "y", digits: int | None = None) -> None:
    """Fractions shown as percent; decimals follow the axis range unless ``digits`` is given."""
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=digits))


def _style(name: str, p: Panels) -> dict[str, Any]:
    if name == p.primary:
        return {"lw": 2.0, "color": "#1f3b73", "zorder": 5}
    if name == p.benchmark:
        return {"lw": 1.2, "color": "#7f7f7f", "ls": "-", "zorder": 3}
    if name.startswith("base_"):
        return {"lw": 1.2, "color": "#d62728", "ls": "-", "zorder": 4}
    return {"lw": 1.0, "color": "#2ca02c", "ls": "-", "zorder": 2}


def plot_tearsheet(results: Mapping[str, BacktestResult], path: Path, title: str, *,
                   metrics: Mapping[str, Mapping[str, float]] | None = None,
                   fold_starts: Sequence[int] = (), panels: Panels | None = None) -> Path:
    """Write the tearsheet PNG for ``results`` (the first one is the policy under review)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    p = panels or build_panels(results, title, metrics, fold_starts)
    prim = results[p.primary]
    clock = prim.clock
    fig = plt.figure(figsize=(16, 30))
    gs = fig.add_gridspec(8, 2, height_ratios=[1.5, 1.0, 1.0, 1.1, 1.0, 1.0, 1.0, 1.0], hspace=0.42, wspace=0.18,
                          left=0.06, right=0.98, top=0.965, bottom=0.03)
    hidden = f"; also in the table: {', '.join(p.hidden)}" if p.hidden else ""
    fig.suptitle(p.title, fontsize=16, fontweight="bold", y=0.995)
    fig.text(0.5, 0.978, f"{str(p.dates[p.primary][0])[:10]} to {str(p.dates[p.primary][-1])[:10]}, {len(clock):,} decisions "
             f"(one per {p.periods_label}), after fees, spread, impact and funding{hidden}",
             ha="center", fontsize=9, color="#555", wrap=True)

    # 1. equity
    ax = fig.add_subplot(gs[0, :])
    lo, hi = math.inf, -math.inf
    for name in p.shown:
        sl = _thin(len(p.wealth[name]))
        ax.plot(p.dates[name][sl], p.wealth[name][sl], label=name, **_style(name, p))
        lo, hi = min(lo, float(p.wealth[name].min())), max(hi, float(p.wealth[name].max()))
    ax.axhline(1.0, color="#bbb", lw=0.6, zorder=0)
    _growth_axis(ax, min(lo, 1.0), max(hi, 1.0))
    _time_axis(ax, p, label=True)
    ax.set_title("equity after costs (growth of 1)", loc="left", fontweight="bold")
    ax.legend(loc="upper left", fontsize=9, ncol=2)
    ax.grid(alpha=0.3)

    # 2. underwater with the worst five drawdowns
    ax = fig.add_subplot(gs[1, :])
    d = p.dates[p.primary]
    sl = _thin(len(d))
    ax.fill_between(d[sl], p.drawdown[p.primary][sl], 0.0, color="#1f3b73", alpha=0.35, lw=0, label=p.primary)
    if p.benchmark and p.benchmark != p.primary:
        ax.plot(p.dates[p.benchmark][sl], p.drawdown[p.benchmark][sl], color="#7f7f7f", lw=0.8, label=p.benchmark)
    for k, w in enumerate(p.worst, 1):
        start, trough, rec = w.dates(clock)
        ax.axvspan(start, rec if rec is not None else d[-1], color="#c44e52", alpha=0.10, lw=0)
        # alternate the label's height: two troughs a few days apart would print over each other
        ax.annotate(f"{k}: {_pct_label(-w.depth)}", (trough, -w.depth), textcoords="offset points",
                    xytext=(0, -11 if k % 2 else -22),
                    ha="center", fontsize=8, color="#8b0000")
    _time_axis(ax, p)
    _pct_axis(ax)
    ax.set_title("underwater: drawdown from the running peak (shaded: the five worst, peak to recovery)",
                 loc="left", fontweight="bold")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)

    # 3a. worst drawdowns table
    ax = fig.add_subplot(gs[2, 0])
    ax.axis("off")
    rows = drawdown_rows(p, clock)
    ax.set_title(f"five worst drawdowns: {p.primary}", loc="left", fontweight="bold")
    if rows:
        tbl = ax.table(cellText=rows, colLabels=DRAWDOWN_HEADER, loc="upper center", cellLoc="center")
        tbl.auto_set_font_size(False)
        tbl.set_fontsize(10)
        tbl.scale(1.0, 1.6)
    else:
        ax.text(0.5, 0.5, "never below its starting equity", ha="center", va="center")

    # 3b. gross vs net
    ax = fig.add_subplot(gs[2, 1])
    sl = _thin(len(d))
    ax.plot(d[sl], p.gross_wealth[sl], color="#999", lw=1.2, label="gross (before costs and funding)")
    ax.plot(d[sl], p.wealth[p.primary][sl], color="#1f3b73", lw=1.6, label="net")
    ax.fill_between(d[sl], p.wealth[p.primary][sl], p.gross_wealth[sl], color="#c44e52", alpha=0.15, lw=0,
                    label="cost drag")
    _growth_axis(ax, float(min(p.gross_wealth.min(), p.wealth[p.primary].min(), 1.0)),
                 float(max(p.gross_wealth.max(), p.wealth[p.primary].max(), 1.0)))
    _time_axis(ax, p)
    ax.set_title(f"gross against net equity: {p.primary}", loc="left", fontweight="bold")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)

    # 4a. monthly heatmap
    ax = fig.add_subplot(gs[3, 0])
    grid = p.monthly
    if grid.size:
        vmax = float(np.nanmax(np.abs(grid))) or 1e-9
        ax.imshow(grid, cmap="RdYlGn", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(12), MONTHS, fontsize=8)
        ax.set_yticks(range(len(p.years)), [str(y) for y in p.years], fontsize=8)
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v * 100:.1f}", ha="center", va="center", fontsize=7)
    ax.set_title(f"monthly returns % (UTC months): {p.primary}", loc="left", fontweight="bold")

    # 4b. yearly returns
    ax = fig.add_subplot(gs[3, 1])
    series = [n for n in (p.primary, p.benchmark) if n]
    series = list(dict.fromkeys(series))
    all_years = sorted({int(str(y)[:4]) for n in series for y in p.yearly[n][0]})
    width = 0.8 / len(series)
    for k, name in enumerate(series):
        ys, rs = p.yearly[name]
        pos = [all_years.index(int(str(y)[:4])) + (k - (len(series) - 1) / 2) * width for y in ys]
        bars = ax.bar(pos, rs, width, label=name, color=_style(name, p)["color"])
        for b, v in zip(bars, rs):
            ax.annotate(_pct_label(v), (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom" if v >= 0 else "top", fontsize=7)
    ax.set_xticks(range(len(all_years)), [str(y) for y in all_years])
    ax.axhline(0.0, color="#444", lw=0.6)
    _pct_axis(ax)
    ax.set_title("yearly returns (part years: from the first / to the last row)", loc="left", fontweight="bold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")

    # 5a. return distribution
    ax = fig.add_subplot(gs[4, 0])
    r = p.returns[p.primary]
    bins = np.linspace(*np.quantile(np.concatenate([p.returns[n] for n in series]), [0.001, 0.999]), 60)
    for name in series:
        ax.hist(np.clip(p.returns[name], bins[0], bins[-1]), bins=bins, alpha=0.5 if name != p.primary else 0.7,
                label=name, color=_style(name, p)["color"], density=True)
    var95 = float(np.quantile(r, 0.05))
    ax.axvline(var95, color="#8b0000", lw=1.0, ls="--", label=f"{p.primary} 5% quantile {var95 * 100:.2f}%")
    ax.axvline(float(r.mean()), color="#1f3b73", lw=1.0, label=f"mean {r.mean() * 100:.3f}%")
    _pct_axis(ax, "x")
    ax.set_title(f"distribution of returns per {p.periods_label} (tails clipped at 0.1%)", loc="left",
                 fontweight="bold")
    ax.legend(fontsize=8)

    # 5b. rolling volatility
    ax = fig.add_subplot(gs[4, 1])
    for name in series:
        sl = _thin(len(p.rolling_vol[name]))
        ax.plot(p.dates[name][sl], p.rolling_vol[name][sl], label=name, **_style(name, p))
    _time_axis(ax, p)
    _pct_axis(ax)
    ax.set_ylim(bottom=0)
    ax.set_title(f"rolling volatility, annualised ({p.vol_window_days:.0f}-day window)", loc="left",
                 fontweight="bold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    # 6a. rolling beta
    ax = fig.add_subplot(gs[5, 0])
    if p.rolling_beta is not None:
        sl = _thin(len(p.rolling_beta))
        ax.plot(d[sl], p.rolling_beta[sl], color="#1f3b73", lw=1.4)
        ax.axhline(1.0, color="#7f7f7f", lw=0.6, ls=":")
        ax.axhline(0.0, color="#444", lw=0.6)
        ax.set_title(f"rolling beta of {p.primary} to {p.benchmark} ({p.vol_window_days:.0f}-day window)",
                     loc="left", fontweight="bold")
        _time_axis(ax, p)
        ax.grid(alpha=0.3)
    else:
        ax.axis("off")
        ax.set_title("rolling beta: no buy-and-hold benchmark in this run", loc="left", fontweight="bold")

    # 6b. turnover over time
    ax = fig.add_subplot(gs[5, 1])
    for name in p.shown:
        sl = _thin(len(p.rolling_turnover[name]))
        ax.plot(p.dates[name][sl], p.rolling_turnover[name][sl], label=name, **_style(name, p))
    _time_axis(ax, p)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("× equity per year")
    ax.set_title(f"turnover, annualised ({p.turnover_window_days:.0f}-day trailing window)", loc="left",
                 fontweight="bold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    # 7a. cost breakdown per strategy
    ax = fig.add_subplot(gs[6, 0])
    x = np.arange(len(p.shown))
    width = 0.8 / len(COST_KINDS)
    for k, kind in enumerate(COST_KINDS):
        vals = [p.costs_total[n][kind] for n in p.shown]
        bars = ax.bar(x + (k - (len(COST_KINDS) - 1) / 2) * width, vals, width, label=kind,
                      color=COST_COLOURS[kind])
        for b, v in zip(bars, vals):
            ax.annotate(f"{v * 100:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom" if v >= 0 else "top", fontsize=7)
    ax.set_xticks(x, p.shown, fontsize=8)
    ax.axhline(0.0, color="#444", lw=0.6)
    _pct_axis(ax)
    bps = ", ".join(f"{k} {v:.1f} bp" for k, v in p.cost_bps.items() if math.isfinite(v))
    ax.set_title("costs, % of equity summed over steps (negative funding = received)", loc="left",
                 fontweight="bold")
    ax.text(0.0, -0.16, f"{p.primary}, per unit of turnover: {bps or 'no trades'}", transform=ax.transAxes,
            fontsize=8, color="#555")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")

    # 7b. cumulative costs over time
    ax = fig.add_subplot(gs[6, 1])
    for k, kind in enumerate(COST_KINDS):
        c = p.costs_cum[kind]
        sl = _thin(len(c))
        # distinct dashes: equal cost kinds (a 5 bp fee and a 5 bp half-spread) stay visible as two lines
        ax.plot(d[sl], c[sl], label=f"{kind} {c[-1] * 100:.2f}%", color=COST_COLOURS[kind], lw=2.2 - 0.4 * k,
                ls=("-", "--", "-.", ":")[k])
    ax.axhline(0.0, color="#444", lw=0.6)
    _time_axis(ax, p)
    _pct_axis(ax)
    ax.set_title(f"cumulative costs over time: {p.primary}", loc="left", fontweight="bold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    # 8. exposure per instrument
    ax = fig.add_subplot(gs[7, :])
    sl = _thin(len(d))
    for j, sym in enumerate(p.instruments):
        ax.plot(d[sl], p.exposures[sl, j], lw=1.0, label=sym)
    ax.axhline(0.0, color="#444", lw=0.6)
    _time_axis(ax, p)
    ax.set_title(f"exposure held per instrument (notional / equity): {p.primary}", loc="left", fontweight="bold")
    ax.legend(loc="upper left", fontsize=8, ncol=min(len(p.instruments), 6))
    ax.grid(alpha=0.3)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_tearsheet(results: Mapping[str, BacktestResult], out_dir: str | Path, title: str,
                    metrics: Mapping[str, Mapping[str, float]] | None = None, *,
                    fold_starts: Sequence[int] = (), interactive: bool = True,
                    run_notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``tearsheet.png``, ``tearsheet.html``, ``metrics.json`` and (with plotly installed and
    ``interactive``) ``tearsheet_interactive.html`` into ``out_dir``.

    ``results``: strategy name -> result, the policy under review first. ``metrics``: precomputed
    :func:`~dea.metrics.compute_metrics` per name (computed here when absent). ``fold_starts``:
    int-ns start times of the walk-forward test blocks (marked on the charts). ``run_notes``: notes
    about the run as a whole (data coverage, selection, low volatility), listed with the
    strategies' own notes so the page says what the console said. Returns the paths
    under the keys ``png``, ``html``, ``metrics`` and, when written, ``interactive``.
    """
    if not results:
        raise ValueError("write_tearsheet needs at least one result")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = dict(metrics) if metrics is not None else {n: compute_metrics(r) for n, r in results.items()}
    panels = build_panels(results, title, metrics, fold_starts)
    png = plot_tearsheet(results, out / "tearsheet.png", title, panels=panels)
    paths: dict[str, Path] = {"png": png}
    interactive_note = ""
    if interactive:
        try:
            from dea.report.interactive import write_interactive
        except ModuleNotFoundError as exc:  # plotly is the report extra
            interactive_note = (f"interactive tearsheet not written: {exc.name} is not installed "
                                f"({INSTALL_REPORT})")
            log.warning(interactive_note)
        else:
            paths["interactive"] = write_interactive(results, panels, out / "tearsheet_interactive.html")
    header, rows = metric_rows({n: metrics[n] for n in results})
    events = [[n, str(e.kind), str(np.datetime64(e.t_ns // NS_PER_S, "s")), e.detail]
              for n, r in results.items() for e in r.events]
    rules = sorted({rule for r in results.values() for rule in r.interventions})
    inter_rows = [[rule, *(f"{results[n].interventions.get(rule, 0):,}" for n in results)] for rule in rules]
    notes = [["run", note] for note in run_notes] + [[n, note] for n, r in results.items() for note in r.notes]
    embedded = base64.b64encode(png.read_bytes()).decode("ascii")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    first = results[panels.primary]
    span = f"{panels.dates[panels.primary][0]} to {panels.dates[panels.primary][-1]}"
    link = ('<p><a href="tearsheet_interactive.html">interactive version (zoom, hover)</a></p>'
            if "interactive" in paths else f"<p class=\"meta\">{html.escape(interactive_note)}</p>" if interactive_note else "")
    folds = ", ".join(str(t)[:10] for t in panels.fold_starts)
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
{f'<p class="meta">walk-forward test blocks start {html.escape(folds)}</p>' if folds else ""}
{link}
<h2>Metrics</h2>
{_html_table(header, rows)}
<h2>Five worst drawdowns: {html.escape(panels.primary)}</h2>
{_html_table(DRAWDOWN_HEADER, drawdown_rows(panels, first.clock)) if panels.worst else "<p>never below its starting equity</p>"}
<h2>Charts</h2>
<p class="meta">lines: {html.escape(", ".join(panels.shown))}{html.escape("; in the table only: " + ", ".join(panels.hidden)) if panels.hidden else ""}</p>
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
    paths.update({"html": html_path, "metrics": json_path})
    return paths
