"""Order-book features: streaming == replay on the real captures, hand-checked values on a tiny
book, the sampling contract, no look-ahead, and the table / panel call forms."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from book_testdata import COINM, SPOT, USDM

from dea.book.events import DepthDiff, DepthSnapshot, Trade
from dea.data.loaders.binance_ws import load_capture
from dea.data.schema import SCHEMAS
from dea.errors import LeakageError
from dea.features.orderbook import (
    OrderbookFeatureStream,
    OrderbookParams,
    capture_panel_fields,
    orderbook_panel_fields,
    stream_capture,
)


def assert_parity(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        assert np.array_equal(np.isnan(x), np.isnan(y)), f"{name}: NaN patterns differ"
        ok = ~np.isnan(x)
        scale = np.maximum(np.abs(x[ok]), np.abs(y[ok]))
        diff = np.abs(x[ok] - y[ok])
        assert np.all(diff <= rtol * scale), f"{name}: max rel diff {np.max(diff / np.where(scale > 0, scale, 1)):.3g}"


@pytest.mark.parametrize("name,step_ms", [(USDM, 100), (SPOT, 250), (COINM, 250)])
def test_streaming_equals_replay_on_real_captures(parsed, stream_events, clock_for, name: str, step_ms: int) -> None:
    p = parsed(name)
    clock = clock_for(p, step_ms * 1_000_000)
    batch, info = capture_panel_fields(p, clock)
    stream = stream_capture(stream_events(name), clock)
    assert_parity(batch, stream)
    # the comparison is not vacuous: most rows are valid and the features move
    assert np.isfinite(batch["ob.imbalance_l10"]).mean() > 0.9
    assert np.isfinite(batch["ob.rv_1m"]).any() and np.nanstd(batch["ob.ofi"]) > 0
    assert info["crossed_books"] == 0


def test_table_path_equals_capture_path(ws_dir, parsed, clock_for) -> None:
    """Canonical tables (what the panel stores) replay to the same fields as the cached form."""
    p = parsed(USDM)
    clock = clock_for(p, 1_000_000_000)
    book = load_capture(ws_dir / USDM, "book", None, {"ticker_check": "off"})
    trades = load_capture(ws_dir / USDM, "trades", None, {})
    quotes = load_capture(ws_dir / USDM, "quotes", None, {})
    a = orderbook_panel_fields(book, trades, quotes, clock)
    b, _ = capture_panel_fields(p, clock)
    assert_parity(a, b, rtol=0.0)


def test_batch_values_never_depend_on_later_events(ws_dir, clock_for, parsed) -> None:
    p = parsed(USDM)
    clock = clock_for(p, 500_000_000)
    book = load_capture(ws_dir / USDM, "book", None, {"ticker_check": "off"})
    trades = load_capture(ws_dir / USDM, "trades", None, {})
    base = orderbook_panel_fields(book, trades, None, clock)
    cut = int(clock[len(clock) // 2])

    def perturb(t: pa.Table) -> pa.Table:
        late = (t["available_at"].to_numpy() > cut)
        size = t["size"].to_numpy().copy()
        size[late] = size[late] * 1.37 + 0.001
        return t.set_column(t.schema.get_field_index("size"), "size", pa.array(size))

    moved = orderbook_panel_fields(perturb(book), perturb(trades), None, clock)
    early, late = clock <= cut, clock > cut
    for name in base:
        np.testing.assert_array_equal(base[name][early], moved[name][early], err_msg=name)
    assert not np.allclose(base["ob.depth_25bps"][late], moved["ob.depth_25bps"][late], equal_nan=True)


# ------------------------------------------------------------------------------ a tiny book
S = 1_000_000_000  # 1 s in ns


def _tiny_events() -> list:
    return [
        DepthSnapshot(10 * S, 10 * S, 10, ((100.0, 2.0), (99.0, 1.0)), ((101.0, 1.0), (102.0, 3.0))),
        DepthDiff(20 * S, 20 * S, "X", 10, 11, 9, ((100.0, 3.0),), ()),
        Trade(25 * S, 25 * S, "X", 1, 100.5, 0.5, 1),
        Trade(35 * S, 35 * S, "X", 2, 100.0, 0.2, -1),
        DepthDiff(40 * S, 40 * S, "X", 12, 12, 11, (), ((101.0, 0.0),)),
    ]


def _tables(events: list) -> tuple[pa.Table, pa.Table]:
    rows = []
    for e in events:
        if isinstance(e, DepthSnapshot | DepthDiff):
            snap = isinstance(e, DepthSnapshot)
            seqn = e.last_update_id if snap else e.final_update_id
            for side, lv in ((1, e.bids), (-1, e.asks)):
                for px, q in lv:
                    rows.append((e.ts_event, e.available_at, "X", seqn, side, px, q, snap))
    book = pa.Table.from_pylist([dict(zip(SCHEMAS["book"].names, r)) for r in rows], schema=SCHEMAS["book"])
    tr = [e for e in events if isinstance(e, Trade)]
    trades = pa.Table.from_pylist(
        [dict(zip(SCHEMAS["trades"].names, (e.ts_event, e.available_at, "X", e.price, e.size, e.side, e.trade_id))) for e in tr],
        schema=SCHEMAS["trades"],
    )
    return book, trades


@pytest.mark.parametrize("execution", ["batch", "streaming"])
def test_hand_checked_values_and_sampling_contract(execution: str) -> None:
    params = OrderbookParams(levels=(1, 2), bands_bps=(60.0,), rv_horizons=("20s",))
    clock = np.array([5, 15, 30, 50], np.int64) * S
    if execution == "batch":
        book, trades = _tables(_tiny_events())
        f = orderbook_panel_fields(book, trades, None, clock, params)
    else:
        f = stream_capture(_tiny_events(), clock, params)
    row = {t: {k: v[i] for k, v in f.items()} for i, t in enumerate((5, 15, 30, 50))}
    # before any data: everything unknown
    assert all(math.isnan(v) for v in row[5].values())
    # t=15: the snapshot (bids 100x2, 99x1 / asks 101x1, 102x3)
    r = row[15]
    assert r["ob.mid"] == 100.5
    assert r["ob.spread_bps"] == pytest.approx(1 / 100.5 * 1e4, rel=1e-15)
    assert r["ob.microprice_dev_bps"] == pytest.approx(((100 * 1 + 101 * 2) / 3 - 100.5) / 100.5 * 1e4, rel=1e-12)
    assert r["ob.imbalance_l1"] == pytest.approx(1 / 3, rel=1e-15)
    assert r["ob.imbalance_l2"] == pytest.approx((3 - 4) / 7, rel=1e-15)
    # 60 bps around 100.5: bids >= 99.897 (100 only), asks <= 101.103 (101 only)
    assert r["ob.depth_60bps"] == 3.0 and r["ob.imbalance_60bps"] == pytest.approx(1 / 3, rel=1e-15)
    assert r["ob.slope_l2"] == pytest.approx(0.5 * (math.log(3 / 2) / (1 / 100.5 * 1e4) + math.log(4 / 1) / (1 / 100.5 * 1e4)), rel=1e-12)
    assert math.isnan(r["ob.rv_20s"])  # book valid for 0 s < 20 s
    assert r["ob.book_age_s"] == 5.0
    # flows over (5, 15]: the first book state has no predecessor (no OFI term), no trade yet:
    # zero flow is a real zero once data flows; the ratio of nothing traded is undefined
    assert (r["ob.ofi"], r["ob.trade_flow"], r["ob.trade_volume"]) == (0.0, 0.0, 0.0)
    assert math.isnan(r["ob.trade_imbalance"])
    # t=30: bid size 2 -> 3 at the same price: OFI +1; one buy of 0.5 in (15, 30]
    r = row[30]
    assert r["ob.imbalance_l1"] == 0.5 and r["ob.ofi"] == 1.0
    assert (r["ob.trade_flow"], r["ob.trade_volume"], r["ob.trade_imbalance"]) == (0.5, 0.5, 1.0)
    assert math.isnan(r["ob.rv_20s"])  # at the last event (t=20) the book was valid 10 s
    # t=50: best ask 101 removed -> 102 (OFI + old ask size 1); one sell of 0.2 in (30, 50]
    r = row[50]
    assert r["ob.mid"] == 101.0 and r["ob.ofi"] == 1.0
    assert (r["ob.trade_flow"], r["ob.trade_volume"], r["ob.trade_imbalance"]) == (-0.2, 0.2, -1.0)
    assert r["ob.rv_20s"] == pytest.approx(abs(math.log(101.0 / 100.5)), rel=1e-15)
    assert r["ob.book_age_s"] == 10.0


def test_streaming_refuses_to_read_the_past_after_seeing_the_future() -> None:
    s = OrderbookFeatureStream()
    for e in _tiny_events():
        s.on_trade(e) if isinstance(e, Trade) else s.on_book(e)
    with pytest.raises(LeakageError):
        s.snapshot_features(30 * S)
    assert s.snapshot_features(40 * S)["ob.mid"] == 101.0


def test_params_validate_and_name_fields() -> None:
    p = OrderbookParams(levels=(1, 3), bands_bps=(2.5,), rv_horizons=("90s",))
    assert "ob.imbalance_2p5bps" in p.field_names() and "ob.rv_90s" in p.field_names()
    assert p.field_names()[-4:] == ("ob.ofi", "ob.trade_flow", "ob.trade_volume", "ob.trade_imbalance")
    for bad in ({"levels": (5, 1)}, {"bands_bps": (0.0,)}, {"rv_horizons": ("1m", "60s")}, {"levels": ()}):
        with pytest.raises(ValueError):
            OrderbookParams(**bad)


def test_panel_call_form_groups_sources_by_instrument(ws_dir, parsed, clock_for) -> None:
    from dea.data.config import DataConfig

    data = DataConfig.model_validate({
        "instruments": [
            {"symbol": "BTCUSDT", "kind": "perpetual", "funding": "none"},
            {"symbol": "ETHUSDT", "kind": "perpetual", "funding": "none"},
        ],
        "sources": [
            {"name": "ob", "kind": "book", "format": "binance_ws", "path": str(ws_dir / USDM), "instrument": "BTCUSDT"},
            {"name": "tr", "kind": "trades", "format": "binance_ws", "path": str(ws_dir / USDM)},
        ],
    })
    tables = {
        "ob": load_capture(ws_dir / USDM, "book", "BTCUSDT", {"ticker_check": "off"}),
        "tr": load_capture(ws_dir / USDM, "trades", None, {}),
    }
    clock = clock_for(parsed(USDM), 2_000_000_000)
    fields, age = orderbook_panel_fields(clock, data, tables)
    single = orderbook_panel_fields(tables["ob"], tables["tr"], None, clock)
    assert fields["ob.mid"].shape == (len(clock), 2)
    np.testing.assert_array_equal(fields["ob.trade_flow"][:, 0], single["ob.trade_flow"])
    assert np.isnan(fields["ob.mid"][:, 1]).all()
    np.testing.assert_array_equal(age["ob.mid"][:, 0], single["ob.book_age_s"] * 1e9)
