"""Property-based tests: corrupted and garbage files fed to every loader may only raise DEA's own
errors (DeaError subclasses) — never a pyarrow/pandas/numpy exception or a crash."""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dea.data.config import SourceConfig
from dea.data.sources import load_source
from dea.errors import DeaError

TN = "orderbook/tardis_nautilus"
# (format, kind, sample file under shared data, how many leading lines to keep for text files)
SAMPLES = [
    ("freqtrade", "bars", "perps_5m_15m/BTC_USDT_USDT-15m-futures.feather"),
    ("freqtrade", "funding", "funding/binance_usdm_2023_2024/ETH_USDT_USDT-8h-funding_rate.feather"),
    ("freqtrade", "mark", "funding/binance_usdm_2023_2024/ETH_USDT_USDT-8h-mark.feather"),
    ("ohlcv", "bars", f"{TN}/ftx-btc-perp-20211231-20220201_1m.csv"),
    ("bitmex_funding", "funding", "funding/funding_data.csv"),
    ("deribit_funding", "funding", "funding/deribit_history.csv"),
    ("bitmex_prices", "mark", "funding/price_data.csv"),
    ("tardis_trades", "trades", f"{TN}/tardis_sample_bitmex_trades_XBTUSD.csv"),
    ("tardis_quotes", "quotes", f"{TN}/tardis_sample_huobi-dm-swap_quotes_BTC-USD.csv"),
    ("tardis_book_snapshot", "book", f"{TN}/tardis_sample_binance-futures_book_snapshot_5_BTCUSDT.csv"),
    ("tardis_incremental_l2", "book", f"{TN}/tardis_sample_deribit_incremental_book_L2_BTC-PERPETUAL.csv"),
    ("binance_trades", "trades", f"{TN}/binance-btcusdt-trades.parquet"),
    ("binance_depth_csv", "book", f"{TN}/binance-btcusdt-depth-update.csv"),
    ("bybit_ob", "book", f"{TN}/bybit_xrpusdt-ob500.data.zip"),
    ("coinmetrics", "bars", "daily_onchain/coinmetrics/btc.csv"),
    ("coinmetrics", "exogenous", "daily_onchain/coinmetrics/ltc.csv.gz"),
    ("fear_greed", "exogenous", "sentiment/fear_greed_index_2018_2025.csv"),
    ("google_trends", "exogenous", "sentiment/google_trends_LTC.csv"),
    ("social", "exogenous", "sentiment/btc_social_2014_2021/final_dataset.csv"),
    ("fred", "exogenous", "macro/DGS10.csv"),
]
TEXT_LINES = 25


def _sample_bytes(shared: Path, rel: str) -> tuple[str, bytes]:
    path = shared / rel
    data = path.read_bytes()
    name = path.name
    if name.endswith(".gz"):
        data, name = gzip.decompress(data), name[:-3]
    if name.endswith(".csv"):
        data = b"".join(data.splitlines(keepends=True)[:TEXT_LINES])
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            lines = zf.read(zf.namelist()[0]).splitlines(keepends=True)[:6]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("ob.data", b"".join(lines))
        data = buf.getvalue()
    return name, data


@st.composite
def corruption(draw, data: bytes) -> bytes:
    """One of: truncation, byte overwrite, text insertion, line deletion/duplication/swap, cell swap."""
    n = len(data)
    how = draw(st.sampled_from(["truncate", "overwrite", "insert", "lines", "cell", "bom", "dup_header"]))
    if how == "truncate":
        return data[: draw(st.integers(0, n))]
    if how == "overwrite":
        i = draw(st.integers(0, max(n - 1, 0)))
        junk = draw(st.binary(min_size=1, max_size=8))
        return data[:i] + junk + data[i + len(junk):]
    if how == "insert":
        i = draw(st.integers(0, n))
        junk = draw(st.sampled_from([b",", b"\n", b'"', b"nan", b"-1", b"0", b"inf", b"abc", b"\xff\xfe", b",,,,", b"1e400"]))
        return data[:i] + junk + data[i:]
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    if how == "dup_header":
        head = lines[0].rstrip(b"\r\n")
        first = head.split(b",")[0]
        return head + b"," + first + b"\n" + b"".join(lines[1:])
    if how == "lines":
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[j])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)
    # cell: replace one comma-separated field of a data line with a strange value
    i = draw(st.integers(0, len(lines) - 1))
    cells = lines[i].rstrip(b"\r\n").split(b",")
    k = draw(st.integers(0, len(cells) - 1))
    cells[k] = draw(st.sampled_from([b"", b"-5", b"0", b"abc", b"NaN", b"1e999", b"9" * 30, b"2024-13-45", b"true", b'"x,y"']))
    lines[i] = b",".join(cells) + b"\n"
    return b"".join(lines)


def _run(fmt: str, kind: str, name: str, payload: bytes, **kw) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / name
        p.write_bytes(payload)
        src = SourceConfig(name="fuzz", kind=kind, format=fmt, path=str(p), **kw)
        try:
            result = load_source(src, Path(tmp))
        except DeaError:
            return
        # a load that succeeds honours the canonical contract and drops nothing unreported
        assert result.table.column_names[:2] == ["ts_event", "available_at"]
        rep = result.report
        dropped = rep.rows_in - rep.rows_out
        explained = rep.count("duplicate") + (
            rep.count("nan") + rep.count("non_finite") if kw.get("nan_policy") == "drop" else 0
        )
        assert 0 <= dropped <= explained
        assert result.table.num_rows == rep.rows_out


FUZZ = settings(max_examples=int(__import__("os").environ.get("DEA_FUZZ_EXAMPLES", "30")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("fmt,kind,rel", SAMPLES, ids=[f"{f}-{k}" for f, k, _ in SAMPLES])
def test_corrupted_real_files_raise_only_dea_errors(shared_data, fmt, kind, rel):
    name, data = _sample_bytes(shared_data, rel)

    @FUZZ
    @given(payload=corruption(data), lenient=st.booleans())
    def check(payload: bytes, lenient: bool) -> None:
        kw = {"duplicate_policy": "keep_last", "nan_policy": "drop"} if lenient else {}
        _run(fmt, kind, name, payload, **kw)

    check()


@pytest.mark.parametrize("fmt,kind,rel", SAMPLES, ids=[f"{f}-{k}" for f, k, _ in SAMPLES])
def test_garbage_bytes_raise_only_dea_errors(fmt, kind, rel):
    name = Path(rel).name.removesuffix(".gz")

    @settings(max_examples=10, deadline=None)
    @given(payload=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
    def check(payload: bytes) -> None:
        _run(fmt, kind, name, payload)

    check()
