"""The tearsheet panels and pages on real data: Binance USDT-M perpetuals at hourly decisions with
their real funding and square-root impact (configs/perps_5m.yaml, ../shared/data), so every cost
kind is charged and differs from the others."""

from __future__ import annotations

import base64
import re
import struct
import sys

import numpy as np
import pytest

from dea.backtest.baselines import BASELINES, targets_from
from dea.backtest.market import prepare_market
from dea.backtest.vectorized import backtest_config
from dea.config import load_config
from dea.data.panel import build_panel
from dea.metrics import compute_metrics
from dea.report import analytics as A
from dea.report import write_tearsheet
from dea.report.panels import build_panels

NAMES = ("inverse_vol", "buy_and_hold", "equal_weight", "tsmom")


@pytest.fixture(scope="module")
def perps(repo_root, shared_data):  # noqa: ANN001, ANN201
    cfg = load_config(repo_root / "configs" / "perps_5m.yaml")
    panel = build_panel(cfg)
    market = prepare_market(panel, cfg.data.instruments, cfg.costs)
    results = {n: backtest_config(cfg, market, targets_from(BASELINES[n](panel, cfg.backtest.baseline), 0),
                                  hold_nan=True, name=n) for n in NAMES}
    metrics = {n: compute_metrics(r) for n, r in results.items()}
    return cfg, results, metrics


def test_worst_drawdowns_agree_with_the_metrics_and_the_wealth_path(perps):  # noqa: ANN001
    _, results, metrics = perps
    for name, res in results.items():
        worst = A.worst_drawdowns(res.returns, 5)
        assert len(worst) == 5
        assert worst[0].depth == pytest.approx(metrics[name]["max_drawdown"], rel=1e-12)
        assert [w.depth for w in worst] == sorted((w.depth for w in worst), reverse=True)
        w = np.concatenate([[1.0], A.wealth(res.returns)])  # position k+1 = after row k
        spans = []
        for d in worst:
            peak = w[d.peak + 1]
            assert peak == pytest.approx(np.max(w[: d.peak + 2]))  # a running peak
            assert 1 - w[d.trough + 1] / peak == pytest.approx(d.depth)
            end = len(res.returns) if d.recovery is None else d.recovery
            assert (w[d.peak + 2: end + 1] < peak).all()  # under water all along
            if d.recovery is not None:
                assert w[d.recovery + 1] >= peak
            spans.append((d.peak, end))
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # distinct spells


def test_monthly_and_yearly_returns_compound_to_the_total(perps):  # noqa: ANN001
    _, results, metrics = perps
    res = results["inverse_vol"]
    years, grid = A.monthly_table(res.clock, res.returns)
    assert years == [2023, 2024]
    assert np.isnan(grid[1, 5:]).all() and np.isfinite(grid[0]).all()  # the data end in May 2024
    total = metrics["inverse_vol"]["total_return"]
    assert np.prod(1 + grid[np.isfinite(grid)]) - 1 == pytest.approx(total, rel=1e-9)
    _, yearly = A.period_returns(res.clock, res.returns, "Y")
    assert np.prod(1 + yearly) - 1 == pytest.approx(total, rel=1e-9)
    months = A.to_datetime64(res.clock).astype("datetime64[M]")
    march = months == np.datetime64("2023-03")
    assert grid[0, 2] == pytest.approx(np.prod(1 + res.returns[march]) - 1, rel=1e-12)


def test_rolling_volatility_and_beta(perps):  # noqa: ANN001
    _, results, _ = perps
    pol, bench = results["inverse_vol"], results["buy_and_hold"]
    w = A.window_steps(pol.periods_per_year, 90.0, len(pol.returns))
    assert w == round(pol.periods_per_year * 90 / 365.25)
    vol = A.rolling_vol(pol.returns, w, pol.periods_per_year)
    t = len(pol.returns) - 17
    window = pol.returns[t - w + 1: t + 1]
    assert vol[t] == pytest.approx(np.std(window, ddof=1) * np.sqrt(pol.periods_per_year), rel=1e-6)
    assert np.isnan(vol[: w - 1]).all()
    beta = A.rolling_beta(pol.returns, bench.returns, w)
    b = bench.returns[t - w + 1: t + 1]
    assert beta[t] == pytest.approx(np.cov(window, b, ddof=1)[0, 1] / np.var(b, ddof=1), rel=1e-6)
    self_beta = A.rolling_beta(bench.returns, bench.returns, w)
    assert np.nanmax(np.abs(self_beta - 1.0)) < 1e-6
    with pytest.raises(ValueError, match="must align"):
        A.rolling_beta(pol.returns, bench.returns[1:], w)


