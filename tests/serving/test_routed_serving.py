"""``dea serve`` routing across venues: the worked venue splits every marketable child of a
routed instrument across two local fake Binance venues over HTTP (ccxt), the first on the live
feed's book, the second on its REST book; ``build_exchange`` wires the routes from the config;
the paper venue runs one queue-aware simulator per venue."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dea.book.events import DepthSnapshot
from dea.cli.main import main as dea_main
from dea.config import load_config
from dea.execution.config import ExecutionConfig
from dea.execution.orders import Order
from dea.execution.store import ExecutionStore
from dea.instruments import Instrument
from serving.exchanges.ccxt_exchange import CcxtExchange
from serving.exchanges.worked import WorkedExchange
from tests.serving.fake_binance import FAKE_ENV, FakeBinance

ccxt = pytest.importorskip("ccxt")
T0 = 1_723_161_255_000_000_000
S = 1_000_000_000
BOOKS = {"A": ([(59999.0, 3.0)], [(60000.0, 1.0), (60001.0, 5.0)]),
         "B": ([(59999.5, 1.0)], [(60000.2, 2.0), (60000.5, 3.0)])}
ROUTES = {"BTCUSDT": [{"venue": "A", "taker_fee": 0.0005}, {"venue": "B", "taker_fee": 0.0002, "max_qty": 2.5}]}
PERP = {"symbol": "BTCUSDT", "kind": "perpetual", "funding": "none", "tick_size": 0.1, "lot_size": 0.001,
        "min_notional": 100.0}


@pytest.fixture()
def fakes():  # noqa: ANN201
    fs = {v: FakeBinance() for v in BOOKS}
    for v, (bids, asks) in BOOKS.items():
        fs[v].sim.on_snapshot(1, bids, asks)
    yield fs
    for f in fs.values():
        f.close()


def _adapter(fake: FakeBinance) -> CcxtExchange:
    client = ccxt.binance({"apiKey": "k", "secret": "s", "enableRateLimit": True, "rateLimit": 1,
                           "options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]},
                                       "fetchCurrencies": False}})
    client.urls["api"] = fake.urls()
    ex = CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, client=client)
    ex.check_markets([Instrument(**PERP)])
    return ex


def _feed(w: WorkedExchange) -> None:
    bids, asks = BOOKS["A"]  # the live feed is venue A's
    w.on_depth(0, DepthSnapshot(T0, T0, 1, tuple(bids), tuple(asks)))


def test_worked_venue_routes_a_parent_over_two_fake_venues(fakes, tmp_path) -> None:  # noqa: ANN001
    """4 BTC at once: A (the feed's book) and B (its REST depth) by all-in price within B's
    2.5 cap: B 2 @ 60000.2 + 0.5 @ 60000.5, A 1 @ 60000 + 0.5 @ 60001; each leg an IOC at its
    worst planned price, fills under the loop's parent id, positions summed over venues."""
    adapters = {v: _adapter(f) for v, f in fakes.items()}
    store = ExecutionStore(tmp_path / "j.sqlite")
    w = WorkedExchange([Instrument(**PERP)], ExecutionConfig(routes=ROUTES), adapter=adapters["A"], store=store,
                       route_adapters=adapters)
    _feed(w)
    ack = w.submit([Order("BTCUSDT", 0, 4.0, T0, T0, 59999.5, "dea-par-1")])[0]
    assert ack.status == "filled"
    fills = w.poll_fills(T0)
    assert {f.client_id for f in fills} == {"dea-par-1"}
    assert sorted((f.price, f.qty) for f in fills) == [(60000.0, 1.0), (60000.2, 2.0), (60000.5, 0.5), (60001.0, 0.5)]
    assert fakes["A"].sim.position == pytest.approx(1.5) and fakes["B"].sim.position == pytest.approx(2.5)
    assert w.positions() == {"BTCUSDT": pytest.approx(4.0)} and w.in_flight() == [pytest.approx(0.0)]
    sent = {v: [(o.req.tif, o.req.price, o.req.qty) for o in f.sim.orders.values()] for v, f in fakes.items()}
    assert sent == {"A": [("IOC", 60001.0, pytest.approx(1.5))], "B": [("IOC", 60000.5, pytest.approx(2.5))]}
    assert [p for _, m, p in fakes["B"].requests if m == "GET"].count("/fapi/v1/depth") == 1  # B's book by REST
    w.close()
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        kids = db.execute("SELECT client_id, kind, status FROM exec_orders").fetchall()
    assert [(k, s) for _, k, s in kids] == [("market", "filled")]  # one child, routed in two legs
    rec = ExecutionStore(tmp_path / "j.sqlite").parents()[-1]
    legs = rec.detail["routes"]
    assert [(r["venue"], r["filled"], r["leg"]) for r in legs] == [
        ("A", pytest.approx(1.5), kids[0][0] + ".0"), ("B", pytest.approx(2.5), kids[0][0] + ".1")]
    assert "capped by max_qty" in legs[1]["reason"]


def test_a_leg_the_venue_cannot_fill_is_reported_and_the_rest_stays_in_flight(fakes, tmp_path) -> None:  # noqa: ANN001
    """B's book is thinner by REST than the plan assumed: after the plan B's asks are taken
    by someone else; the IOC at 60000.5 fills what is left and the child ends with the rest."""
    adapters = {v: _adapter(f) for v, f in fakes.items()}
    w = WorkedExchange([Instrument(**PERP)], ExecutionConfig(routes=ROUTES), adapter=adapters["A"],
                       route_adapters=adapters)
    _feed(w)
    real = adapters["B"].order_book

    def stale(instrument: str, depth: int = 100):  # noqa: ANN202 - the book B had a moment ago
        out = real(instrument, depth)
        fakes["B"].sim.on_snapshot(2, [(59999.5, 1.0)], [(60000.2, 0.5), (60003.0, 3.0)])
        return out

    adapters["B"].order_book = stale  # type: ignore[method-assign]
    w.submit([Order("BTCUSDT", 0, 4.0, T0, T0, 59999.5, "dea-par-2")])
    w.before_decision(T0 + S)
    assert fakes["B"].sim.position == pytest.approx(0.5) and fakes["A"].sim.position == pytest.approx(1.5)
    rec = w.records()[-1]
    b = [r for r in rec.detail["routes"] if r["venue"] == "B"][0]
    assert b["qty"] == pytest.approx(2.5) and b["filled"] == pytest.approx(0.5) and b["status"].startswith("expired")
    assert sum(f.qty for f in rec.fills) == pytest.approx(2.0)  # the parent ended with 2 unfilled
    w.close()


CONFIG = """
name: routed-serve
data:
  instruments:
    - {{symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001,
       tick_size: 0.1, min_notional: 100.0, maker_fee: 0.0002, taker_fee: 0.0005}}
  sources:
    - {{name: btc_book, kind: book, format: binance_ws, path: {capture}, instrument: BTCUSDT}}
  price_field: mid
  clock: {{step: 5s}}
features:
  set: [{{name: ob_spread_bps}}]
costs: {{impact: {{model: none}}, initial_equity: 1000000.0}}
execution:
  routes:
    BTCUSDT:
      - {{venue: A, taker_fee: 0.0005}}
      - {{venue: B, taker_fee: 0.0002, max_qty: 2.5, urls: {urls_b}}}
serving:
  testnet: false
  venue_symbols: {{BTCUSDT: BTC/USDT:USDT}}
  venue_urls: {urls_a}
  venue_config: {{rateLimit: 1, options: {{defaultType: swap, fetchCurrencies: false, fetchMarkets: {{types: [linear]}}}}}}
"""


def test_build_exchange_wires_the_routes_to_one_adapter_per_venue(fakes, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """``dea serve --exchange ccxt:binance`` with ``execution.routes``: venue A is the exchange's
    own adapter (serving.venue_urls), B one of its own (the route's urls); a parent splits as
    above, and ``dea execution-report`` on the journal prints where it went and why."""
    import json

    from serving.app import build_exchange

    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    capture = Path(__file__).resolve().parents[1] / "absent.gz"  # never read: no backtest here
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG.format(capture=capture, urls_a=json.dumps(fakes["A"].urls()),
                                      urls_b=json.dumps(fakes["B"].urls())))
    cfg = load_config(cfg_path)
    w = build_exchange("ccxt:binance", cfg, tmp_path / "j.sqlite")
    assert isinstance(w, WorkedExchange) and w.route_adapters["A"] is w.adapter and w.route_adapters["B"] is not w.adapter
    _feed(w)
    w.submit([Order("BTCUSDT", 0, 4.0, T0, T0, 59999.5, "dea-par-3")])
    assert fakes["A"].sim.position == pytest.approx(1.5) and fakes["B"].sim.position == pytest.approx(2.5)
    w.close()
    assert dea_main(["execution-report", str(tmp_path / "j.sqlite"), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "BTCUSDT/A" in text and "BTCUSDT/B" in text and "capped by max_qty" in text
    assert "dea-par-3 B: planned +2.5 at limit 60000.5, filled +2.5 (filled)" in text


def test_paper_venue_has_one_simulator_per_venue_with_its_own_fees() -> None:
    """Paper: both venues trade on the live feed's book, each with its fees and limits: B (2 bps)
    takes its 2.5 cap first, A the rest; fees are each venue's."""
    cfg = ExecutionConfig(routes={"BTCUSDT": [{"venue": "A", "taker_fee": 0.0005},
                                              {"venue": "B", "taker_fee": 0.0002, "max_qty": 2.5}]})
    w = WorkedExchange([Instrument(**PERP)], cfg)
    _feed(w)
    w.submit([Order("BTCUSDT", 0, 4.0, T0, T0, 59999.5, "dea-par-4")])
    fills = w.poll_fills(T0)
    rv = w.desk.executors[0].sim
    assert rv.venues["B"].position == pytest.approx(2.5) and rv.venues["A"].position == pytest.approx(1.5)
    # all-in: B 60000 -> 60012, B 60001 -> 60013 (B full at 2.5), A 60000 -> 60030, A 60001 -> 60031:
    # B 1 @ 60000 + 1.5 @ 60001; A (its own copy of the book) 1 @ 60000 + 0.5 @ 60001
    fee_b = (1.0 * 60000.0 + 1.5 * 60001.0) * 0.0002
    fee_a = (1.0 * 60000.0 + 0.5 * 60001.0) * 0.0005
    assert sum(f.fee for f in fills) == pytest.approx(fee_a + fee_b, rel=1e-12)
    assert sorted((f.price, f.qty) for f in fills) == [(60000.0, 1.0), (60000.0, 1.0), (60001.0, 0.5), (60001.0, 1.5)]
    assert w.positions() == {"BTCUSDT": pytest.approx(4.0)}
    w.close()


def test_dea_serve_paper_routes_worked_children_on_the_real_capture(shared_data, tmp_path, capsys) -> None:  # noqa: ANN001
    """``dea serve`` (paper, replay of the USDT-M capture) with two venues on the feed's book:
    TWAP children split between a 5 bps venue and a 2 bps venue capped at 0.5 BTC a child; the
    loop's ledger is the legs' fills, and every leg says where and why."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serving_helpers import build_onnx_policy

    from dea.features.featureset import FeatureSet

    capture = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
    text = f"""
name: routed-paper
data:
  instruments:
    - {{symbol: BTCUSDT, venue: binance, kind: perpetual, base: BTC, quote: USDT, funding: none, lot_size: 0.001,
       tick_size: 0.1, maker_fee: 0.0002, taker_fee: 0.0005}}
  sources:
    - {{name: btc_book, kind: book, format: binance_ws, path: {capture}, instrument: BTCUSDT}}
  price_field: mid
  clock: {{step: 5s}}
features:
  set:
    - {{name: ob_spread_bps}}
    - {{name: ob_imbalance, params: {{level: 5}}}}
  missing: {{policy: fill, fill_value: 0.0, indicator: false}}
costs: {{impact: {{model: none}}, initial_equity: 1000000.0}}
risk: {{max_exposure: 0.5, stale: {{max_age: 1h}}}}
execution:
  algo: twap
  horizon: 4s
  slices: 2
  routes:
    BTCUSDT:
      - {{venue: main, taker_fee: 0.0005}}
      - {{venue: cheap, taker_fee: 0.0002, max_qty: 0.5}}
backtest: {{baselines: []}}
serving: {{journal_sync: normal, model_poll: null}}
"""
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(text)
    cfg = load_config(cfg_path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    model = build_onnx_policy(tmp_path / "ob.onnx", fs.names, ["BTCUSDT"], spec_hash=fs.spec_hash, gain=3.0)
    journal = tmp_path / "j.sqlite"
    assert dea_main(["serve", "--config", str(cfg_path), "--model", str(model), "--feed", f"replay:{capture}",
                     "--exchange", "paper", "--journal", str(journal), "--max-events", "12000",
                     "--log-format", "text"]) == 0
    capsys.readouterr()
    store = ExecutionStore(journal)
    recs = store.parents()
    store.close()
    legs = [leg for r in recs for leg in r.detail["routes"]]
    assert len(recs) > 5 and {leg["venue"] for leg in legs} == {"main", "cheap"}
    assert all(abs(leg["qty"]) <= 0.5 + 1e-12 for leg in legs if leg["venue"] == "cheap")
    # the cheap venue is taken first: a child goes to main only beyond cheap's cap
    by_child: dict[str, dict[str, float]] = {}
    for leg in legs:
        by_child.setdefault(leg["child"], {})[leg["venue"]] = abs(leg["qty"])
    assert all(v.get("cheap", 0.0) == pytest.approx(0.5) for v in by_child.values() if "main" in v)
    with sqlite3.connect(journal) as db:
        led = db.execute("SELECT SUM(qty), SUM(fee) FROM ledger WHERE kind='fill'").fetchone()
    assert led[0] == pytest.approx(sum(leg["filled"] for leg in legs), abs=1e-9)
    assert led[1] == pytest.approx(sum(leg["fee"] for leg in legs), rel=1e-9)
    assert all(leg["reason"] for leg in legs)


def test_dea_serve_ccxt_routes_over_two_fake_venues_on_the_real_capture(shared_data, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """``dea serve --exchange ccxt:binance --feed replay:CAPTURE`` with two routed venues: two
    local fake Binance servers that quote the feed's book as it stands (A) and the same book
    (B, its 2 bps fee and 0.02 BTC cap a child). Every parent is split over HTTP: B's 0.02
    first (cheaper all-in), A the rest; the fakes' positions are the journal's; the report
    reads the served journal."""
    import sys

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serving_helpers import build_onnx_policy

    import serving.app as app
    from dea.features.featureset import FeatureSet

    built: list[WorkedExchange] = []
    real_build = app.build_exchange

    def build(spec, cfg, journal_path=None):  # noqa: ANN001, ANN202 - keep the instance: the fakes quote its book
        ex = real_build(spec, cfg, journal_path)
        built.append(ex)
        return ex

    def feed_book() -> tuple[list, list]:
        if not built:
            return [], []
        b = built[0].books[0].book
        return b.levels(1, 50), b.levels(-1, 50)

    monkeypatch.setattr(app, "build_exchange", build)
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    fa, fb = FakeBinance(book=feed_book), FakeBinance(book=feed_book)
    try:
        capture = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
        raw = {
            "name": "routed-ccxt",
            "data": {"instruments": [{"symbol": "BTCUSDT", "venue": "binance", "kind": "perpetual", "base": "BTC",
                                      "quote": "USDT", "funding": "none", "lot_size": 0.001, "tick_size": 0.1,
                                      "min_notional": 100.0, "maker_fee": 0.0002, "taker_fee": 0.0005}],
                     "sources": [{"name": "btc_book", "kind": "book", "format": "binance_ws", "path": str(capture),
                                  "instrument": "BTCUSDT"}],
                     "price_field": "mid", "clock": {"step": "5s"}},
            "features": {"set": [{"name": "ob_spread_bps"}, {"name": "ob_imbalance", "params": {"level": 5}}],
                         "missing": {"policy": "fill", "fill_value": 0.0, "indicator": False}},
            "costs": {"impact": {"model": "none"}, "initial_equity": 1000000.0},
            "risk": {"max_exposure": 0.5, "stale": {"max_age": "1h"}},
            "execution": {"routes": {"BTCUSDT": [{"venue": "A", "taker_fee": 0.0005},
                                                 {"venue": "B", "taker_fee": 0.0002, "max_qty": 0.02, "urls": fb.urls()}]}},
            "backtest": {"baselines": []},
            "serving": {"journal_sync": "normal", "model_poll": None, "testnet": False,
                        "venue_symbols": {"BTCUSDT": "BTC/USDT:USDT"}, "venue_urls": fa.urls(),
                        "venue_config": {"rateLimit": 1, "options": {"defaultType": "swap", "fetchCurrencies": False,
                                                                     "fetchMarkets": {"types": ["linear"]}}}},
        }
        cfg_path = tmp_path / "c.yaml"
        cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        cfg = load_config(cfg_path)
        fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
        model = build_onnx_policy(tmp_path / "ob.onnx", fs.names, ["BTCUSDT"], spec_hash=fs.spec_hash, gain=3.0)
        journal = tmp_path / "j.sqlite"
        assert dea_main(["serve", "--config", str(cfg_path), "--model", str(model), "--feed", f"replay:{capture}",
                         "--exchange", "ccxt:binance", "--journal", str(journal), "--max-events", "6000",
                         "--log-format", "text"]) == 0
        capsys.readouterr()
        store = ExecutionStore(journal)
        recs = store.parents()
        store.close()
        legs = [leg for r in recs for leg in r.detail["routes"]]
        assert len(recs) >= 3 and {leg["venue"] for leg in legs} == {"A", "B"}
        for r in recs:  # B's capped 0.02 first, A the rest of each child
            vs = {leg["venue"]: abs(leg["qty"]) for leg in r.detail["routes"]}
            assert vs["B"] == pytest.approx(min(0.02, abs(r.qty)))
        # the fakes quote the book the plan saw: every IOC leg fills in full (in lots: no float
        # noise for the venue to truncate a lot short)
        assert all(leg["filled"] == pytest.approx(leg["qty"], abs=1e-12) and leg["status"] == "filled" for leg in legs)
        assert fa.sim.position == pytest.approx(sum(leg["filled"] for leg in legs if leg["venue"] == "A"), abs=1e-9)
        assert fb.sim.position == pytest.approx(sum(leg["filled"] for leg in legs if leg["venue"] == "B"), abs=1e-9)
        with sqlite3.connect(journal) as db:
            led = db.execute("SELECT SUM(qty) FROM ledger WHERE kind='fill'").fetchone()[0]
        assert led == pytest.approx(fa.sim.position + fb.sim.position, abs=1e-9) and abs(led) > 0
        assert dea_main(["execution-report", str(journal), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
        assert "BTCUSDT/B" in capsys.readouterr().out
    finally:
        fa.close()
        fb.close()


def test_a_restarted_process_resending_a_routed_parent_trades_nothing_twice(fakes) -> None:  # noqa: ANN001
    """The leg ids derive from the child's deterministic id: a new process re-sending the same
    parent sends the same leg ids, each venue answers with the existing order, nothing trades
    again, and the fills come back under the same parent."""
    def process() -> WorkedExchange:
        adapters = {v: _adapter(f) for v, f in fakes.items()}
        w = WorkedExchange([Instrument(**PERP)], ExecutionConfig(routes=ROUTES), adapter=adapters["A"],
                           route_adapters=adapters)
        _feed(w)
        return w

    parent = Order("BTCUSDT", 0, 4.0, T0, T0, 59999.5, "dea-par-5")
    w = process()
    w.submit([parent])
    first = sorted((f.qty, f.price) for f in w.poll_fills(T0))
    w.close()
    n_fills = {v: len(f.sim.fills) for v, f in fakes.items()}
    w2 = process()
    w2.submit([parent])
    w2.before_decision(T0 + S)
    again = sorted((f.qty, f.price) for f in w2.poll_fills(T0 + S))
    assert {v: len(f.sim.fills) for v, f in fakes.items()} == n_fills  # nothing traded twice
    assert again == first and fakes["A"].sim.position + fakes["B"].sim.position == pytest.approx(4.0)
    w2.close()
