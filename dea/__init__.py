"""DEA core: shared by training and serving. Never imports ``training`` or ``serving``."""

__version__ = "0.1.0"
