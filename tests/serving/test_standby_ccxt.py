"""Failover against a venue that outlives the primary: ``dea serve --exchange ccxt:binance`` on a
local fake of Binance USDT-M (127.0.0.1, ccxt's real binance class). The primary is SIGKILLed at
random points with a ``--standby`` following; the standby takes over, reconciles with the venue
by client id (orders the venue already has are not sent again, fills the primary never journaled
are), and the journal and the venue end exactly as an uninterrupted run's."""

from __future__ import annotations

import numpy as np
import pytest

from dea.config import load_config
from serving.failover import failover_trial, reference_run
from tests.serving.fake_binance import FAKE_ENV, failover_venue

pytest.importorskip("ccxt")


@pytest.fixture(scope="module")
def venue(tmp_path_factory, repo_root):
    from serving_helpers import export_config_policy

    tmp = tmp_path_factory.mktemp("ccxt_failover")
    cfg_path, fake = failover_venue(tmp, repo_root, n_steps=350)
    model = export_config_policy(load_config(cfg_path), tmp / "m.onnx", seed=4)
    ref = reference_run(cfg_path, model, tmp / "ref.sqlite", exchange="ccxt:binance", env=FAKE_ENV)
    ref_position = fake.sim.position
    assert len(ref["fills"]) > 20 and fake.order_posts() == len(fake.ids) == len(ref["fills"])
    yield cfg_path, model, ref, ref_position, fake
    fake.close()


def test_primary_killed_at_random_points_against_a_fake_ccxt_venue(venue, tmp_path):
    cfg_path, model, ref, ref_position, fake = venue
    n = len(ref["decisions"])
    rng = np.random.default_rng(5)
    for k, kill_after in enumerate(sorted(int(x) for x in rng.integers(n // 5, (4 * n) // 5, size=2))):
        fake.reset()
        res = failover_trial(cfg_path, model, tmp_path / f"j{k}.sqlite", ref, kill_after, exchange="ccxt:binance",
                             env=FAKE_ENV)
        assert res.error is None and res.standby_rc == 0, res.error
        assert res.killed_after >= kill_after and res.took_over
        assert (res.lost_fills, res.duplicated_fills, res.extra_fills, res.duplicated_orders, res.wrong_decisions) == \
            (0, 0, 0, 0, 0), res
        assert res.detail["orders_equal"]
        # the venue saw each order exactly once (no re-send of what it had), holds the position the
        # uninterrupted run ended with, and every fill it made is journaled once
        assert fake.order_posts() == len(fake.ids) == len(ref["fills"])
        assert fake.sim.position == pytest.approx(ref_position)
        assert len(fake.sim.fills) == len(ref["fills"])


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("point", ["after_journal", "after_venue", "after_submit"])
def test_standby_reconciles_with_the_venue_at_each_write_ahead_point(venue, tmp_path, point):
    """In process, the primary dies at a chosen point of an order-sending decision: orders
    journaled but never sent are sent once by the standby; orders the venue took (the
    acknowledgement or the fill not journaled) are looked up by client id, not sent again, and
    their fills journaled from the venue's trades."""
    from serving.app import build_exchange
    from serving.feeds.replay import TableReplay, load_tables
    from serving.journal import Journal
    from serving.lease import LeaseKeeper
    from serving.loop import LiveLoop
    from serving.runner import PolicyRunner
    from serving.standby import StandbyLoop

    cfg_path, model, ref, ref_position, fake = venue
    cfg = load_config(cfg_path)
    tables = load_tables(cfg)
    ttl = 300_000_000

    def loop(cls, journal, **kw):
        replay = TableReplay(cfg.data, tables)
        lp = cls(cfg, PolicyRunner.from_path(model), build_exchange("ccxt:binance", cfg), journal,
                 clock_start=replay.clock_start, clock_end=replay.clock_end, native_steps=replay.native_steps, **kw)
        return lp, replay.events(lp.panel)

    fake.reset()
    mp = pytest.MonkeyPatch()
    for k, v in FAKE_ENV.items():
        mp.setenv(k, v)
    try:
        path = tmp_path / "j.sqlite"
        jp = Journal(path, synchronous="NORMAL")
        jp.acquire_lease("primary", ttl)
        sending = {"n": 0}

        def hook(where, t):
            if where == "after_journal" and any(o.t_decision == t for o in jp.orders(["new"])):
                sending["n"] += 1
            if sending["n"] == 8 and where == point:
                raise Crash(t)

        primary, events = loop(LiveLoop, jp, crash_hook=hook)
        with pytest.raises(Crash) as died:
            primary.run(events)
        t_kill = int(str(died.value))
        posts_before = fake.order_posts()
        jr = Journal(path, synchronous="NORMAL")
        keeper = LeaseKeeper(jr, ttl, holder="standby")
        standby, events = loop(StandbyLoop, jr, keeper=keeper)
        try:
            s = standby.run(events)
        finally:
            keeper.release()
    finally:
        mp.undo()
    assert s.reconciled == 1 and jr.events("standby_takeover")[0]["detail"]["last_journaled"] == t_kill
    assert s.resent == (1 if point == "after_journal" else 0)
    assert posts_before == 8 - (1 if point == "after_journal" else 0)  # the 8th order-sending decision
    from serving.failover import journal_state

    assert journal_state(path, fill_times=False) == ref
    assert fake.order_posts() == len(fake.ids) == len(ref["fills"])  # none sent twice, none lost
    assert fake.sim.position == pytest.approx(ref_position)


def test_venue_settings_refuse_credentials_and_plain_http_off_loopback():
    from pydantic import ValidationError

    from dea.config.serving import ServingConfig
    from dea.errors import ExchangeError
    from serving.exchanges.ccxt_exchange import CcxtExchange

    with pytest.raises(ValidationError, match=r"must not hold credentials \(\['secret'\]\)"):
        ServingConfig(venue_config={"secret": "s", "rateLimit": 5})
    with pytest.raises(ExchangeError, match="urls.api.fapiPrivate = http://gateway.example.com/fapi/v1 is not TLS"):
        CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, testnet=False,
                     api_urls={"fapiPrivate": "http://gateway.example.com/fapi/v1"})
    ex = CcxtExchange("binance", {"BTCUSDT": "BTC/USDT:USDT"}, testnet=True, options={"rateLimit": 7},
                      api_urls={"fapiPrivate": "https://gateway.example.com/fapi/v1"})
    assert ex.client.urls["api"]["fapiPrivate"] == "https://gateway.example.com/fapi/v1"  # after the sandbox switch
    assert ex.client.rateLimit == 7 and ex.client.enableRateLimit is True
