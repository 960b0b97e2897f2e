"""The configured execution in use: ``dea serve`` (paper venue) and ``dea backtest`` work each
order as a parent by ``execution.algo`` on the real USDT-M BTCUSDT capture, journal it, and
``dea execution-report`` reads their journals; the working parent is cancelled on a new target;
every child passes the risk engine."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from dea.cli.main import main as dea_main
from dea.config import load_config
from dea.features.featureset import FeatureSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from serving_helpers import build_onnx_policy  # noqa: E402

S = 1_000_000_000
CONFIG = """
name: worked-{algo}
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
execution: {{algo: {algo}, passive_timeout: {timeout}, horizon: 4s, slices: 2}}
backtest: {{baselines: []}}
serving: {{journal_sync: normal, model_poll: null}}
"""


def _setup(tmp_path: Path, shared_data: Path, algo: str, timeout: str = "3s") -> tuple[Path, Path]:
    capture = shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz"
    cfg_path = tmp_path / f"{algo}.yaml"
    cfg_path.write_text(CONFIG.format(algo=algo, capture=capture, timeout=timeout))
    cfg = load_config(cfg_path)
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    model = build_onnx_policy(tmp_path / "ob.onnx", fs.names, ["BTCUSDT"], spec_hash=fs.spec_hash, gain=3.0)
    return cfg_path, model


def _serve(cfg_path: Path, model: Path, journal: Path, capsys, events: int = 30000) -> dict:  # noqa: ANN001
    capture = load_config(cfg_path).data.sources[0].path
    code = dea_main(["serve", "--config", str(cfg_path), "--model", str(model), "--feed", f"replay:{capture}",
                     "--exchange", "paper", "--journal", str(journal), "--max-events", str(events), "--log-format", "text"])
    assert code == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def _rows(journal: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(journal) as db:
        return db.execute(sql).fetchall()


def test_serve_works_orders_passive_then_aggressive_and_reports(shared_data, tmp_path, capsys) -> None:  # noqa: ANN001
    cfg_path, model = _setup(tmp_path, shared_data, "passive_aggressive")
    journal = tmp_path / "j.sqlite"
    report = _serve(cfg_path, model, journal, capsys)
    run = report["this_run"]
    assert run["orders"] > 10 and run["fills"] > run["orders"]  # parents filled in several child fills
    parents = _rows(journal, "SELECT parent_id, qty, algo, status FROM exec_parents")
    orders = {r[0]: r[1] for r in _rows(journal, "SELECT client_id, qty FROM orders")}
    assert len(parents) >= run["orders"] - 1 and all(a == "passive_aggressive" for _, _, a, _ in parents)
    # every parent is one order of the loop (its client id), carrying the rest of a replaced one
    assert {p for p, *_ in parents} <= set(orders)
    children = _rows(journal, "SELECT parent_id, kind, tif, qty, price, status FROM exec_orders ORDER BY client_id")
    firsts = {}
    for pid, kind, tif, qty, px, status in children:
        firsts.setdefault(pid, (kind, tif, px))
    assert all(k == "limit" and tif == "GTX" and px > 0 for k, tif, px in firsts.values())  # post at the touch first
    assert {"limit", "market"} <= {c[1] for c in children}  # and crossed after the timeout where needed
    # the loop's ledger is the desk's fills (under the parent ids): same quantity, same fees
    led = _rows(journal, "SELECT SUM(qty), SUM(fee), COUNT(*) FROM ledger WHERE kind='fill'")[0]
    ex = _rows(journal, "SELECT SUM(qty), SUM(fee), COUNT(*) FROM exec_fills")[0]
    assert led[2] == ex[2] == run["fills"]
    assert led[0] == pytest.approx(ex[0], abs=1e-9) and led[1] == pytest.approx(ex[1], rel=1e-12)
    # no parent executes more than it was asked for
    for pid, qty, _, _ in parents:
        got = _rows(journal, f"SELECT COALESCE(SUM(qty), 0) FROM exec_fills WHERE parent_id='{pid}'")[0][0]
        assert abs(got) <= abs(qty) + 1e-9 and got * qty >= 0
    maker = _rows(journal, "SELECT SUM(maker), COUNT(*) FROM exec_fills")[0]
    assert 0 < maker[0] < maker[1]  # both resting and crossing fills
    # the execution report reads the served journal
    out = tmp_path / "report"
    assert dea_main(["execution-report", str(journal), "--out", str(out), "--no-plots"]) == 0
    summary = json.loads((out / "execution_summary.json").read_text())
    agg = summary["passive_aggressive"]
    assert agg["parents"] == len(parents) and agg["fees_bps"] < 5.0  # maker fills earned part of the fee
    assert agg["total_bps"] == pytest.approx(agg["spread_bps"] + agg["impact_bps"] + agg["timing_bps"]
                                             + agg["fees_bps"] + agg["opportunity_bps"], abs=1e-9)


def test_serve_cancels_the_working_parent_on_a_new_target(shared_data, tmp_path, capsys) -> None:  # noqa: ANN001
    # a 60 s passive timeout outlives the 5 s decisions: targets change before parents finish
    cfg_path, model = _setup(tmp_path, shared_data, "passive_aggressive", timeout="60s")
    journal = tmp_path / "j.sqlite"
    _serve(cfg_path, model, journal, capsys, events=20000)
    parents = _rows(journal, "SELECT parent_id, status, t_arrival, t_end FROM exec_parents ORDER BY t_arrival")
    cancelled = [p for p in parents if p[1] == "cancelled"]
    assert len(cancelled) >= 3
    # a cancelled parent ends when the next one starts: never two working at once
    starts = [p[2] for p in parents]
    for pid, _, t0, t_end in cancelled:
        nxt = next((t for t in starts if t > t0), None)
        if nxt is None:
            continue  # the last one: cancelled when the run ended
        assert t_end <= nxt or _rows(journal, f"SELECT MAX(ts) FROM exec_fills WHERE parent_id='{pid}'")[0][0] <= nxt
    # its children were cancelled at the venue, none left working
    kids = _rows(journal, "SELECT o.status FROM exec_orders o JOIN exec_parents p USING(parent_id) "
                          "WHERE p.status='cancelled'")
    assert kids and all(s in ("cancelled", "filled") for (s,) in kids)
    # the position is the sum of every fill (carried rests were not ordered twice)
    pos = _rows(journal, "SELECT SUM(qty) FROM ledger WHERE kind='fill'")[0][0]
    assert abs(pos) <= 0.5 * 1_000_000 / 60_000 * 1.05  # within max_exposure of the equity


def test_backtest_works_orders_on_the_capture(shared_data, tmp_path, capsys) -> None:  # noqa: ANN001
    cfg_path, model = _setup(tmp_path, shared_data, "twap")
    out = tmp_path / "bt"
    code = dea_main(["backtest", "--config", str(cfg_path), "--policy", str(model), "--closed-loop", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "parent orders worked by execution.algo=twap on the capture's book" in text
    journal = out / "execution.sqlite"
    parents = _rows(journal, "SELECT parent_id, qty, algo, detail FROM exec_parents")
    assert len(parents) > 20 and {a for _, _, a, _ in parents} == {"twap"}
    n_children = [json.loads(d)["children"] for *_, d in parents]
    assert max(n_children) == 2 and min(n_children) >= 1  # two slices, or one when replaced after the first
    for pid, qty, _, _ in parents:  # TWAP slices are market children: never more than the parent
        got = _rows(journal, f"SELECT COALESCE(SUM(qty), 0), COALESCE(SUM(maker), 0) FROM exec_fills WHERE parent_id='{pid}'")[0]
        assert abs(got[0]) <= abs(qty) + 1e-9 and got[1] == 0
    assert dea_main(["execution-report", str(journal), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    summary = json.loads((tmp_path / "rep" / "execution_summary.json").read_text())
    assert summary["twap"]["parents"] == len(parents) and summary["twap"]["fill_rate"] > 0.9
    series = np.genfromtxt(next(out.glob("*equity*.csv")), delimiter=",", names=True)
    assert len(series) > 20


def test_worked_venue_bounds_every_child_by_the_risk_engine() -> None:
    from dea.book.events import DepthSnapshot
    from dea.execution.orders import Order
    from dea.execution.schedule import ExecutionConfig
    from dea.instruments import Instrument
    from dea.risk.config import RiskConfig
    from dea.risk.engine import RiskEngine
    from serving.exchanges.worked import WorkedExchange

    perp = Instrument(symbol="BTCUSDT", kind="perpetual", funding="none", lot_size=0.001, tick_size=0.1)
    ex = WorkedExchange([perp], ExecutionConfig(algo="twap", horizon="10s", slices=2))
    ex.on_depth(0, DepthSnapshot(0, 0, 1, ((100.0, 50.0),), ((100.2, 50.0),)))
    engine = RiskEngine(RiskConfig(max_exposure=0.5, max_gross=0.5, max_net=0.5, max_leverage=1.0,
                                   drawdown={"enabled": False}), [perp])
    qty = [0.0]
    ex.bind_risk(engine, lambda: qty, lambda: 1000.0, lambda: [100.1])  # equity 1000: at most ~5 units
    acks = ex.submit([Order("BTCUSDT", 0, 8.0, S, S, 100.1, "p1")])
    assert acks[0].status == "sent"
    fills = ex.poll_fills(S)
    assert sum(f.qty for f in fills) == pytest.approx(4.0)  # first slice: half of 8, inside the cap
    assert {f.client_id for f in fills} == {"p1"}  # reported under the parent (the loop's order)
    qty[0] = 4.0
    ex.before_decision(6 * S)  # second slice: the engine lets ~1 of the remaining 4 through
    second = sum(f.qty for f in ex.poll_fills(6 * S))
    assert 0.9 < second < 1.1
    assert 4.0 + second <= 0.5 * 1000.0 / 100.1 * 1.001
    ex.close()
    rec = ex.records()[-1]
    assert rec.detail["risk_clipped"] == pytest.approx(8.0 - 4.0 - second, abs=1e-9)


def test_serve_restart_on_the_same_journal_trades_nothing_twice(shared_data, tmp_path, capsys) -> None:  # noqa: ANN001
    cfg_path, model = _setup(tmp_path, shared_data, "passive_aggressive")
    journal = tmp_path / "j.sqlite"
    _serve(cfg_path, model, journal, capsys, events=12000)
    first = {f for (f,) in _rows(journal, "SELECT fill_id FROM exec_fills")}
    _serve(cfg_path, model, journal, capsys, events=30000)  # a new process resumes the journal
    kinds = {k for (k,) in _rows(journal, "SELECT kind FROM events")}
    assert {"restart", "venue_restored", "reconciled"} <= kinds
    led = _rows(journal, "SELECT COUNT(*), SUM(qty) FROM ledger WHERE kind='fill'")[0]
    ex = _rows(journal, "SELECT COUNT(*), SUM(qty) FROM exec_fills")[0]
    assert led[0] == ex[0] > len(first) and led[1] == pytest.approx(ex[1], abs=1e-9)
    assert first <= {f for (f,) in _rows(journal, "SELECT fill_id FROM exec_fills")}
    # every child order once, none still working after the run closed
    kids = _rows(journal, "SELECT status FROM exec_orders")
    assert kids and all(s in ("filled", "cancelled", "expired", "rejected") for (s,) in kids)
