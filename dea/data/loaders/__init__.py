"""Loaders: one small module per real-world file format, each producing a canonical table.

A loader is ``load(ctx: LoadContext) -> pa.Table`` (see :mod:`dea.data.loaders.context`); the
format registry, fingerprinting and validation live in :mod:`dea.data.sources`. Live websocket
captures (``binance_ws``, ``hyperliquid``) are read by their own modules here.
"""
