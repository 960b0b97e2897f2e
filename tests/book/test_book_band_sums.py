"""The live book's tracked depth sums and lazily computed state equal a fresh computation exactly.

:meth:`L2Book.band_units` keeps running integer sums for the bounds last asked for and moves them;
:class:`OrderbookFeatureStream` computes the book-state fields when a decision reads them. Both
are shortcuts of the live path, so both are held to the plain computation, bit for bit.
"""

from __future__ import annotations

import random

import numpy as np
from book_testdata import SPOT, USDM

from dea.book.events import DepthDiff, DepthSnapshot, Trade
from dea.book.formulas import size_units
from dea.book.l2 import ASK, BID, L2Book
from dea.features.orderbook import OrderbookFeatureStream, OrderbookParams


def _random_side(rng: random.Random, lo: int, hi: int, k: int) -> list[tuple[float, float]]:
    return [(round(rng.randint(lo, hi) * 0.1, 1), rng.choice([0.0, 0.0, round(rng.uniform(0.001, 5.0), 3)])) for _ in range(k)]


def test_tracked_band_sums_equal_a_fresh_scan_under_random_updates() -> None:
    rng = random.Random(11)
    book = L2Book()
    book.load(_random_side(rng, 9000, 9990, 400), _random_side(rng, 10010, 11000, 400))
    checked = 0
    for step in range(3000):
        op = rng.random()
        if op < 0.002:
            book.load(_random_side(rng, 9000, 9990, 300), _random_side(rng, 10010, 11000, 300))
        elif op < 0.003:
            book.clear()
        else:  # a diff concentrated near the touch, as real ones are
            book.apply(_random_side(rng, 9700, 10000, 8), _random_side(rng, 10000, 10300, 8))
        if step % 3 == 0:
            mid = 1000.0 + rng.uniform(-15.0, 15.0)
            bids = [mid * (1.0 - f) for f in (5e-4, 25e-4, 1e-2)]
            asks = [mid * (1.0 + f) for f in (5e-4, 25e-4, 1e-2)]
            assert book.band_units(BID, bids) == [book.units_within(BID, b) for b in bids]
            assert book.band_units(ASK, asks) == [book.units_within(ASK, a) for a in asks]
            checked += 1
    assert checked == 1000
    # unsorted and NaN bounds are answered too
    assert book.band_units(BID, [990.0, 999.0, 980.0]) == [book.units_within(BID, b) for b in (990.0, 999.0, 980.0)]
    assert book.band_units(ASK, [float("nan")]) == [book.units_within(ASK, float("nan"))]


def test_level_units_are_size_units_of_the_float_sizes() -> None:
    rng = random.Random(3)
    book = L2Book()
    bids = [(100.0 - i * 0.5, round(rng.uniform(0.0001, 50.0), 8)) for i in range(20)]
    asks = [(101.0 + i * 0.5, round(rng.uniform(0.0001, 50.0), 8)) for i in range(20)]
    book.load(bids, asks)
    px, qs, units = book.top(BID, 7)
    assert px == [p for p, _ in bids[:7]] and qs == [q for _, q in bids[:7]]
    assert units == [size_units(q) for q in qs] == book.level_units(BID, 7)
    assert book.level_units(ASK, 50) == [size_units(q) for _, q in asks]
    assert book.units_within(ASK, 103.0) == sum(size_units(q) for p, q in asks if p <= 103.0)


def _events(stream_events, name: str, n: int) -> list:
    return [e for e in stream_events(name)[:n] if isinstance(e, (DepthSnapshot, DepthDiff, Trade))]


def test_lazy_state_equals_state_read_after_every_event(stream_events) -> None:
    """Reading the features after every event (bands moved on every diff) and reading them only
    at decision times (bands moved once per decision) give identical values at those times."""
    params = OrderbookParams(levels=(1, 3, 10), bands_bps=(2.0, 5.0, 25.0), rv_horizons=("1s", "10s"))
    for name in (USDM, SPOT):
        evs = _events(stream_events, name, 25_000)
        eager, lazy = OrderbookFeatureStream(params), OrderbookFeatureStream(params)
        t_next = evs[0].available_at + 250_000_000
        compared = 0
        for ev in evs:
            if ev.available_at > t_next:
                a, b = eager.snapshot_values(t_next), lazy.snapshot_values(t_next)
                assert np.array_equal(np.array(a), np.array(b), equal_nan=True), f"{name} at {t_next}"
                compared += int(np.isfinite(a[params.field_names().index("ob.depth_25bps")]))
                eager.reset_interval()
                lazy.reset_interval()
                t_next += 250_000_000
            for s in (eager, lazy):
                if isinstance(ev, Trade):
                    s.on_trade(ev)
                else:
                    s.on_book(ev)
            eager.snapshot_values(ev.available_at)
        assert compared > 100