def test_lines_are_thinned_to_the_informative_strategies():
    names = ["policy", "base_vol_target", "buy_and_hold", "buy_and_hold_raw", "hrp", "hrp_raw", "tsmom", "ridge"]
    metrics = {"hrp": {"sharpe": 0.3}, "hrp_raw": {"sharpe": 2.0}, "tsmom": {"sharpe": 0.9},
               "ridge": {"sharpe": float("nan")}}
    assert A.informative_names(names, metrics) == ["policy", "base_vol_target", "buy_and_hold_raw", "tsmom"]
    assert A.informative_names(["a", "b", "c"], {"b": {"sharpe": 0.1}, "c": {"sharpe": 0.2}}) == ["a", "c"]
    assert A.informative_names(names, metrics, limit=2) == ["policy", "base_vol_target"]
    assert A.benchmark_name(["x", "buy_and_hold"]) == "buy_and_hold"
    assert A.benchmark_name(["x"]) is None


def test_costs_are_told_apart(perps):  # noqa: ANN001
    _, results, metrics = perps
    p = build_panels(results, "t", metrics)
    totals = p.costs_total["inverse_vol"]
    assert set(totals) == {"fees", "spread", "impact", "funding"}
    assert totals["funding"] != 0.0 and totals["impact"] > 0.0
    assert len({round(v, 12) for v in totals.values()}) == 4
    for kind, v in totals.items():
        assert v == pytest.approx(metrics["inverse_vol"][f"cost_{kind}"])
    bps = p.cost_bps
    assert bps["fees"] == pytest.approx(5.0) and bps["spread"] == pytest.approx(1.0)  # taker 5 bp, half-spread 1 bp
    assert p.costs_cum["funding"][-1] == pytest.approx(totals["funding"])


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_tearsheet_pages_with_fold_boundaries(perps, tmp_path):  # noqa: ANN001
    _, results, metrics = perps
    clock = results["inverse_vol"].clock
    folds = [int(clock[0]), int(clock[len(clock) // 3]), int(clock[2 * len(clock) // 3]), int(clock[-1]) + 1]
    paths = write_tearsheet(results, tmp_path, "perps: inverse_vol", metrics, fold_starts=folds)
    assert set(paths) == {"png", "html", "metrics", "interactive"}
    png = paths["png"].read_bytes()
    width, height = _png_size(png)
    assert height > 1.5 * width > 1500
    page = paths["html"].read_text()
    assert base64.b64encode(png).decode() in page
    worst = A.worst_drawdowns(results["inverse_vol"].returns, 5)
    peak, trough, _ = worst[0].dates(clock)
    assert f"<td>{str(peak)[:10]}</td><td>{str(trough)[:10]}</td>" in page
    days = [str(d)[:10] for d in A.to_datetime64(np.asarray(folds[:3]))]
    assert "walk-forward test blocks start " + ", ".join(days) + "</p>" in page  # the one after the end is left out
    assert "in the table only: equal_weight" in page or "in the table only: tsmom" in page
    inter = paths["interactive"].read_text()
    assert "plotly" in inter and "monthly returns" in inter and "rolling beta to buy_and_hold" in inter
    assert len(re.findall(r'"dash":"dash"', inter)) == 8 * 3  # each fold start on the eight time axes


def test_without_plotly_the_page_says_which_extra(perps, tmp_path, monkeypatch):  # noqa: ANN001
    _, results, metrics = perps
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.delitem(sys.modules, "dea.report.interactive", raising=False)
    paths = write_tearsheet({n: results[n] for n in NAMES[:2]}, tmp_path, "t", metrics)
    assert "interactive" not in paths and not (tmp_path / "tearsheet_interactive.html").exists()
    assert "plotly is not installed (pip install &#x27;dea-allocation[report]&#x27;)" in paths["html"].read_text()


def test_bad_input_is_refused(perps):  # noqa: ANN001
    _, results, _ = perps
    with pytest.raises(ValueError, match="at least one result"):
        write_tearsheet({}, "unused", "t")
    r = np.array(results["tsmom"].returns)
    r[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        A.drawdown(r)
    with pytest.raises(ValueError, match="unit must be"):
        A.period_returns(results["tsmom"].clock, r, "W")
