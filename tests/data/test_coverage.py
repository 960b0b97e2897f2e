"""Partial coverage made explicit: a perpetual whose funding starts late under each
``funding_missing`` policy, exogenous series that end early, the coverage report, the real
2023-24 funding of the perps config, and the look-ahead of vendor-normalised series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dea.config import load_config, validate_config
from dea.data.coverage import coverage_report
from dea.data.panel import assemble_panel, build_panel
from dea.data.schema import conform
from dea.errors import ConfigError, DataError, MissingFundingError
from dea.timeutil import NS_PER_HOUR, parse_timestamp

T0 = parse_timestamp("2024-01-01T00:00:00Z")
H = NS_PER_HOUR
REPO = Path(__file__).resolve().parents[2]


def _bars(sym: str, hours: int) -> pa.Table:
    ts = T0 + np.arange(hours, dtype=np.int64) * H
    c = np.linspace(100, 110, hours)
    return conform("bars", pa.table({"ts_event": ts, "available_at": ts + H, "instrument": [sym] * hours,
                                     "open": c, "high": c, "low": c, "close": c, "volume": np.ones(hours)}))


def _funding(sym: str, hours: list[int], rates: list[float]) -> pa.Table:
    ts = T0 + np.asarray(hours, dtype=np.int64) * H
    return conform("funding", pa.table({"ts_event": ts, "available_at": ts, "instrument": [sym] * len(ts),
                                        "rate": np.asarray(rates, dtype=np.float64), "interval_ns": np.full(len(ts), 8 * H)}))


def _late_start(policy):
    """A, B, C perpetuals on an hourly clock 01:00 .. 2 days; C's funding starts at 24:00."""
    insts = [{"symbol": s, "kind": "perpetual", "funding": f"f{s}", "funding_interval": "8h",
              **({"funding_missing": policy} if s == "C" else {})} for s in "ABC"]
    srcs = [{"name": f"b{s}", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": s} for s in "ABC"]
    srcs += [{"name": f"f{s}", "kind": "funding", "format": "funding", "path": "x", "instrument": s} for s in "ABC"]
    cfg = validate_config({"data": {"instruments": insts, "sources": srcs,
                                    "clock": {"step": "1h", "start": "2024-01-01T01:00:00", "end": "2024-01-03T00:00:00"}},
                           "features": {"set": [{"name": "logret"}]}})
    hours = [0, 8, 16, 24, 32, 40, 48]
    tables = {f"b{s}": _bars(s, 50) for s in "ABC"}
    tables["fA"] = _funding("A", hours, [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4])
    tables["fB"] = _funding("B", hours, [3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4])
    tables["fC"] = _funding("C", hours[3:], [-1e-4, -2e-4, -3e-4, -4e-4])
    return assemble_panel(cfg.data, tables)


def _gap_in_c(policy):
    """Like :func:`_late_start`, but C's funding lacks the 16:00 and 24:00 settlements (a two-interval hole)."""
    insts = [{"symbol": s, "kind": "perpetual", "funding": f"f{s}", "funding_interval": "8h",
              **({"funding_missing": policy} if s == "C" else {})} for s in "ABC"]
    srcs = [{"name": f"b{s}", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": s} for s in "ABC"]
    srcs += [{"name": f"f{s}", "kind": "funding", "format": "funding", "path": "x", "instrument": s} for s in "ABC"]
    cfg = validate_config({"data": {"instruments": insts, "sources": srcs,
                                    "clock": {"step": "1h", "start": "2024-01-01T01:00:00", "end": "2024-01-03T00:00:00"}},
                           "features": {"set": [{"name": "logret"}]}})
    hours = [0, 8, 16, 24, 32, 40, 48]
    tables = {f"b{s}": _bars(s, 50) for s in "ABC"}
    tables["fA"] = _funding("A", hours, [1e-4] * 7)
    tables["fB"] = _funding("B", hours, [3e-4] * 7)
    tables["fC"] = _funding("C", [0, 8, 32, 40, 48], [-1e-4] * 5)
    return assemble_panel(cfg.data, tables)


@pytest.mark.parametrize("policy", ["error", "from_first"])
def test_a_short_interior_funding_gap_is_never_charged_as_zero(policy):
    with pytest.raises(MissingFundingError, match=r"'C'.*no settlement at 2024-01-01T16:00:00Z and 1 more"):
        _gap_in_c(policy)


def test_a_short_interior_funding_gap_is_imputed_and_counted():
    p = _gap_in_c("impute_median")
    assert _settled_c(p) == pytest.approx({8: -1e-4, 16: 2e-4, 24: 2e-4, 32: -1e-4, 40: -1e-4, 48: -1e-4})
    (c,) = [f for f in coverage_report(p).funding if f.instrument == "C"]
    assert (c.imputed, c.settlements) == (2, 4)


def _settled_c(panel) -> dict[int, float]:
    """Clock hour (from T0) -> funding settled for C in that row, non-zero rows only."""
    s = panel.fields["funding_settled"][:, 2]
    hours = (panel.clock - T0) // H
    return {int(h): float(v) for h, v in zip(hours, s) if v != 0}


def test_late_funding_error_policy_refuses():
    with pytest.raises(MissingFundingError, match="'C'.*funding_missing"):
        _late_start("error")


def test_late_funding_impute_median_only_where_missing():
    p = _late_start("impute_median")
    # 08:00 and 16:00 lack C's rate: the median of A and B at that instant; from 24:00 C's own
    assert _settled_c(p) == pytest.approx({8: 3e-4, 16: 4e-4, 24: -1e-4, 32: -2e-4, 40: -3e-4, 48: -4e-4})
    (c,) = [f for f in coverage_report(p).funding if f.instrument == "C"]
    assert (c.policy, c.imputed, c.settlements, c.uncharged_rows) == ("impute_median", 2, 4, 0)
    assert c.imputed_share == pytest.approx(2 / 6) and c.first_real.startswith("2024-01-02T00:00")
    a = [f for f in coverage_report(p).funding if f.instrument == "A"][0]
    assert (a.policy, a.imputed) == ("error", 0)
    assert p.fields["funding_rate"][10, 2] == pytest.approx(3e-4)  # imputed rate is known from its settlement


def test_late_funding_constant_rate_and_from_first():
    p = _late_start({"rate": 1e-4})
    assert _settled_c(p) == pytest.approx({8: 1e-4, 16: 1e-4, 24: -1e-4, 32: -2e-4, 40: -3e-4, 48: -4e-4})
    assert coverage_report(p).funding[2].policy == "rate: 0.0001"
    f = _late_start("from_first")
    assert _settled_c(f) == pytest.approx({24: -1e-4, 32: -2e-4, 40: -3e-4, 48: -4e-4})
    c = coverage_report(f).funding[2]
    assert (c.imputed, c.uncharged_rows) == (0, 23)  # clock rows 01:00 .. 23:00 charge nothing
    assert np.isnan(f.fields["funding_rate"][:23, 2]).all()  # the rate stays unknown there, never 0
    notes = coverage_report(f).notes()
    assert any(n.startswith("C: funding_missing=from_first: 0 of 4 settlements imputed") for n in notes)
    assert "uncharged rows" in coverage_report(f).format()
    assert coverage_report(f).metrics()["coverage.funding.C.uncharged_rows"] == 23.0


def test_impute_median_without_peers_is_an_error_and_policy_needs_a_funding_source():
    with pytest.raises(ConfigError, match="funding_missing applies only"):
        validate_config({"data": {"instruments": [{"symbol": "X", "kind": "perpetual", "funding": "none",
                                                   "funding_missing": "impute_median"}],
                                  "sources": [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x"}]},
                         "features": {"set": [{"name": "logret"}]}})
    cfg = validate_config({"data": {"instruments": [{"symbol": "X", "kind": "perpetual", "funding": "f", "funding_missing": "impute_median"}],
                                    "sources": [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X"},
                                                {"name": "f", "kind": "funding", "format": "funding", "path": "x", "instrument": "X"}],
                                    "clock": {"step": "1h", "start": "2024-01-01T01:00:00", "end": "2024-01-02T00:00:00"}},
                           "features": {"set": [{"name": "logret"}]}})
    with pytest.raises(MissingFundingError, match="needs another perpetual's real rate at 2024-01-01T08:00"):
        assemble_panel(cfg.data, {"b": _bars("X", 30), "f": _funding("X", [16, 24], [1e-4, 1e-4])})


def test_exogenous_series_ending_early_is_reported():
    cfg = validate_config({"data": {"instruments": [{"symbol": "X"}],
                                    "sources": [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X"},
                                                {"name": "s", "kind": "exogenous", "format": "daily", "path": "x",
                                                 "max_staleness": "2h"}],
                                    "clock": {"step": "1h", "start": "2024-01-01T01:00:00", "end": "2024-01-01T10:00:00"}},
                           "features": {"set": [{"name": "logret"}]}})
    ts = T0 + np.arange(1, 5, dtype=np.int64) * H  # values at 01..04, the clock runs to 10:00
    exo = conform("exogenous", pa.table({"ts_event": ts, "available_at": ts, "series": ["sent"] * 4, "entity": [""] * 4,
                                         "value": [1.0, 2.0, 3.0, 4.0]}))
    p = assemble_panel(cfg.data, {"b": _bars("X", 12), "s": exo})
    (s,) = coverage_report(p).exogenous
    assert (s.series, s.rows, s.filled_rows, s.before_start, s.after_end) == ("sent", 10, 4, 0, 4)
    assert s.filled_share == pytest.approx(0.4)
    assert coverage_report(p).notes()[0].startswith("sent: 4 of 10 clock rows without a value (40.0 %")


def test_perps_config_charges_real_funding(shared_data):
    cfg = load_config(REPO / "configs/perps_5m.yaml", ["data.clock.end=2023-03-01T00:00:00Z"])
    assert [i.funding for i in cfg.data.instruments] == ["btc_funding", "eth_funding", "ltc_funding"]
    p = build_panel(cfg)
    settled = p.fields["funding_settled"]
    # every 00/08/16 UTC settlement of Jan-Feb 2023 is charged once: 59 days x 3 settlements
    assert ((settled != 0).sum(axis=0) >= 59 * 3 - 3).all() and np.isfinite(settled).all()
    assert np.isfinite(p.fields["mark_price"][10:]).all()
    assert all(f.imputed == 0 and f.policy == "error" for f in coverage_report(p).funding)


# ------------------------------------------------------------------------------- look-ahead
def _trends(path: Path, true: np.ndarray) -> None:
    """A Google Trends file: levels scaled so that the file's own maximum is 100 (integers)."""
    level = np.round(100 * true / true.max())
    dates = [f"2020-{1 + k // 28:02d}-{1 + k % 28:02d}" for k in range(len(true))]
    path.write_text("date,bitcoin,trend_log_return\n" + "".join(f"{d},{int(v)},0.0\n" for d, v in zip(dates, level)))


def test_vendor_normalised_series_has_no_lookahead(tmp_path, load):
    rng = np.random.default_rng(3)
    true = np.exp(np.cumsum(rng.normal(0, 0.05, 112))) * 50
    true[100] = true.max() * 4  # a spike in the future rescales every past level of the longer file
    short, long = tmp_path / "google_trends_BTC.csv", tmp_path / "long" / "google_trends_BTC.csv"
    long.parent.mkdir()
    _trends(short, true[:90])
    _trends(long, true)

    def levels(path: Path, **opts) -> np.ndarray:
        t = load("google_trends", "exogenous", path, options=opts).table
        t = t.filter(pa.compute.equal(t["series"], "trend"))
        return t["value"].to_numpy()[:90]

    raw_short, raw_long = levels(short, level="raw_lookahead"), levels(long, level="raw_lookahead")
    # the provider's levels of the same past days move by a factor ~4 once the future spike is in the file
    assert np.abs(raw_short / raw_long - 1).max() > 1
    # causal: the same past whatever the future holds (up to the provider's integer rounding, ~3 %)
    assert np.abs(levels(short) / levels(long) - 1).max() < 0.05
    cfg = validate_config({"data": {"instruments": [{"symbol": "BTC"}],
                                    "sources": [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "BTC"},
                                                {"name": "t", "kind": "exogenous", "format": "google_trends", "path": str(long),
                                                 "options": {"level": "raw_lookahead"}}],
                                    "clock": {"step": "1d", "start": "2020-01-02", "end": "2020-01-09"}},
                           "features": {"set": [{"name": "logret"}]}})
    ts = parse_timestamp("2020-01-01") + np.arange(10, dtype=np.int64) * 24 * H
    c = np.ones(10)
    bars = conform("bars", pa.table({"ts_event": ts, "available_at": ts + 24 * H, "instrument": ["BTC"] * 10,
                                     "open": c, "high": c, "low": c, "close": c, "volume": c}))
    from dea.data.sources import load_source

    p = assemble_panel(cfg.data, {"b": bars, "t": load_source(cfg.data.sources[1], tmp_path).table})
    assert p.report["lookahead"] == {"trend@BTC": "t"}
    rep = coverage_report(p)  # what training prints, logs to MLflow and puts in the tearsheet
    assert rep.lookahead == (("trend@BTC", "t"),) and rep.metrics()["coverage.lookahead_series"] == 1.0
    assert any(n.startswith("LOOK-AHEAD ACCEPTED: trend@BTC (source t)") for n in rep.notes())
    assert "look-ahead accepted" in rep.format()


def test_funding_none_is_listed_as_uncharged():
    cfg = validate_config({"data": {"instruments": [{"symbol": "X", "kind": "perpetual", "funding": "none"}],
                                    "sources": [{"name": "b", "kind": "bars", "format": "ohlcv", "path": "x", "instrument": "X"}],
                                    "clock": {"step": "1h", "start": "2024-01-01T01:00:00", "end": "2024-01-01T05:00:00"}},
                           "features": {"set": [{"name": "logret"}]}})
    rep = coverage_report(assemble_panel(cfg.data, {"b": _bars("X", 8)}))
    assert rep.notes() == ["X: declared 'funding: none': no funding charged on any of its 5 clock rows"]


def test_vendor_normalised_level_is_refused_through_the_generic_loader(tmp_path, load):
    """The generic ``daily`` format would take a Google Trends level as it is (look-ahead, unflagged)."""
    path = tmp_path / "google_trends_BTC.csv"
    _trends(path, np.linspace(10.0, 50.0, 40))
    with pytest.raises(DataError, match="column .bitcoin. is a Google Trends level, scaled by the provider.*look-ahead"):
        load("daily", "exogenous", path)
    ratios = load("daily", "exogenous", path, series=["trend_log_return"]).table  # scale-free: allowed
    assert set(ratios["series"].to_pylist()) == {"trend_log_return"} and ratios.num_rows == 40


def test_social_search_volume_is_rescaled_causally(shared_data, tmp_path, load):
    """The btc_social Google Trends ``Search Volume`` (pytrends, scaled over its whole window) is
    rescaled causally: a value does not change when later data is cut off; raw it is marked look-ahead."""
    src = shared_data / "sentiment/btc_social_2014_2021/indirect__google_trends.csv"
    short = tmp_path / "indirect__google_trends.csv"
    short.write_text("".join(src.read_text().splitlines(keepends=True)[:401]))
    full, cut = (load("social", "exogenous", p) for p in (src, short))
    assert full.report.get("causal_rescale") and set(full.table["series"].to_pylist()) == {"google_trends"}
    np.testing.assert_array_equal(full.table["value"].to_numpy()[:400], cut.table["value"].to_numpy())
    raw = np.loadtxt(src, delimiter=",", skiprows=1, usecols=1)
    assert not np.allclose(full.table["value"].to_numpy(), raw)  # not the provider's levels
    kept = load("social", "exogenous", src, options={"trends_level": "raw_lookahead"})
    np.testing.assert_allclose(kept.table["value"].to_numpy(), raw)
    assert kept.report.get("lookahead")
    from dea.data.config import SourceConfig
    from dea.data.loaders.daily import lookahead_series

    assert "google_trends" in lookahead_series(SourceConfig(name="s", kind="exogenous", format="social", path="x",
                                                            options={"trends_level": "raw_lookahead"}))
    with pytest.raises(DataError, match="'Search Volume' is a Google Trends level"):
        load("daily", "exogenous", src)
