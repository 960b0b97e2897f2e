"""Cross-venue routing on a two-venue fake: by all-in price, within per-venue limits and lots."""

from __future__ import annotations

import pytest

from dea.errors import ExchangeError
from dea.execution.routing import VenueBook, route


def _venues(**b_limits) -> list[VenueBook]:  # noqa: ANN003
    a = VenueBook("A", bids=[(99.9, 3.0)], asks=[(100.0, 1.0), (101.0, 5.0)], taker_fee=0.0005)
    b = VenueBook("B", bids=[(99.95, 1.0), (99.0, 9.0)], asks=[(100.02, 2.0), (100.5, 3.0)], taker_fee=0.0002, **b_limits)
    return [a, b]


def test_split_by_all_in_price() -> None:
    # all-in asks: B 100.02 -> 100.040, A 100 -> 100.050, B 100.5 -> 100.520, A 101 -> 101.051
    plan = route(4.0, _venues())
    assert plan.by_venue() == pytest.approx({"A": 1.0, "B": 3.0})
    b = next(leg for leg in plan.legs if leg.venue == "B")
    assert b.avg_price == pytest.approx((2 * 100.02 + 100.5) / 3) and b.levels == 2 and b.worst_price == 100.5
    assert plan.unfilled == 0.0
    assert "fee 0.0002" in b.reason
    allin = (2 * 100.02 * 1.0002 + 1 * 100.0 * 1.0005 + 1 * 100.5 * 1.0002) / 4
    assert plan.all_in_price == pytest.approx(allin)


def test_per_venue_limits_lots_and_sells() -> None:
    plan = route(4.0, _venues(max_qty=2.5))
    assert plan.by_venue() == pytest.approx({"A": 1.5, "B": 2.5})  # B capped; A's 101 level takes the rest
    assert "max_qty" in next(leg for leg in plan.legs if leg.venue == "B").reason
    lots = route(4.0, _venues(lot=2.0))  # B can only trade multiples of 2: its 3 becomes 2
    assert lots.by_venue() == pytest.approx({"A": 2.0, "B": 2.0})
    sell = route(-5.0, _venues())  # all-in bids: B 99.95 -> 99.930, A 99.9 -> 99.850, B 99.0
    assert sell.by_venue() == pytest.approx({"A": -3.0, "B": -2.0})
    limited = route(-5.0, _venues(), limit_price=99.5)
    assert limited.unfilled == pytest.approx(1.0) and limited.by_venue() == pytest.approx({"A": -3.0, "B": -1.0})
    small = route(4.0, _venues(min_notional=350.0))  # B's 3 (~300) is below its minimum: all to A
    assert small.by_venue() == pytest.approx({"A": 4.0})
    with pytest.raises(ExchangeError, match="repeat"):
        route(1.0, [_venues()[0], _venues()[0]])


def test_routes_from_config() -> None:
    from dea.execution.config import ExecutionConfig
    from dea.execution.routing import venue_books

    cfg = ExecutionConfig(routes={"BTCUSDT": [{"venue": "A", "taker_fee": 0.0005},
                                              {"venue": "B", "taker_fee": 0.0002, "max_qty": 2.5}]})
    v = _venues()
    books = {"A": (v[0].bids, v[0].asks), "B": (v[1].bids, v[1].asks)}
    assert route(4.0, venue_books(cfg, "BTCUSDT", books)).by_venue() == pytest.approx({"A": 1.5, "B": 2.5})
    with pytest.raises(ExchangeError, match="no book from venue B"):
        venue_books(cfg, "BTCUSDT", {"A": books["A"]})
    with pytest.raises(Exception, match="extra|not permitted"):
        ExecutionConfig(routes={"BTCUSDT": [{"venue": "A", "fee": 1}]})
