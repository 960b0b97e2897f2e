"""Fixtures for the tuning tests: a tiny simulated experiment and a PostgreSQL URL (or a skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEFAULT_PG = "postgresql://dea:dea@127.0.0.1:5432/dea_optuna"


@pytest.fixture()
def tiny_config(tmp_path, monkeypatch) -> Path:
    """The tiny sim experiment, run from a scratch working directory (stores, mlflow.db)."""
    monkeypatch.chdir(tmp_path)
    return HERE / "tiny_sim.yaml"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """DEA_TEST_POSTGRES_URL, else the server .ci/postgres.sh starts; skip when none answers."""
    url = os.environ.get("DEA_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # driver raises OperationalError and friends
        pytest.skip(f"no PostgreSQL reachable at {url.split('@')[-1]} ({type(exc).__name__}); run .ci/postgres.sh or set DEA_TEST_POSTGRES_URL")
    return url
