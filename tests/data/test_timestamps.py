"""Timestamps in every common style, the vendor ``Date,Data`` layout, and a hypothesis fuzz of
timestamp and number coercion (only DEA's own errors may come out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dea.cli.main import main
from dea.config import load_config
from dea.data.config import SourceConfig
from dea.data.inspect import inspect_path
from dea.data.loaders.coerce import to_float64, to_ns
from dea.data.loaders.context import LoadContext
from dea.data.panel import build_panel
from dea.data.validate import ValidationReport
from dea.errors import DataError, DeaError
from dea.timeutil import parse_timestamp


def _ctx(fmt: str | None = None) -> LoadContext:
    ts = {"format": fmt} if fmt else {}
    src = SourceConfig(name="s", kind="exogenous", format="daily", path="x.csv", timestamp=ts)
    return LoadContext(Path("x.csv"), src, ValidationReport("s", "x.csv"), "exogenous")


def _ns(values, fmt: str | None = None, unit: str = "iso") -> list[int]:
    return to_ns(pa.array(values), "date", unit, _ctx(fmt)).tolist()


D = parse_timestamp


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2009.10.5", "2009.10.16"], ["2009-10-05", "2009-10-16"]),  # dotted, not zero-padded
        (["2009/1/2", "2009/12/31"], ["2009-01-02", "2009-12-31"]),  # slashed, year first
        (["5/10/2009", "25/10/2009"], ["2009-10-05", "2009-10-25"]),  # day-first, proven by 25
        (["10/5/2009", "10/25/2009"], ["2009-10-05", "2009-10-25"]),  # month-first, proven by 25
        (["05.10.2009 13:00", "31.10.2009 13:05"], ["2009-10-05T13:00", "2009-10-31T13:05"]),
        (["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+00:00"], ["2024-01-01T00:00", "2024-01-01T01:00"]),
        (["2024-01-01T00:00+01:00", "2024-01-01T02:00+01:00"], ["2023-12-31T23:00", "2024-01-01T01:00"]),
        (["2024-01-01 00:00:00.250", "2024-01-01 01:00"], ["2024-01-01T00:00:00.25", "2024-01-01T01:00"]),
        (["1700000000", "1700000060"], ["2023-11-14T22:13:20", "2023-11-14T22:14:20"]),  # epoch s as text
        (["1700000000000", "1700000060000"], ["2023-11-14T22:13:20", "2023-11-14T22:14:20"]),  # epoch ms as text
        (["20240101", "20240102"], ["2024-01-01", "2024-01-02"]),
        (["Jan 5 2020", "Feb 6 2020"], ["2020-01-05", "2020-02-06"]),
        (["2020-01-01 00:00:00 UTC", "2020-01-02 00:30:00 UTC"], ["2020-01-01T00:00", "2020-01-02T00:30"]),  # zone as a word
        (["2020.1.5 9:30 GMT", "2020.1.6 9:30Z"], ["2020-01-05T09:30", "2020-01-06T09:30"]),
        (["2020.1.5 9:30 +01:00", "2020.1.6 10:30 +01:00"], ["2020-01-05T08:30", "2020-01-06T09:30"]),  # offset after a space
    ],
)
def test_text_timestamp_styles(values, expected):
    assert _ns(values) == [D(e + ("Z" if "T" in e else "")) for e in expected]


@pytest.mark.parametrize("unit,scale", [("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)])
def test_integer_epochs_by_magnitude(unit, scale):
    t0 = D("2024-03-01T00:00:00Z")
    ctx = _ctx()
    from dea.data.loaders.coerce import time_ns

    table = pa.table({"ts": pa.array([t0 // scale, (t0 + 60 * 10**9) // scale], pa.int64())})
    assert time_ns(table, "ts", "iso", ctx, explicit=False).tolist() == [t0, t0 + 60 * 10**9]
    assert ctx.report.get("timestamp_unit_inferred")[0].detail.endswith(f"epoch {unit} from its magnitude")


def test_explicit_format_and_ambiguity():
    with pytest.raises(DataError, match="could be day-first or month-first.*timestamp.format"):
        _ns(["05.10.2009", "06.10.2009"])
    assert _ns(["05.10.2009", "06.10.2009"], fmt="%d.%m.%Y") == [D("2009-10-05"), D("2009-10-06")]
    assert _ns(["05.10.2009", "06.10.2009"], fmt="%m.%d.%Y") == [D("2009-05-10"), D("2009-06-10")]
    with pytest.raises(DataError, match=r"x.csv, line 3: .*cannot parse '2009-13-45'"):
        _ns(["05.10.2009", "2009-13-45"], fmt="%d.%m.%Y")


def test_mixed_offsets_and_unparseable_are_errors_naming_file_row_value():
    with pytest.raises(DataError, match=r"x.csv, line 3: .*mixes timezone offsets.*'2024-01-01T05:00:00\+05:00'"):
        _ns(["2024-01-01T00:00:00+00:00", "2024-01-01T05:00:00+05:00"])
    with pytest.raises(DataError, match=r"mixes timezone offsets \(\+0000 in its first rows, no offset in"):
        _ns(["2024-01-01T00:00:00Z", "2024-01-01T01:00:00"])  # aware and naive
    with pytest.raises(DataError, match="mixes timezone offsets"):
        _ns(["2024-01-01T00:00:00", "2024-01-01T01:00:00Z"])  # naive and aware
    with pytest.raises(DataError, match=r"x.csv, line 3: .*'not a date'"):
        _ns(["2024-01-01", "not a date"])
    with pytest.raises(DataError, match="neither all day-first nor all month-first"):
        _ns(["25/10/2009", "10/25/2009"])


DATE_DATA = "Date,Data\n2009.10.5,1.5\n2009.10.6,2.5\n2009.10.7,\n2009.10.8,4\n"


def test_date_data_vendor_layout_folder_file_and_config(tmp_path):
    folder = tmp_path / "onchain"
    folder.mkdir()
    (folder / "btc_active_addresses.csv").write_text(DATE_DATA)
    for target in (folder, folder / "btc_active_addresses.csv"):
        ins = inspect_path(target)
        (e,) = ins.entries
        assert e.status == "loaded" and e.kind == "exogenous" and e.format == "date_data", e.note
        (s,) = e.summaries
        assert s.key == "btc_active_addresses @ (global)" and s.rows == 4 and s.start.startswith("2009-10-05")
    assert main(["data", "inspect", str(folder / "btc_active_addresses.csv")]) == 0
    cfg = {
        "name": "onchain",
        "features": {"set": [{"name": "logret"}]},
        "data": {
            "store": "store",
            "instruments": [{"symbol": "BTC"}],
            "sources": [
                {"name": "px", "kind": "bars", "format": "ohlcv", "path": "px.csv", "instrument": "BTC", "step": "1d"},
                {"name": "aa", "kind": "exogenous", "format": "daily", "path": "onchain/btc_active_addresses.csv",
                 "timestamp": {"column": "Date"}, "entity": "BTC", "step": "1d"},
            ],
            "clock": {"step": "1d", "start": "2009-10-07", "end": "2009-10-09"},
        },
    }
    (tmp_path / "px.csv").write_text("date,open,high,low,close,volume\n" + "".join(
        f"2009-10-0{d},1,1,1,1,1\n" for d in range(4, 10)))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    panel = build_panel(load_config(tmp_path / "exp.yaml"))
    # value dated D is known at D + 1d: on 10-07 the 10-06 value (2.5); the 10-07 cell is missing
    # the generic loader names a Date,Data file's one metric after the file, as date_data does
    np.testing.assert_array_equal(panel.fields["btc_active_addresses"][:, 0], [2.5, 2.5, 4.0])
    assert "Data" not in panel.fields


# ------------------------------------------------------------------------------- fuzz
_cells = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}( \d{1,2}:\d{2}(:\d{2})?)?([+-]\d{2}:\d{2}|Z)?", fullmatch=True),
    st.integers(-(10**19), 10**19).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_cells, min_size=1, max_size=6), fmt=st.sampled_from([None, "%Y.%m.%d", "%d/%m/%Y %H:%M"]))
def test_fuzz_text_timestamps_only_raise_dea_errors(values, fmt):
    try:
        out = _ns(values, fmt=fmt)
    except DeaError:
        return
    assert len(out) == len(values)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats()), min_size=1, max_size=6),
       unit=st.sampled_from(["iso", "s", "ms", "us", "ns"]))
def test_fuzz_numeric_timestamps_only_raise_dea_errors(values, unit):
    arr = pa.array([float(v) for v in values]) if any(isinstance(v, float) for v in values) else pa.array(values, pa.int64())
    try:
        to_ns(arr, "t", unit, _ctx())
    except DeaError:
        pass


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=12), st.floats().map(str)), min_size=1, max_size=6))
def test_fuzz_number_coercion_only_raises_dea_errors(values):
    try:
        out = to_float64(pa.array(values, pa.string()), "v", _ctx())
    except DeaError:
        return
    assert len(out) == len(values)


def test_text_epochs_out_of_range_are_refused():
    with pytest.raises(DataError, match=r"line 3: .*'9300000000000000000'.*outside the years"):
        _ns(["1700000000000000000", "9300000000000000000", "1700000060000000000"])
    with pytest.raises(DataError, match=r"line 3: .*mixes epoch units: most values are s but 9000000000000000000"):
        _ns(["1700000000", "9000000000000000000", "1700000060"])


@pytest.mark.parametrize("column", [pa.array([1700000000000, 1700000060000, 1700000120, 1700000180000], pa.int64()),
                                    pa.array(["1700000000000", "1700000060000", "1700000120", "1700000180000"])])
def test_epochs_of_mixed_units_are_refused_not_placed_in_1970(column):
    """One row in seconds among milliseconds would read as 1970-01-20 and be sorted to the front."""
    from dea.data.loaders.coerce import time_ns

    with pytest.raises(DataError, match=r"x.csv, line 4: .*mixes epoch units: most values are ms but 1700000120 "
                                        r"\(1 of 4 values\) reads as s; set the source's timestamp.unit"):
        time_ns(pa.table({"ts": column}), "ts", "iso", _ctx(), explicit=False)
    # a declared unit is the user's word: no inference, no refusal
    ctx = _ctx()
    ints = pa.array([1700000000000, 1700000120], pa.int64())
    assert time_ns(pa.table({"ts": ints}), "ts", "ms", ctx, explicit=True).tolist() == [1700000000000 * 10**6, 1700000120 * 10**6]


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(10**8, 2**63 - 1)), min_size=1, max_size=6),
       as_text=st.booleans())
def test_fuzz_inferred_epoch_units_only_raise_dea_errors(values, as_text):
    """Unit inference by magnitude (and its one-unit check) on any integers, as numbers or text."""
    from dea.data.loaders.coerce import time_ns

    col = pa.array([str(v) for v in values]) if as_text else pa.array(values, pa.int64())
    try:
        out = time_ns(pa.table({"ts": col}), "ts", "iso", _ctx(), explicit=False)
    except DeaError:
        return
    assert len(out) == len(values)
