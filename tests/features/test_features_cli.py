"""``dea features --config`` on a real config: writes the matrix, prints the per-feature summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from features_realdata import daily_raw

from dea.cli.main import main
from dea.features import FeatureMatrix


def test_cli_builds_writes_and_summarises(tmp_path: Path, shared_data: Path, capsys, monkeypatch) -> None:
    raw = daily_raw(shared_data, start="2019-01-01", end="2019-12-31")
    raw["data"]["store"] = str(tmp_path / "store")
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    assert main(["features", "--config", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    files = list((tmp_path / "store" / "features").glob("daily-test-*.parquet"))
    assert len(files) == 1
    m = FeatureMatrix.read_parquet(files[0])
    assert len(m.clock) == 365 and len(m.names) >= 40 and m.spec_hash and m.warmups
    assert files[0].name == f"daily-test-{m.spec_hash[:12]}.parquet"
    for name in m.names:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        _, warm, nan_share, rho = line.split()
        assert int(warm) == m.warmups[m.names.index(name)]
        assert 0.0 <= float(nan_share) <= 1.0
        assert rho == "nan" or -1.0 <= float(rho) <= 1.0
    # warm-up rows are stored as missing
    j = m.names.index("logret_7@BTC")
    assert np.isnan(m.values[:7, j]).all() and np.isfinite(m.values[7:, j]).all()


def test_cli_reports_config_errors_cleanly(tmp_path: Path, shared_data: Path, capsys) -> None:
    raw = daily_raw(shared_data, start="2019-01-01", end="2019-03-01")
    raw["features"]["set"].append({"name": "no_such_feature"})
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    assert main(["features", "--config", str(cfg_path)]) == 2
    assert "unknown feature 'no_such_feature'" in capsys.readouterr().err
