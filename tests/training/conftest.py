"""Fixtures for the training tests; the helpers live in ``training_helpers`` so test modules can
import them by a name that cannot collide with other folders' ``conftest``."""

from training_helpers import *  # noqa: F401,F403 - re-export the fixtures
