"""Feature-set declaration: stable spec hash, validation errors, import isolation for serving."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dea.errors import FeatureError
from dea.features import FeatureSet
from dea.features.config import FeaturesConfig

INSTR = ("BTC", "ETH", "LTC")


def _fs(items, **kw) -> FeatureSet:
    return FeatureSet.from_config(FeaturesConfig.model_validate({"set": items, **kw}), INSTR)


BASE = [
    {"name": "logret", "params": {"horizon": 12}},
    {"name": "corr", "params": {"window": 48}, "instruments": ["ETH", "LTC"]},
    {"name": "level", "series": "fear_greed_index"},
    {"name": "growth", "field": "AdrActCnt", "params": {"horizon": 7}},
    {"name": "hour_of_day"},
]


def test_names_order_and_spec() -> None:
    fs = _fs(BASE)
    assert fs.names == (
        "logret_12@BTC", "logret_12@ETH", "logret_12@LTC", "corr_BTC_48@ETH", "corr_BTC_48@LTC",
        "level_fear_greed_index", "growth_AdrActCnt_7@BTC", "growth_AdrActCnt_7@ETH", "growth_AdrActCnt_7@LTC",
        "hour_sin", "hour_cos",
    )
    spec = fs.spec()
    json.dumps(spec)
    assert spec["names"] == list(fs.names) and spec["instruments"] == list(INSTR)
    assert [f["name"] for f in spec["features"]] == ["logret", "corr", "level", "growth", "hour_of_day"]
    assert spec["features"][0]["params"] == {"horizon": 12} and spec["features"][0]["version"] == 1
    assert fs.warmup == 48 and fs.warmups[:3] == (12, 12, 12)


def test_spec_hash_is_stable_and_sensitive() -> None:
    h = _fs(BASE).spec_hash
    assert h == _fs(BASE).spec_hash and len(h) == 64
    changed = [
        _fs([{**BASE[0], "params": {"horizon": 13}}] + BASE[1:]),  # a parameter
        _fs(BASE[::-1]),  # the order
        _fs(BASE[:-1]),  # the set
        _fs(BASE, missing={"policy": "mask"}),  # the missing-data policy (changes model inputs)
        _fs(BASE, version=2),
    ]
    assert len({h, *(c.spec_hash for c in changed)}) == 1 + len(changed)
    two = [BASE[0], BASE[2]]
    h2 = _fs(two).spec_hash
    assert FeatureSet.from_config(FeaturesConfig.model_validate({"set": two}), ("BTC", "ETH")).spec_hash != h2


def test_version_bump_changes_hash(monkeypatch) -> None:
    from dea.features.bars import LogReturn

    h = _fs(BASE).spec_hash
    monkeypatch.setattr(LogReturn, "version", 2)
    assert _fs(BASE).spec_hash != h


@pytest.mark.parametrize(
    "item,match",
    [
        ({"name": "nope"}, "unknown feature 'nope'"),
        ({"name": "logret", "params": {"horizon": 0}}, "invalid params"),
        ({"name": "logret", "params": {"horizont": 3}}, "invalid params"),
        ({"name": "logret", "instruments": ["DOGE"]}, "unknown instrument 'DOGE'"),
        ({"name": "level"}, "needs 'series: <name>' or 'field: <name>'"),
        ({"name": "logret", "series": "x"}, "takes no 'series'/'field'"),
        ({"name": "level", "field": "funding_settled"}, "accounting field"),
        ({"name": "corr", "params": {"ref": "SOL"}}, "unknown instrument 'SOL'"),
    ],
)
def test_bad_items_are_refused_with_a_clear_message(item, match) -> None:
    with pytest.raises(FeatureError, match=match):
        _fs([item])


def test_duplicate_columns_are_refused() -> None:
    with pytest.raises(FeatureError, match="duplicated columns"):
        _fs([{"name": "logret"}, {"name": "logret", "params": {"horizon": 1}}])


def test_panel_without_an_input_is_refused(daily_panel) -> None:
    fs = FeatureSet.from_config(FeaturesConfig.model_validate({"set": [{"name": "basis"}]}), daily_panel.instruments)
    with pytest.raises(FeatureError, match="needs panel field 'mark_price'"):
        fs.batch(daily_panel)
    fs = FeatureSet.from_config(FeaturesConfig.model_validate({"set": [{"name": "rvol_parkinson"}]}), daily_panel.instruments)
    with pytest.raises(FeatureError, match="'high' has no finite value"):  # Coin Metrics bars are close-only
        fs.batch(daily_panel)


def test_streaming_path_imports_without_heavy_libraries() -> None:
    code = (
        "import sys, numpy as np\n"
        "from dea.features import FeatureSet\n"
        "from dea.features.config import FeaturesConfig\n"
        "from dea.features import prepare_row, Scaler\n"
        "items=[{'name':n} for n in ('logret','rvol_cc','rvol_parkinson','rvol_gk','volume_z','ewma_trend','ewma_mom',"
        "'dist_high','funding_rate','funding_mean','time_to_funding','corr','beta','rel_strength','hour_of_day','day_of_week')]\n"
        "items.append({'name':'zscore','series':'fg'})\n"
        "fs=FeatureSet.from_config(FeaturesConfig.model_validate({'set':items}),('BTC','ETH'))\n"
        "st=fs.streaming()\n"
        "row={k:np.array([100.0,10.0]) for k in ('open','high','low','close','volume','funding_rate')}\n"
        "for i in range(300): st.update(i*300_000_000_000, row, {'fg':50.0+i%3})\n"
        "bad=[m for m in ('pandas','pyarrow','numba','torch','scipy','sklearn','mlflow','optuna') if m in sys.modules]\n"
        "print('HEAVY', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
