"""Exchange adapters: where the live loop's orders go (``paper`` simulation or a ccxt venue)."""
