"""Shared test fixtures.

``shared_data`` points at ``../shared/data`` beside the checkout (real market data; CI has it).
Where it is absent on a developer machine the tests that need it are skipped with the reason; on
CI (``CI=true``) its absence is a failure, so a green CI always means the real-data tests ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        msg = f"real market data not found at {SHARED_DATA} (set DEA_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA
