"""The option overlay in the backtest: priced, marked and settled by hand; the vega budget binding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from dea.backtest.options_overlay import OptionFeeConfig, OverlayLegConfig, SnapshotMarks, run_experiment, run_overlay
from dea.data.loaders.options_chain import load_deribit_ticker
from dea.errors import DataError
from dea.options import parse_option_name, price
from dea.risk.greeks import GreekBudgetConfig
from dea.timeutil import NS_PER_DAY, parse_timestamp

T0 = parse_timestamp("2024-01-01T08:00:00Z")
DAYS = np.array([T0, T0 + NS_PER_DAY, T0 + 2 * NS_PER_DAY])
NO_FEES = OptionFeeConfig(rate=0, delivery_rate=0, cap_of_premium=0)
LEG = OverlayLegConfig(strategy="protective_put", moneyness=1.0, tenor="2d", strike_step=1.0)


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_put_priced_marked_and_settled_by_hand() -> None:
    res = run_overlay(DAYS, [100.0, 90.0, 80.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], LEG, GreekBudgetConfig(), NO_FEES, initial_equity=10_000.0)
    # roll at day 0: 10,000 / 100 = 100 puts struck 100, 2 days; ATM premium F (2 N(s sqrt(T)/2) - 1)
    p0 = 100 * (2 * _phi(0.5 * math.sqrt(2 / 365) / 2) - 1)
    roll, settle = res.events[0], res.events[1]
    assert (roll["contracts"], roll["premium_usd"]) == (100.0, pytest.approx(p0, rel=1e-12))
    assert parse_option_name(roll["instrument"]).strike == 100.0
    assert parse_option_name(roll["instrument"]).expiry_ns == DAYS[2]
    # day 1: the perpetual loses 10%, the put is marked at Black-76 with one day left
    v1 = float(price(90.0, 100.0, 1 / 365, 0.5, False))
    e1 = 10_000 - 1_000 + 100 * (v1 - p0)
    assert res.equity[1] == pytest.approx(e1, rel=1e-12)
    # day 2: expiry, the put pays 100 - 80 = 20 per contract
    e2 = e1 + e1 * (80 / 90 - 1) + 100 * (20 - v1)
    assert (settle["event"], settle["payoff"]) == ("settle", 20.0)
    assert res.equity[2] == pytest.approx(e2, rel=1e-12)
    alone = run_overlay(DAYS, [100.0, 90.0, 80.0], [0.5] * 3, [1.0] * 3, None, GreekBudgetConfig(), NO_FEES, initial_equity=10_000.0)
    assert alone.equity[2] == pytest.approx(8_000.0) and res.equity[2] > alone.equity[2]


def test_option_fee_is_capped_by_the_premium() -> None:
    fees = OptionFeeConfig(rate=0.0003, delivery_rate=0.0, cap_of_premium=0.125)
    far_otm = OverlayLegConfig(strategy="protective_put", moneyness=0.5, tenor="2d", strike_step=1.0)
    res = run_overlay(DAYS, [100.0, 100.0, 100.0], [0.5] * 3, [1.0] * 3, far_otm, GreekBudgetConfig(), fees, initial_equity=10_000.0)
    roll = res.events[0]
    assert res.fees == pytest.approx(100 * min(0.0003 * 100, 0.125 * roll["premium_usd"]))
    assert res.fees < 100 * 0.0003 * 100  # the far-out-of-the-money premium caps it


def test_vega_budget_limits_the_overlay() -> None:
    budgets = GreekBudgetConfig(max_vega=0.0002, contract_step=0.1)
    # unbudgeted, 100 at-the-money 2-day puts would carry ~3e-4 of equity per vol point
    res = run_overlay(DAYS, [100.0, 101.0, 99.0], [0.8] * 3, [1.0] * 3, LEG, budgets, NO_FEES, initial_equity=10_000.0)
    roll = res.events[0]
    assert roll["binding"] == ["vega"] and 0 < roll["contracts"] < roll["requested"]
    assert res.vega[0] <= 0.0002 + 1e-12
    assert res.vega[0] > 0.0002 - 0.1 * res.vega[0] / roll["contracts"] - 1e-12  # within one step of it


def test_snapshot_marks_come_first(shared_data: Path) -> None:
    chain, _ = load_deribit_ticker(shared_data / "options" / "deribit_btc_chain_20210211.csv")
    marks = SnapshotMarks.from_chain(chain, max_age="1h")
    first = chain.filter(pc.equal(chain["instrument"], "BTC-13FEB21-37500-C")).to_pylist()
    t = first[0]["available_at"]
    assert marks.lookup("BTC-13FEB21-37500-C", t) == pytest.approx(first[0]["mark_price"] * first[0]["underlying_price"])
    assert math.isnan(marks.lookup("BTC-13FEB21-37500-C", t - 1))  # not known yet
    assert math.isnan(marks.lookup("BTC-13FEB21-37500-C", t + 2 * 3_600_000_000_000))  # too old
    assert math.isnan(marks.lookup("BTC-13FEB21-99999-C", t))
    # the overlay prices its put from a snapshot where one exists, from the IV input otherwise
    name = "BTC-3JAN24-100-P"
    snap = SnapshotMarks(np.array([name], dtype=object), np.array([DAYS[1]]), np.array([12.5]), NS_PER_DAY)
    res = run_overlay(DAYS, [100.0, 90.0, 80.0], [0.5] * 3, [1.0] * 3, LEG, GreekBudgetConfig(), NO_FEES, initial_equity=10_000.0, marks=snap)
    assert res.events[0]["instrument"] == name and res.priced_from == {"snapshot": 1, "model": 1}
    p0 = res.events[0]["premium_usd"]
    assert res.equity[1] == pytest.approx(10_000 - 1_000 + 100 * (12.5 - p0), rel=1e-12)


def test_worked_example_config(repo_root: Path, shared_data: Path) -> None:
    cfg, res, alone = run_experiment(repo_root / "configs" / "btc_put_overlay.yaml")
    s = res.summary()
    assert s["rolls"] >= 14 and s["vega_bound_rolls"] >= 1
    rolls = [i for i, t in enumerate(res.ts) if any(e["event"] == "roll" and e["ts"] == t for e in res.events)]
    assert np.all(res.vega[rolls] <= cfg.budgets.max_vega + 1e-12)
    # the puts' delta lowers the exposure to BTC below the perpetual's
    held = res.option_contracts > 0
    assert np.all(res.total_delta[held] <= res.perp_exposure[held])
    assert np.mean(res.perp_exposure[held] - res.total_delta[held]) > 0.05
    assert len(res.equity) == len(alone.equity) and alone.summary()["rolls"] == 0


def test_cli_writes_exposure_and_equity(repo_root: Path, shared_data: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    import json

    from dea.cli.main import main

    assert main(["options-overlay", str(repo_root / "configs" / "btc_put_overlay.yaml"), "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"with_overlay", "perp_only"}
    exposure = (tmp_path / "btc_put_overlay_exposure.csv").read_text().splitlines()
    equity = (tmp_path / "btc_put_overlay_equity.csv").read_text().splitlines()
    assert exposure[0] == "ts,perp_exposure,option_contracts,option_delta,total_delta,vega"
    assert equity[0] == "ts,equity_with_overlay,equity_perp_only" and len(equity) == len(exposure) > 400
    last = equity[-1].split(",")
    assert float(last[1]) == pytest.approx(1e6 * (1 + printed["with_overlay"]["total_return"]), rel=1e-6)
    summary = json.loads((tmp_path / "btc_put_overlay_summary.json").read_text())
    assert sum(e["event"] == "roll" for e in summary["events"]) == printed["with_overlay"]["rolls"]


def test_overlay_config_refuses_unknown_keys(tmp_path: Path) -> None:
    from dea.backtest.options_overlay import load_config
    from dea.errors import ConfigError

    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nprices: {name: p, kind: bars, format: freqtrade, path: p.feather}\nstart: '2024-01-01'\nend: '2024-02-01'\n"
                 "exposure: 1.0\noverlay: {strategy: protective_put, moneyness: 0.9, tenr: 28d}\niv: {flat: 0.5}\n")
    with pytest.raises(ConfigError, match="overlay.tenr: unknown key"):
        load_config(f)
    f.write_text(f.read_text().replace("tenr: 28d", "tenor: 28d").replace("iv: {flat: 0.5}", "iv: {}"))
    with pytest.raises(ConfigError, match="exactly one of iv.dvol"):
        load_config(f)


def test_covered_call_sold_and_assigned_by_hand() -> None:
    leg = OverlayLegConfig(strategy="covered_call", moneyness=1.0, tenor="2d", strike_step=1.0)
    res = run_overlay(DAYS, [100.0, 110.0, 120.0], [0.5] * 3, [1.0] * 3, leg, GreekBudgetConfig(), NO_FEES, initial_equity=10_000.0)
    c0 = 100 * (2 * _phi(0.5 * math.sqrt(2 / 365) / 2) - 1)
    assert res.events[0]["contracts"] == -100.0 and res.events[0]["premium_usd"] == pytest.approx(c0, rel=1e-12)
    v1 = float(price(110.0, 100.0, 1 / 365, 0.5, True))
    e1 = 10_000 + 1_000 - 100 * (v1 - c0)
    e2 = e1 + e1 * (120 / 110 - 1) - 100 * (20 - v1)  # the call is assigned: pays 120 - 100
    assert res.equity[1] == pytest.approx(e1, rel=1e-12) and res.equity[2] == pytest.approx(e2, rel=1e-12)
    assert res.events[1]["payoff"] == 20.0 and res.option_delta[0] < 0


def test_no_overlay_without_a_long_position() -> None:
    res = run_overlay(DAYS, [100.0, 90.0, 80.0], [0.5] * 3, [-1.0, 0.0, 0.0], LEG, GreekBudgetConfig(), NO_FEES, initial_equity=10_000.0)
    assert res.events == [] and not res.option_contracts.any()
    with pytest.raises(DataError, match="iv must be finite and positive"):
        run_overlay(DAYS, [100.0, 90.0, 80.0], [0.5, np.nan, 0.5], [1.0] * 3, LEG, GreekBudgetConfig(), NO_FEES)


def test_perpetual_pays_funding_held_across_settlements() -> None:
    import pyarrow as pa

    from dea.backtest.options_overlay import funding_per_step
    from dea.guards import GuardsConfig, MarketGuard

    h8 = 8 * 3_600_000_000_000
    settle = DAYS[0] + h8 * np.arange(0, 7)  # 08:00 day 0 .. 08:00 day 2
    table = pa.table({"ts_event": settle, "available_at": settle, "rate": [9.0, 1e-4, 2e-4, 3e-4, 1e-4, 1e-4, 1e-4], "interval_ns": [h8] * 7})
    rates = funding_per_step(DAYS, table, MarketGuard(GuardsConfig(), ["BTC"]))
    # the 08:00 day-0 settlement is not held across (nothing is held before the first decision)
    np.testing.assert_allclose(rates, [0.0, 6e-4, 3e-4])
    res = run_overlay(DAYS, [100.0, 110.0, 110.0], [0.5] * 3, [1.0] * 3, None, GreekBudgetConfig(), NO_FEES, initial_equity=10_000.0, funding=rates)
    e1 = 10_000 * (1 + 0.1) - 10_000 * 6e-4
    assert res.equity[1] == pytest.approx(e1) and res.equity[2] == pytest.approx(e1 * (1 - 3e-4))
    assert res.funding_paid == pytest.approx(10_000 * 6e-4 + e1 * 3e-4)
    gap = table.filter(pa.array([i != 3 and i != 4 for i in range(7)]))
    with pytest.raises(DataError, match="funding has no settlement between"):
        funding_per_step(DAYS, gap, MarketGuard(GuardsConfig(), ["BTC"]))


@pytest.mark.parametrize("strike,expected", [(40_000.0, "BTC-3JAN24-40000-P"), (0.625, "BTC-3JAN24-0d625-P"), (1_250_000.0, "BTC-3JAN24-1250000-P")])
def test_generated_names_parse_back(strike: float, expected: str) -> None:
    from dea.backtest.options_overlay import _option_name

    name = _option_name("BTC", int(DAYS[2]), strike, False)
    assert name == expected
    c = parse_option_name(name)
    assert (c.strike, c.expiry_ns, c.is_call) == (strike, DAYS[2], False)


TARDIS_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,last_price,bid_price,"
    "bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,"
    "gamma,vega,theta,rho\n"
)


def test_worked_example_with_a_chain_source_prices_from_its_marks(repo_root: Path, shared_data: Path, tmp_path: Path) -> None:
    """The worked example with ``marks:`` a Tardis options_chain file holding one mark of the first
    put, a day after it was bought: that decision is priced from the snapshot (2,000 USD = 0.05 BTC
    at a 40,000 forward), every other from DVOL, and the equity moves by the difference."""
    import yaml

    from dea.backtest.options_overlay import run_experiment

    raw = yaml.safe_load((repo_root / "configs" / "btc_put_overlay.yaml").read_text())
    for key in ("prices", "funding"):
        raw[key]["path"] = str((repo_root / "configs" / raw[key]["path"]).resolve())
    raw["iv"]["dvol"] = str((repo_root / "configs" / raw["iv"]["dvol"]).resolve())
    raw["end"] = "2023-04-10"
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(raw))
    _, base, _ = run_experiment(plain)
    roll = next(e for e in base.events if e["event"] == "roll")
    opt = parse_option_name(roll["instrument"])
    t = int(base.ts[1])  # the decision after the roll
    us = t // 1000
    row = (f"deribit,{opt.name},{us},{us},put,{opt.strike:g},{opt.expiry_ns // 1000},1,0.05,0.049,1,50,0.051,1,52,"
           f"0.05,51,BTC-index,40000,-0.2,0.0001,20,-30,-1\n")
    (tmp_path / "chain.csv").write_text(TARDIS_HEADER + row)
    raw["marks"] = {"name": "chain", "kind": "option_chain", "format": "tardis_options_chain", "path": str(tmp_path / "chain.csv")}
    marked = tmp_path / "marked.yaml"
    marked.write_text(yaml.safe_dump(raw))
    _, res, _ = run_experiment(marked)
    assert res.priced_from["snapshot"] == 1 and res.priced_from["model"] == base.priced_from["model"] - 1
    # the put marked at 2,000 USD instead of its model value: equity up by contracts x the difference
    d1 = res.equity[1] - base.equity[1]
    assert d1 > 0 and d1 / res.option_contracts[1] < 2_000.0
    # the next decision is model-priced again, so the revaluation reverses; what is left is the
    # perpetual's one-day return on the equity difference (exposure 1.0 of equity), a few % of it
    assert abs(res.equity[2] - base.equity[2]) < 0.1 * d1
