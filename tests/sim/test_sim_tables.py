"""The simulator's canonical tables: schemas, time conventions, reproducibility, option errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dea.data.schema import SCHEMAS
from dea.errors import ConfigError
from dea.sim.config import SimConfig
from dea.sim.market import SimMarket, simulate
from dea.sim.tables import sim_tables
from dea.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_S

SMALL = {"seed": 1, "n_assets": 3, "n_steps": 500, "book": {"enabled": True, "every": 10, "levels": 3}}


def test_tables_conform_to_the_canonical_schemas(signal_market: SimMarket) -> None:
    tables = signal_market.tables()
    assert set(tables) == {"bars", "funding", "mark", "exogenous", "book", "quotes"}
    for kind, table in tables.items():
        assert table.schema.equals(SCHEMAS[kind]), kind
        assert table.num_rows > 0, kind
        for name in table.column_names:
            assert table[name].null_count == 0, (kind, name)
        ts = table["ts_event"].to_numpy()
        assert np.all(np.diff(ts) >= 0), f"{kind} rows are not in time order"
        assert np.all(table["available_at"].to_numpy() >= ts), kind
    bars = tables["bars"]
    assert set(bars["instrument"].to_pylist()) == set(signal_market.symbols)
    assert bars.num_rows == signal_market.n_steps * signal_market.n_assets
    exo = tables["exogenous"]
    assert set(exo["series"].to_pylist()) == {"sentiment", "onchain_flow"}
    assert set(exo["entity"].to_pylist()) == set(signal_market.symbols)
    assert tables["book"]["is_snapshot"].to_numpy(zero_copy_only=False).all()


def test_available_at_follows_bar_exchange_and_publication_conventions() -> None:
    cfg = SimConfig(
        seed=4,
        n_assets=2,
        n_steps=24 * 10,
        latency="5s",
        publication_lag="3h",
        exogenous=[
            {"name": "sentiment"},
            {"name": "onchain", "step": "1d", "publication_lag": "1d"},
            {"name": "fear", "scope": "market", "step": "4h"},
        ],
        book={"enabled": True, "every": 6},
    )
    tables = simulate(cfg).tables()
    latency = 5 * NS_PER_S

    def delay(kind: str, where: np.ndarray | None = None) -> set[int]:
        t = tables[kind]
        d = t["available_at"].to_numpy() - t["ts_event"].to_numpy()
        return set((d if where is None else d[where]).tolist())

    assert delay("bars") == {NS_PER_HOUR + latency}  # stamped by open, known at close
    for kind in ("mark", "funding", "book", "quotes"):
        assert delay(kind) == {latency}, kind
    exo = tables["exogenous"]
    series = np.asarray(exo["series"].to_numpy(zero_copy_only=False))
    assert delay("exogenous", series == "sentiment") == {NS_PER_HOUR + 3 * NS_PER_HOUR}
    assert delay("exogenous", series == "onchain") == {NS_PER_DAY + NS_PER_DAY}  # own lag wins
    assert delay("exogenous", series == "fear") == {4 * NS_PER_HOUR + 3 * NS_PER_HOUR}
    entity = np.asarray(exo["entity"].to_numpy(zero_copy_only=False))
    assert set(entity[series == "fear"]) == {""}  # a global series
    assert (series == "onchain").sum() == 10 * 2  # ten days, two assets
    # the daily values are stamped at the day's open (00:00 UTC)
    assert np.all(exo["ts_event"].to_numpy()[series == "onchain"] % NS_PER_DAY == 0)


def test_publication_lag_moves_only_available_at() -> None:
    base = {"seed": 9, "n_assets": 2, "n_steps": 300}
    early = simulate(SimConfig(**base, publication_lag="0s")).tables(("exogenous",))["exogenous"]
    late = simulate(SimConfig(**base, publication_lag="6h")).tables(("exogenous",))["exogenous"]
    np.testing.assert_array_equal(early["value"].to_numpy(), late["value"].to_numpy())
    np.testing.assert_array_equal(early["ts_event"].to_numpy(), late["ts_event"].to_numpy())
    shift = late["available_at"].to_numpy() - early["available_at"].to_numpy()
    assert set(shift.tolist()) == {6 * NS_PER_HOUR}


def test_same_seed_gives_identical_tables_and_other_seeds_differ() -> None:
    a = simulate(SimConfig(**SMALL)).tables()
    b = simulate(SimConfig(**SMALL)).tables()
    c = simulate(SimConfig(**{**SMALL, "seed": 2})).tables()
    for kind in a:
        assert a[kind].equals(b[kind]), kind
    for kind in ("bars", "funding", "mark", "exogenous", "book", "quotes"):
        assert not a[kind].equals(c[kind]), kind


def test_enabling_the_book_leaves_every_other_table_unchanged() -> None:
    with_book = simulate(SimConfig(**SMALL)).tables()
    without = simulate(SimConfig(**{**SMALL, "book": {"enabled": False}})).tables()
    assert set(without) == {"bars", "funding", "mark", "exogenous"}
    for kind in without:
        assert with_book[kind].equals(without[kind]), kind


def test_sim_tables_validates_and_simulates_once_per_options() -> None:
    first = sim_tables(dict(SMALL))
    second = sim_tables(dict(SMALL))
    assert set(first) == {"bars", "funding", "mark", "exogenous", "book", "quotes"}
    assert first["bars"] is second["bars"]  # served from the cache, not re-simulated
    first.pop("bars")  # the returned dict is the caller's own
    assert "bars" in sim_tables(dict(SMALL))
    assert isinstance(second["mark"], pa.Table)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"n_steps": 100, "sead": 1}, "sead: unknown key"),
        ({"n_steps": 100, "book": {"enabled": True, "depht": 3}}, "book.depht: unknown key"),
        ({"n_steps": 100, "n_assets": 2, "correlation": [[1.0, 0.5], [0.4, 1.0]]}, "symmetric"),
        ({"n_steps": 100, "n_assets": 2, "correlation": [[1.0, 1.0], [1.0, 1.0]]}, "positive definite"),
        ({"n_steps": 100, "n_assets": 3, "correlation": -0.6}, "equicorrelation"),
        ({"n_steps": 100, "n_assets": 3, "vol": [0.5, 0.6]}, "vol lists 2 values but there are 3 assets"),
        ({"n_steps": 100, "n_assets": 3, "symbols": ["A", "B"]}, "n_assets=3 but 2 symbols"),
        ({"n_steps": 100, "symbols": ["A", "A"]}, "distinct"),
        ({"n_steps": 100, "symbols": "AB"}, "symbols: Input should be a valid list"),
        ({"n_steps": 100, "n_assets": 10**9}, "n_assets: Input should be less than or equal to 256"),
        ({"n_steps": 100, "step": "1h", "exogenous": [{"name": "x", "step": "90m"}]}, "multiple"),
        ({"n_steps": 100, "step": "fortnight"}, "cannot parse duration"),
        ({"n_steps": 100, "signal_strength": 1.0}, "signal_strength"),
        ({"n_steps": 100, "publication_lag": "-1h"}, "publication_lag must not be negative"),
        ({"n_steps": 100, "start": "yesterday"}, "cannot parse timestamp"),
        ({"n_steps": 100, "regimes": []}, "regimes"),
    ],
)
def test_invalid_options_raise_config_error_naming_the_problem(options: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        sim_tables(options)
    assert fragment in str(err.value)
    assert "invalid simulator options" in str(err.value)


def test_non_mapping_options_and_missing_book_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        sim_tables(["seed", 1])  # type: ignore[arg-type]
    market = simulate(SimConfig(seed=0, n_steps=50))
    with pytest.raises(ConfigError, match="book.enabled"):
        market.tables(("book",))
    too_wide = simulate(SimConfig(seed=0, n_steps=50, book={"enabled": True, "levels": 400, "level_spacing_bps": 50}))
    with pytest.raises(ConfigError, match="away from mid"):
        too_wide.tables(("quotes",))


def test_sim_yaml_sources_share_one_market(repo_root: Path) -> None:
    """configs/sim.yaml: every `format: sim` source carries the same options, whose symbols are
    the config's instruments, and those options simulate."""
    import yaml

    raw = yaml.safe_load((repo_root / "configs" / "sim.yaml").read_text())
    sources = [s for s in raw["data"]["sources"] if s["format"] == "sim"]
    assert {s["kind"] for s in sources} == {"bars", "funding", "mark", "exogenous"}
    options = sources[0]["options"]
    assert all(s["options"] == options for s in sources)
    cfg = SimConfig.from_options(options)
    symbols = [i["symbol"] for i in raw["data"]["instruments"]]
    assert list(cfg.asset_symbols) == symbols
    assert {s["instrument"] for s in sources if s["kind"] == "bars"} == set(symbols)
    for inst in raw["data"]["instruments"]:
        assert inst["kind"] == "perpetual" and inst["funding"] == "sim_funding"
