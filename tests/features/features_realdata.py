"""Real-data experiment configs and helpers shared by the feature-engine tests (fixtures: conftest.py).

(a) ``perps``: Binance USDT-M BTC/ETH/LTC 5-minute bars (three weeks of 2024) with the Crypto
    Fear & Greed index joined (daily, visible after its day closes); no funding history, so the
    perpetuals declare ``funding: none``.
(b) ``daily``: Coin Metrics daily BTC/ETH/LTC prices and on-chain metrics (1-day publication lag)
    with sentiment joined: Fear & Greed, Reddit comment sentiment and volume, Google Trends per
    asset; plus FRED DGS10 / DTWEXBGS (1-day lag, forward-filled over weekends).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dea.data.panel import Panel

SYMBOLS = ("BTC", "ETH", "LTC")


def perps_features() -> list[dict[str, Any]]:
    """A >= 40-column set over every non-order-book family that the 5-minute data supports."""
    return [
        {"name": "logret", "params": {"horizon": 1}},
        {"name": "logret", "params": {"horizon": 12}},
        {"name": "logret", "params": {"horizon": 288}},
        {"name": "rvol_cc", "params": {"window": 48}},
        {"name": "rvol_cc", "params": {"window": 288}},
        {"name": "rvol_parkinson", "params": {"window": 48}},
        {"name": "rvol_gk", "params": {"window": 48}},
        {"name": "volume_z", "params": {"window": 288}},
        {"name": "ewma_trend", "params": {"fast": 12, "slow": 96}},
        {"name": "ewma_mom", "params": {"span": 48}},
        {"name": "dist_high", "params": {"window": 288, "use": "high"}},
        {"name": "corr", "params": {"window": 288, "ref": "BTC"}, "instruments": ["ETH", "LTC"]},
        {"name": "beta", "params": {"window": 288, "ref": "BTC"}, "instruments": ["ETH", "LTC"]},
        {"name": "rel_strength", "params": {"horizon": 48}},
        {"name": "time_to_funding", "params": {"interval": "8h"}},
        {"name": "level", "series": "fear_greed_index"},
        {"name": "change", "series": "fear_greed_index", "params": {"horizon": 288}},
        {"name": "zscore", "series": "fear_greed_index", "params": {"window": 2016}},
        {"name": "hour_of_day"},
        {"name": "day_of_week"},
    ]


def perps_raw(shared: Path, start: str = "2024-01-01", end: str = "2024-01-22") -> dict[str, Any]:
    return {
        "name": "perps-test",
        "data": {
            "instruments": [
                {"symbol": s, "venue": "binance", "kind": "perpetual", "base": s, "quote": "USDT", "funding": "none"}
                for s in SYMBOLS
            ],
            "sources": [
                {
                    "name": f"{s.lower()}_5m",
                    "kind": "bars",
                    "format": "freqtrade",
                    "path": str(shared / "perps_5m_15m" / f"{s}_USDT_USDT-5m-futures.feather"),
                    "instrument": s,
                    "step": "5m",
                }
                for s in SYMBOLS
            ]
            + [
                {
                    "name": "fear_greed",
                    "kind": "exogenous",
                    "format": "fear_greed",
                    "path": str(shared / "sentiment" / "fear_greed_index_2018_2025.csv"),
                    "step": "1d",
                    "series": ["fear_greed_index"],
                    "max_staleness": "5d",
                }
            ],
            "clock": {"step": "5m", "start": start, "end": end},
        },
        "features": {"set": perps_features(), "missing": {"policy": "mask"}},
    }


def daily_features() -> list[dict[str, Any]]:
    return [
        {"name": "logret", "params": {"horizon": 1}},
        {"name": "logret", "params": {"horizon": 7}},
        {"name": "rvol_cc", "params": {"window": 30}},
        {"name": "ewma_trend", "params": {"fast": 10, "slow": 40}},
        {"name": "ewma_mom", "params": {"span": 20}},
        {"name": "dist_high", "params": {"window": 90}},
        {"name": "corr", "params": {"window": 60}},
        {"name": "beta", "params": {"window": 60}, "instruments": ["ETH", "LTC"]},
        {"name": "rel_strength", "params": {"horizon": 30}},
        {"name": "growth", "field": "AdrActCnt", "params": {"horizon": 7}},
        {"name": "growth", "field": "TxCnt", "params": {"horizon": 7}},
        {"name": "zscore", "field": "HashRate", "params": {"window": 90, "log": True}},
        {"name": "zscore", "field": "FeeTotUSD", "params": {"window": 60, "log": True}},
        {"name": "zscore", "field": "CapMVRVCur", "params": {"window": 180}, "instruments": ["BTC", "LTC"]},
        {"name": "zscore", "field": "NVTAdj", "params": {"window": 90, "log": True}},
        {"name": "level", "series": "fear_greed_index"},
        {"name": "change", "series": "fear_greed_index", "params": {"horizon": 7}},
        {"name": "zscore", "series": "reddit_comments_sentiment", "params": {"window": 30}},
        {"name": "zscore", "series": "reddit_comments_volume", "params": {"window": 30, "log": True}},
        {"name": "growth", "field": "trend", "params": {"horizon": 7}},
        {"name": "change", "series": "DGS10", "params": {"horizon": 5}},
        {"name": "growth", "series": "DTWEXBGS", "params": {"horizon": 5}},
        {"name": "day_of_week"},
    ]


def daily_raw(shared: Path, start: str = "2018-06-01", end: str = "2020-07-27") -> dict[str, Any]:
    cm = shared / "daily_onchain" / "coinmetrics"
    files = {"BTC": cm / "btc.csv", "ETH": cm / "eth.csv", "LTC": cm / "ltc.csv.gz"}
    onchain = {
        "BTC": ["AdrActCnt", "TxCnt", "HashRate", "FeeTotUSD", "CapMVRVCur", "NVTAdj"],
        "ETH": ["AdrActCnt", "TxCnt", "HashRate", "FeeTotUSD", "NVTAdj"],
        "LTC": ["AdrActCnt", "TxCnt", "HashRate", "FeeTotUSD", "CapMVRVCur", "NVTAdj"],
    }
    social = shared / "sentiment" / "btc_social_2014_2021"
    sources: list[dict[str, Any]] = []
    for s in SYMBOLS:
        sources.append(
            {"name": f"{s.lower()}_price", "kind": "bars", "format": "coinmetrics", "path": str(files[s]),
             "instrument": s, "step": "1d", "publication_lag": "1h"}
        )
        sources.append(
            {"name": f"{s.lower()}_onchain", "kind": "exogenous", "format": "coinmetrics", "path": str(files[s]),
             "entity": s, "step": "1d", "publication_lag": "1d", "max_staleness": "5d", "series": onchain[s]}
        )
        sources.append(
            {"name": f"{s.lower()}_trends", "kind": "exogenous", "format": "google_trends",
             "path": str(shared / "sentiment" / f"google_trends_{s}.csv"), "step": "1d", "series": ["trend"],
             "max_staleness": "5d"}
        )
    sources += [
        {"name": "fear_greed", "kind": "exogenous", "format": "fear_greed",
         "path": str(shared / "sentiment" / "fear_greed_index_2018_2025.csv"), "step": "1d",
         "series": ["fear_greed_index"], "max_staleness": "5d"},
        {"name": "reddit_sent", "kind": "exogenous", "format": "social",
         "path": str(social / "direct__reddit_comments_sentiment.csv"), "step": "1d", "max_staleness": "12d"},
        {"name": "reddit_vol", "kind": "exogenous", "format": "social",
         "path": str(social / "indirect__reddit_comments_volume.csv"), "step": "1d", "max_staleness": "12d"},
        {"name": "dgs10", "kind": "exogenous", "format": "fred", "path": str(shared / "macro" / "DGS10.csv"),
         "step": "1d", "publication_lag": "1d", "max_staleness": "6d"},
        {"name": "dollar", "kind": "exogenous", "format": "fred", "path": str(shared / "macro" / "DTWEXBGS.csv"),
         "step": "1d", "publication_lag": "1d", "max_staleness": "8d"},
    ]
    return {
        "name": "daily-test",
        "data": {
            "instruments": [
                {"symbol": s, "venue": "coinmetrics", "kind": "spot", "base": s, "quote": "USD"} for s in SYMBOLS
            ],
            "sources": sources,
            "clock": {"step": "1d", "start": start, "end": end},
        },
        "features": {"set": daily_features(), "missing": {"policy": "fill"}},
    }


def replay(streaming: Any, panel: Panel) -> np.ndarray:
    """Feed the panel row by row into a streaming feature set; returns [T, F]."""
    out = np.empty((len(panel), len(streaming.names)))
    for i in range(len(panel)):
        fields, series = panel.row(i)
        out[i] = streaming.update(int(panel.clock[i]), fields, series)
    return out


def assert_parity(batch: np.ndarray, stream: np.ndarray, names: tuple[str, ...], rtol: float = 1e-9) -> None:
    """Same NaN pattern, and |a - b| <= rtol * max(|a|, |b|) everywhere both are finite."""
    nan_b, nan_s = np.isnan(batch), np.isnan(stream)
    if not np.array_equal(nan_b, nan_s):
        j = int(np.nonzero((nan_b != nan_s).any(axis=0))[0][0])
        i = int(np.nonzero(nan_b[:, j] != nan_s[:, j])[0][0])
        raise AssertionError(f"NaN pattern differs for {names[j]!r} at row {i}: batch {batch[i, j]} stream {stream[i, j]}")
    fin = ~nan_b
    diff = np.abs(batch - stream)
    bound = rtol * np.maximum(np.abs(batch), np.abs(stream))
    bad = fin & (diff > bound)
    if bad.any():
        j = int(np.nonzero(bad.any(axis=0))[0][0])
        i = int(np.nonzero(bad[:, j])[0][0])
        raise AssertionError(f"{names[j]!r} row {i}: batch {batch[i, j]!r} vs stream {stream[i, j]!r}")


def synthetic_walk(T: int, N: int | None, seed: int, level: float = 100.0) -> np.ndarray:
    """A positive geometric random walk (for inputs the real data lacks, e.g. open interest)."""
    rng = np.random.default_rng(seed)
    shape = (T,) if N is None else (T, N)
    return level * np.exp(np.cumsum(rng.normal(0.0, 0.01, shape), axis=0))


def completed_panel(panel: Panel, inputs: Any) -> Panel:
    """``panel`` plus a synthetic stand-in for every input it lacks or holds no finite value of.

    Real inputs are kept as they are; only absent ones (mark/index, open interest, order-book
    fields, ...) are synthesised, so registry-wide tests can run every registered feature.
    """
    fields = dict(panel.fields)
    series = dict(panel.series)
    T, N = len(panel), len(panel.instruments)
    for k, inp in enumerate(inputs):
        seed = 1000 + k
        if inp.kind == "field":
            arr = fields.get(inp.name)
            if arr is None or not np.isfinite(arr).all(axis=0).all():
                fields[inp.name] = synthetic_walk(T, N, seed)
        else:
            arr = series.get(inp.name)
            if arr is None or not np.isfinite(arr).any():
                series[inp.name] = synthetic_walk(T, None, seed)
    return Panel(
        clock=panel.clock, step_ns=panel.step_ns, instruments=panel.instruments, fields=fields,
        series=series, age=panel.age, fingerprint=panel.fingerprint + "+synthetic",
    )


def registered_variants() -> list[tuple[str, dict[str, Any]]]:
    """One config item per registered feature with default params (both input kinds for
    transforms that accept a series or a field) -- so new features are tested automatically."""
    from dea.features import registry

    out: list[tuple[str, dict[str, Any]]] = []
    for name, cls in registry.items():
        if cls.input_kind is None:
            out.append((name, {"name": name}))
            continue
        example = cls.example_input or "fear_greed_index"
        if cls.input_kind in ("series", "either"):
            out.append((f"{name}[series]", {"name": name, "series": example}))
        if cls.input_kind in ("field", "either"):
            out.append((f"{name}[field]", {"name": name, "field": "AdrActCnt" if cls.input_kind == "either" else example}))
    return out
