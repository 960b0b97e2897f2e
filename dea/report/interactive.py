"""The interactive tearsheet: the PNG's panels as one Plotly page (zoom, hover, toggle lines),
written beside ``tearsheet.png``. Self-contained (plotly.js inlined) so it opens offline and as an
MLflow artifact. Needs the ``report`` extra (plotly); imported only when a tearsheet is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dea.backtest.result import COST_KINDS, BacktestResult
from dea.report.panels import DRAWDOWN_HEADER, Panels, drawdown_rows

_MAX_POINTS = 2500  # per line: zoom stays smooth and the page small (plotly.js itself is ~4.7 MB)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
COLOURS = {"fees": "#4c72b0", "spread": "#dd8452", "impact": "#55a868", "funding": "#c44e52"}


def _thin(n: int) -> slice:
    return slice(None, None, max(1, math.ceil(n / _MAX_POINTS)))


def _colour(name: str, p: Panels) -> str:
    if name == p.primary:
        return "#1f3b73"
    if name == p.benchmark:
        return "#7f7f7f"
    return "#d62728" if name.startswith("base_") else "#2ca02c"


def _refs(fig: go.Figure, row: int, col: int) -> tuple[str, str]:
    """(xref, yref-domain) of a subplot. Shapes are placed by axis reference because plotly's
    ``add_vline(row=, col=)`` fails on a figure that holds a Table trace."""
    sub = fig.get_subplot(row, col)
    x = sub.xaxis.plotly_name.replace("axis", "")
    y = sub.yaxis.plotly_name.replace("axis", "")
    return x, f"{y} domain"


def _span(fig: go.Figure, row: int, col: int, x0: object, x1: object | None = None) -> None:
    """A dashed vertical line at ``x0`` (``x1`` None) or a shaded band [x0, x1] on one subplot."""
    xref, yref = _refs(fig, row, col)
    if x1 is None:
        fig.add_shape(type="line", x0=x0, x1=x0, y0=0, y1=1, xref=xref, yref=yref,
                      line={"dash": "dash", "color": "#888", "width": 1})
    else:
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=0, y1=1, xref=xref, yref=yref, fillcolor="#c44e52",
                      opacity=0.12, line={"width": 0}, layer="below")


def build_figure(results: Mapping[str, BacktestResult], p: Panels) -> go.Figure:
    """The Plotly figure of :class:`~dea.report.panels.Panels` (same panels as the PNG)."""
    titles = (
        "equity after costs (growth of 1, log axis)", "",
        "underwater: drawdown from the running peak (shaded: the five worst)", "",
        f"five worst drawdowns: {p.primary}", f"gross against net equity: {p.primary}",
        f"monthly returns: {p.primary}", "yearly returns",
        "distribution of returns", f"rolling volatility ({p.vol_window_days:.0f}-day)",
        f"rolling beta to {p.benchmark or 'buy-and-hold (absent)'}",
        f"turnover, annualised ({p.turnover_window_days:.0f}-day)",
        "costs, fraction of equity summed over steps", f"cumulative costs: {p.primary}",
        f"exposure per instrument: {p.primary}", "",
    )
    specs = [
        [{"colspan": 2}, None], [{"colspan": 2}, None], [{"type": "table"}, {}], [{}, {}], [{}, {}], [{}, {}],
        [{}, {}], [{"colspan": 2}, None],
    ]
    fig = make_subplots(rows=8, cols=2, specs=specs, subplot_titles=[t for t in titles if t],
                        vertical_spacing=0.04, horizontal_spacing=0.07)
    d = p.dates[p.primary]
    sl = _thin(len(d))
    series = list(dict.fromkeys([n for n in (p.primary, p.benchmark) if n]))

    for name in p.shown:
        s = _thin(len(p.wealth[name]))
        fig.add_trace(go.Scatter(x=p.dates[name][s], y=p.wealth[name][s], name=name, legendgroup=name,
                                 line={"color": _colour(name, p), "width": 2.5 if name == p.primary else 1.2}),
                      row=1, col=1)
    fig.update_yaxes(type="log", tickformat=".2~f", ticksuffix="×", row=1, col=1)

    fig.add_trace(go.Scatter(x=d[sl], y=p.drawdown[p.primary][sl], name=f"{p.primary} drawdown", fill="tozeroy",
                             line={"color": "#1f3b73", "width": 1}, showlegend=False), row=2, col=1)
    if p.benchmark and p.benchmark != p.primary:
        fig.add_trace(go.Scatter(x=p.dates[p.benchmark][sl], y=p.drawdown[p.benchmark][sl],
                                 name=f"{p.benchmark} drawdown", line={"color": "#7f7f7f", "width": 1},
                                 showlegend=False), row=2, col=1)
    clock = results[p.primary].clock
    for w in p.worst:
        start, _trough, rec = w.dates(clock)
        _span(fig, 2, 1, str(start), str(rec if rec is not None else d[-1]))
    fig.update_yaxes(tickformat=".0%", row=2, col=1)

    rows = drawdown_rows(p, clock)
    fig.add_trace(go.Table(header={"values": DRAWDOWN_HEADER},
                           cells={"values": [list(c) for c in zip(*rows)] if rows else [[]] * len(DRAWDOWN_HEADER)}),
                  row=3, col=1)
    fig.add_trace(go.Scatter(x=d[sl], y=p.gross_wealth[sl], name="gross (before costs)",
                             line={"color": "#999"}), row=3, col=2)
    fig.add_trace(go.Scatter(x=d[sl], y=p.wealth[p.primary][sl], name="net", line={"color": "#1f3b73"},
                             showlegend=False), row=3, col=2)
    fig.update_yaxes(tickformat=".2~f", ticksuffix="×", row=3, col=2)

    if p.monthly.size:
        fig.add_trace(go.Heatmap(z=p.monthly * 100, x=list(MONTHS), y=[str(y) for y in p.years], colorscale="RdYlGn",
                                 zmid=0, texttemplate="%{z:.1f}", hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
                                 showscale=False), row=4, col=1)
        fig.update_yaxes(autorange="reversed", type="category", row=4, col=1)
    for name in series:
        ys, rs = p.yearly[name]
        fig.add_trace(go.Bar(x=[str(y)[:4] for y in ys], y=rs, name=f"{name} yearly", marker_color=_colour(name, p),
                             text=[f"{v:.0%}" for v in rs], showlegend=False), row=4, col=2)
    fig.update_yaxes(tickformat=".0%", row=4, col=2)

    for name in series:
        fig.add_trace(go.Histogram(x=p.returns[name], name=f"{name} returns", histnorm="probability density",
                                   opacity=0.6, marker_color=_colour(name, p), nbinsx=80, showlegend=False),
                      row=5, col=1)
        s = _thin(len(p.rolling_vol[name]))
        fig.add_trace(go.Scatter(x=p.dates[name][s], y=p.rolling_vol[name][s], name=f"{name} vol",
                                 line={"color": _colour(name, p)}, showlegend=False), row=5, col=2)
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickformat=".1%", row=5, col=1)
    fig.update_yaxes(tickformat=".0%", row=5, col=2)

    if p.rolling_beta is not None:
        fig.add_trace(go.Scatter(x=d[sl], y=p.rolling_beta[sl], name="rolling beta", line={"color": "#1f3b73"},
                                 showlegend=False), row=6, col=1)
    for name in p.shown:
        s = _thin(len(p.rolling_turnover[name]))
        fig.add_trace(go.Scatter(x=p.dates[name][s], y=p.rolling_turnover[name][s], name=f"{name} turnover",
                                 legendgroup=name, line={"color": _colour(name, p)}, showlegend=False), row=6, col=2)

    for kind in COST_KINDS:
        fig.add_trace(go.Bar(x=list(p.shown), y=[p.costs_total[n][kind] for n in p.shown], name=kind,
                             marker_color=COLOURS[kind], texttemplate="%{y:.2%}"), row=7, col=1)
        c = p.costs_cum[kind]
        fig.add_trace(go.Scatter(x=d[sl], y=c[sl], name=f"cumulative {kind}", line={"color": COLOURS[kind]},
                                 showlegend=False), row=7, col=2)
    fig.update_yaxes(tickformat=".1%", row=7, col=1)
    fig.update_yaxes(tickformat=".1%", row=7, col=2)

    for j, sym in enumerate(p.instruments):
        fig.add_trace(go.Scatter(x=d[sl], y=p.exposures[sl, j], name=f"exposure {sym}"), row=8, col=1)

    for t in p.fold_starts:
        for row, col in ((1, 1), (2, 1), (3, 2), (5, 2), (6, 1), (6, 2), (7, 2), (8, 1)):
            _span(fig, row, col, str(t))
    fig.update_layout(title=p.title, height=3000, template="plotly_white",
                      legend={"orientation": "h", "y": 1.02, "x": 0})
    return fig


def write_interactive(results: Mapping[str, BacktestResult], panels: Panels, path: Path) -> Path:
    """Write the interactive tearsheet (one self-contained HTML file) and return its path."""
    fig = build_figure(results, panels)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


__all__ = ["build_figure", "write_interactive"]
