"""Option chains and DVOL through ``dea data ingest``: the real Deribit ticker dumps (2021 flattened
greeks, 2020 dict strings) become ``option_chain`` store tables, DVOL an ``exogenous`` series, each
identical to what the path-based readers give; a Tardis ``options_chain`` CSV ingests the same way."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
import yaml

from dea.cli.main import main
from dea.data.config import SourceConfig
from dea.data.loaders.options_chain import load_deribit_dvol, load_deribit_ticker
from dea.data.sources import load_source
from dea.data.store import DataStore
from dea.errors import ConfigError

TARDIS = (
    "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,last_price,bid_price,"
    "bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,"
    "gamma,vega,theta,rho\n"
    "deribit,BTC-26JUN20-8000-C,1590105600000000,1590105600100000,call,8000,1593158400000000,10,0.2,0.19,5,60,"
    "0.21,5,70,0.2,65,BTC-26JUN20,9200,0.7,0.0001,12.5,-5.1,3.0\n"
    "deribit,BTC-26JUN20-8000-C,1590105660000000,1590105660100000,call,8000,1593158400000000,10,0.2,0,0,0,"
    "0.21,5,70,0.2,65,BTC-26JUN20,9210,0.71,0.0001,12.4,-5.2,3.0\n"
)


def _config(folder, shared_data, extra=()):  # noqa: ANN001, ANN202
    opt = shared_data / "options"
    sources = [
        {"name": "btc_chain_2021", "kind": "option_chain", "format": "deribit_ticker",
         "path": str(opt / "deribit_btc_chain_20210211.csv")},
        {"name": "btc_chain_2020", "kind": "option_chain", "format": "deribit_ticker",
         "path": str(opt / "deribit_btc_chain_20200521.csv")},
        {"name": "btc_dvol", "kind": "exogenous", "format": "deribit_dvol", "entity": "BTC",
         "path": str(opt / "deribit_btc_dvol_daily_2023_2024.csv"), "publication_lag": "5m"},
        *extra,
    ]
    cfg = {"name": "opts", "features": {"set": [{"name": "logret"}]},
           "data": {"store": "store", "instruments": [{"symbol": "BTC"}], "sources": sources}}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_chains_and_dvol_ingest_into_the_store(shared_data, tmp_path, capsys):  # noqa: ANN001
    (tmp_path / "tardis.csv").write_text(TARDIS)
    tardis = {"name": "tardis_chain", "kind": "option_chain", "format": "tardis_options_chain", "path": "tardis.csv"}
    cfg = _config(tmp_path, shared_data, [tardis])
    assert main(["data", "ingest", "--config", str(cfg)]) == 0
    store = DataStore(tmp_path / "store")
    assert set(store.datasets()) >= {("btc_chain_2021", "option_chain"), ("btc_chain_2020", "option_chain"),
                                     ("btc_dvol", "exogenous"), ("tardis_chain", "option_chain")}
    chain = store.read("btc_chain_2021", "option_chain")
    direct, _ = load_deribit_ticker(shared_data / "options/deribit_btc_chain_20210211.csv")
    assert chain.num_rows == direct.num_rows == 2 * 488  # every BTC option, polled twice
    for col in ("mark_price", "delta", "vega", "strike", "expiry_ns"):
        a = np.sort(chain[col].to_numpy(zero_copy_only=False))
        b = np.sort(direct[col].to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(a, b)
    row = chain.filter(pc.equal(chain["instrument"], "BTC-13FEB21-37500-C")).slice(0, 1).to_pylist()[0]
    assert row["strike"] == 37_500.0 and row["is_call"] and row["underlying"] == "BTC"
    assert row["expiry_ns"] == 1_613_203_200 * 10**9  # 2021-02-13T08:00:00Z
    old = store.read("btc_chain_2020", "option_chain")
    assert old.num_rows == 326 and np.isfinite(old["delta"].to_numpy(zero_copy_only=False)).all()
    dvol = store.read("btc_dvol", "exogenous")
    ts, known, iv = load_deribit_dvol(shared_data / "options/deribit_btc_dvol_daily_2023_2024.csv", publication_lag="5m")
    np.testing.assert_array_equal(dvol["ts_event"].to_numpy(), ts)
    np.testing.assert_array_equal(dvol["available_at"].to_numpy(), known)
    np.testing.assert_allclose(dvol["value"].to_numpy(), iv)
    assert set(dvol["series"].to_pylist()) == {"dvol"} and set(dvol["entity"].to_pylist()) == {"BTC"}
    assert dvol["value"].to_numpy()[-1] == pytest.approx(0.5589)  # 2024-05-14: 55.89 %
    t = store.read("tardis_chain", "option_chain")
    assert t["available_at"].to_pylist() == [1590105600100000000, 1590105660100000000]
    assert np.isnan(t["bid_price"].to_numpy(zero_copy_only=False)[1])  # empty bid side: NaN, not 0
    # a second ingest finds everything current
    assert main(["data", "ingest", "--config", str(cfg)]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_chain_source_options_are_validated(shared_data, tmp_path):  # noqa: ANN001
    path = str(shared_data / "options/deribit_btc_chain_20210211.csv")
    bad = SourceConfig(name="c", kind="option_chain", format="deribit_ticker", path=path, options={"interest_rte": 0.0})
    with pytest.raises(ConfigError, match="unknown option"):
        load_source(bad, tmp_path)
    wrong_kind = SourceConfig(name="c", kind="bars", format="deribit_ticker", path=path)
    with pytest.raises(ConfigError, match="produces \\['option_chain'\\]"):
        load_source(wrong_kind, tmp_path)
    # without 'entity' the coin comes from the file name (reported), or the source is refused
    real = shared_data / "options/deribit_btc_dvol_daily_2023_2024.csv"
    named = load_source(SourceConfig(name="d", kind="exogenous", format="deribit_dvol", path=str(real)), tmp_path)
    assert set(named.table["entity"].to_pylist()) == {"BTC"} and named.report.count("entity_inferred") == 1
    (tmp_path / "dvol.csv").write_bytes(real.read_bytes())
    with pytest.raises(ConfigError, match="needs 'entity'"):
        load_source(SourceConfig(name="d", kind="exogenous", format="deribit_dvol", path="dvol.csv"), tmp_path)


def test_a_chain_source_beside_bars_is_named_in_the_panel_report(shared_data, tmp_path):  # noqa: ANN001
    from dea.config import load_config
    from dea.data.panel import build_panel

    (tmp_path / "px.csv").write_text("date,open,high,low,close,volume\n" + "".join(
        f"2021-02-{d:02d}T00:00:00Z,{100 + d},{101 + d},{99 + d},{100.5 + d},{10 + d}\n" for d in range(1, 21)))
    bars = {"name": "px", "kind": "bars", "format": "ohlcv", "path": "px.csv", "instrument": "BTC", "step": "1d"}
    panel = build_panel(load_config(_config(tmp_path, shared_data, [bars])))
    assert "option chain snapshots are stored" in panel.report["btc_chain_2021"]["not_joined"]
    assert "price" in panel.fields


@pytest.mark.parametrize("name, fmt, kind", [
    ("deribit_btc_chain_20210211.csv", "deribit_ticker", "option_chain"),
    ("deribit_eth_chain_20210211.csv", "deribit_ticker", "option_chain"),
    ("deribit_btc_chain_20200521.csv", "deribit_ticker", "option_chain"),
    ("deribit_btc_dvol_daily_2023_2024.csv", "deribit_dvol", "exogenous"),
])
def test_inspect_recognises_the_real_option_files(shared_data, name, fmt, kind):  # noqa: ANN001
    """Before these formats existed a chain dump was read as open interest (and lost 221 rows as
    'duplicates'); now each file is recognised and every row kept."""
    from dea.data.inspect import inspect_path
    from dea.data.loaders.detect import detect

    det = detect(shared_data / "options" / name)
    assert (det.format, det.kinds) == (fmt, (kind,))
    entry = inspect_path(shared_data / "options" / name).entries[0]
    assert entry.status == "loaded" and entry.kind == kind
    assert entry.report.rows_out == entry.report.rows_in
    if kind == "option_chain":
        assert [s.key for s in entry.summaries] == [name.split("_")[1].upper()]  # one line per chain
    else:
        assert entry.summaries[0].key == "dvol @ BTC"


def test_tardis_options_chain_is_recognised(tmp_path):  # noqa: ANN001
    from dea.data.loaders.detect import detect

    (tmp_path / "deribit_options_chain_2020-05-22.csv").write_text(TARDIS)
    det = detect(tmp_path / "deribit_options_chain_2020-05-22.csv")
    assert (det.format, det.kinds) == ("tardis_options_chain", ("option_chain",))
