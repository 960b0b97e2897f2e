"""Training scales through Lightning: devices / strategy / num_nodes from ``training.trainer``.
Two CPU processes train one fold with DDP over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_ddp_fold(tmp_path, repo_root) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    script = Path(__file__).with_name("ddp_fit.py")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [r["global_rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["strategy"] == "DDPStrategy" and r["backend"] == "gloo" for r in ranks)
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0  # both ranks stepped together (synchronised gradients)
