"""Metrics of a backtest over a row span (thin adapter over the backtest engineer's metrics)."""

from __future__ import annotations

import numpy as np

from dea.backtest.result import BacktestResult


def metrics_of(result: BacktestResult, rows: np.ndarray) -> dict[str, float]:
    r = np.asarray(result.returns)[rows]
    ppy = result.periods_per_year
    mean, sd = float(np.mean(r)), float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    eq = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    dd = float(np.max(1.0 - eq / peak)) if r.size else 0.0
    years = r.size / ppy
    cagr = float(eq[-1] ** (1 / years) - 1) if r.size and eq[-1] > 0 else -1.0
    return {
        "sharpe": mean / sd * np.sqrt(ppy) if sd > 0 else 0.0,
        "ann_return": cagr,
        "ann_vol": sd * np.sqrt(ppy),
        "max_drawdown": dd,
        "turnover": float(np.mean(np.asarray(result.turnover)[rows])) * ppy,
    }


def deflated_sharpe(returns: np.ndarray, n_trials: int, periods_per_year: float) -> float:
    """Probability that the true Sharpe exceeds the best of ``n_trials`` null strategies
    (Bailey & López de Prado 2014), from per-step returns."""
    from scipy.stats import kurtosis, norm, skew

    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    T = r.size
    if T < 3 or np.std(r) == 0:
        return float("nan")
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = float(skew(r)), float(kurtosis(r, fisher=False))
    emc = 0.5772156649
    if n_trials > 1:
        sd = np.sqrt(1.0 / (T - 1))
        sr0 = sd * ((1 - emc) * norm.ppf(1 - 1.0 / n_trials) + emc * norm.ppf(1 - 1.0 / (n_trials * np.e)))
    else:
        sr0 = 0.0
    denom = np.sqrt(max(1e-12, 1 - g3 * sr + (g4 - 1) / 4 * sr * sr))
    return float(norm.cdf((sr - sr0) * np.sqrt(T - 1) / denom))


def tearsheet(out_dir, strategies, rows, title: str):  # noqa: ANN001, ANN201
    """Equity curves PNG + an HTML page with the PNG and the metrics table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, s in strategies.items():
        r = np.asarray(s.backtest.returns)[rows]
        ax.plot(np.cumprod(1 + r), label=name, lw=2.0 if name == "policy" else 1.0)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    png = out_dir / "tearsheet.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    html = out_dir / "tearsheet.html"
    from training.report import format_table

    table = format_table({n: s.metrics for n, s in strategies.items()})
    html.write_text(f"<html><body><h1>{title}</h1><img src='tearsheet.png'><pre>{table}</pre></body></html>")
    return {"tearsheet_png": png, "tearsheet_html": html}
