"""Fixtures for the serving tests; the helpers themselves live in ``serving_helpers`` so test
modules can import them by a name that cannot collide with other folders' ``conftest``."""

from serving_helpers import bars_cfg, bars_config_path, bars_model, bars_tables  # noqa: F401 - fixtures
