"""Cost calibration: the estimators on hand cases, on the real capture's trades and on a replay's
journaled fills, and the fragment read back by the config loader."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from dea.book.capture import parse_capture
from dea.config.experiment import load_config
from dea.errors import ConfigError, DataError
from dea.execution.calibration import from_capture_trades, from_parents, mean_ci, origin_fit
from dea.execution.replay import PRICE_SCALE, capture_messages, mid_path, run_parents
from dea.execution.schedule import ExecutionConfig

S = 1_000_000_000


def test_estimators_on_hand_cases() -> None:
    est = origin_fit([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert est.value == pytest.approx(2.0) and est.lo == pytest.approx(2.0) and est.n == 3  # exact line: no error
    rng = np.random.default_rng(7)
    x = rng.uniform(0.1, 1.0, 400)
    fit = origin_fit(x, 0.7 * x + rng.normal(0, 0.05, 400))
    assert fit.lo < 0.7 < fit.hi and fit.hi - fit.lo < 0.03
    m = mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303
    assert m.value == 2.0 and m.hi - 2.0 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    with pytest.raises(DataError, match="at least 2"):
        mean_ci([1.0])


def test_calibration_from_capture_and_replay_fills_feeds_the_config(shared_data, tmp_path) -> None:  # noqa: ANN001
    p = parse_capture(shared_data / "orderbook" / "binance_ws_2024" / "usdm_btcusdt_20240808.gz")
    msgs = capture_messages(p, end_ns=int(p.ev_time[0]) + 150 * S)
    times, mids = mid_path(msgs)
    # touch after every book message, for the half spread at each trade
    from dea.execution.queue import LimitOrderSimulator
    from dea.execution.replay import BookMsg, feed

    sim, bids, asks = LimitOrderSimulator(), [], []
    for m in msgs:
        if isinstance(m, BookMsg):
            feed(sim, m)
            if sim.mid() == sim.mid():
                bids.append(sim.best(1))
                asks.append(sim.best(-1))
    sel = p.tr_time <= times[-1]
    cal = from_capture_trades(times, mids, bids, asks, p.tr_time[sel].tolist(), (p.tr_px[sel] / PRICE_SCALE).tolist(),
                              p.tr_sz[sel].tolist(), p.tr_side[sel].tolist(), source="usdm_btcusdt_20240808")
    hs = cal.half_spread_bps
    assert hs.n > 1000 and 0.008 <= hs.lo <= hs.value <= hs.hi < 1.0  # BTCUSDT: mostly one 0.1 tick wide
    assert cal.impact_k.lo < cal.impact_k.value < cal.impact_k.hi and cal.impact_k.value > 0  # trades push the mid
    # the replay's journaled fills: immediate parents of growing size walk the book
    t0 = msgs[0].ts
    recs = run_parents(msgs, [(t0 + (10 + 10 * j) * S, (1 if j % 2 else -1) * (5.0 + 10 * j)) for j in range(10)],
                       ExecutionConfig(algo="immediate"))
    fit = from_parents(recs, cal.sigma, cal.adv, 1.0, "replay")
    assert fit.impact_k.n == 10 and fit.impact_k.value > 0
    assert fit.half_spread_bps.value == pytest.approx(np.mean([(f.touch - f.mid) * np.sign(f.qty) / f.mid * 1e4
                                                              for r in recs for f in r.fills]))
    frag = cal.write(tmp_path / "costs.calibrated.yaml")
    text = frag.read_text()
    assert "95% CI" in text and yaml.safe_load(text)["costs"]["impact"]["model"] == "sqrt"
    # an experiment that names the fragment is loaded with the calibrated costs
    cfg_path = tmp_path / "exp.yaml"
    shutil.copy("configs/demo.yaml", cfg_path)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["execution"] = {"cost_fragment": "costs.calibrated.yaml", "algo": "twap"}
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path)
    assert cfg.costs.half_spread_bps == pytest.approx(round(hs.value, 6))
    assert cfg.costs.impact.k == pytest.approx(round(cal.impact_k.value, 6)) and cfg.costs.impact.model == "sqrt"
    assert cfg.execution.algo == "twap"
    assert load_config(cfg_path, ["costs.half_spread_bps=3"]).costs.half_spread_bps == 3.0  # --set still wins
    (tmp_path / "costs.calibrated.yaml").write_text("risk: {max_exposure: 9}\n")
    with pytest.raises(ConfigError, match="exactly one mapping"):
        load_config(cfg_path)
