"""DEA serving: the torch-free live allocator (numpy, onnxruntime, stdlib; ccxt / MLflow lazily).

Modules (see ``serving/README.md`` for the flow, the restart protocol and the metrics):

- :mod:`serving.runner`        ONNX policy runner (bound buffers, metadata checks)
- :mod:`serving.model_source`  file paths and ``models:/NAME@ALIAS`` registry URIs
- :mod:`serving.hotswap`       background load + verify, atomic swap between decisions
- :mod:`serving.market_state`  the streaming panel (batch panel rows, event by event)
- :mod:`serving.books`         order books, ``ob.*`` features, book views for paper fills
- :mod:`serving.loop`          the live loop (features -> model -> risk -> orders -> exchange)
- :mod:`serving.journal`       SQLite WAL state journal (restart without lost/duplicated orders)
- :mod:`serving.observability` Prometheus metrics and JSON logs
- :mod:`serving.feeds`         replays (canonical tables, raw captures) and live websockets
- :mod:`serving.exchanges`     paper venue (the backtest's fill model) and ccxt
- :mod:`serving.app`           wiring used by ``dea serve``

Importing this package imports nothing: import the module you need.
"""
