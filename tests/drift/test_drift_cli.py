"""``dea drift``: per-feature report and exit code on real ETH 5-minute features."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.feather as feather
import pytest

from dea.calibration import ewma_variance
from dea.cli.main import main
from dea.drift import build_reference, sidecar_path


@pytest.fixture(scope="module")
def frames(shared_data, tmp_path_factory):
    t = feather.read_table(shared_data / "perps_5m_15m" / "ETH_USDT_USDT-5m-futures.feather", columns=["close", "volume"])
    c, v = t["close"].to_numpy(), t["volume"].to_numpy()
    r = np.diff(np.log(c))
    z = r / np.sqrt(ewma_variance(r, 100))
    lv = np.log((v[1:] + 1.0) / (np.sqrt(ewma_variance(v[1:], 288)) + 1.0))  # volume over its trailing level
    x = np.c_[z, lv][1000:]
    where = tmp_path_factory.mktemp("drift_cli")
    names = ["ret_z", "vol_rel"]
    ref = build_reference(x[:20_000], names)
    model = where / "model.bin"
    model.write_bytes(b"")
    sidecar_path(model).write_text(ref.to_json())
    calm = where / "calm.parquet"
    pq.write_table(pa.table({"ts": np.arange(3000), "ret_z": x[28_000:31_000, 0], "vol_rel": x[28_000:31_000, 1]}), calm)
    shifted = where / "shifted.csv"
    shifted.write_text("ret_z,vol_rel\n" + "\n".join(f"{a},{b + 1.0}" for a, b in x[28_000:31_000]))
    return model, calm, shifted


def test_report_and_exit_codes(frames, capsys) -> None:
    model, calm, shifted = frames
    assert main(["drift", "--model", str(model), "--data", str(calm)]) == 0
    out = capsys.readouterr().out
    assert "0 of 2 features drifted" in out and "ret_z" in out
    assert main(["drift", "--model", str(model), "--data", str(shifted)]) == 3
    out = capsys.readouterr().out
    assert "1 of 2 features drifted" in out
    flagged = [line for line in out.splitlines() if "DRIFT" in line]
    assert len(flagged) == 1 and flagged[0].startswith("vol_rel")


def test_missing_feature_column_is_a_clear_error(frames, tmp_path, capsys) -> None:
    model, _, _ = frames
    bad = tmp_path / "bad.csv"
    bad.write_text("ret_z\n0.1\n0.2\n")
    assert main(["drift", "--model", str(model), "--data", str(bad)]) == 2
    assert "lacks 1 of the model's features" in capsys.readouterr().err
