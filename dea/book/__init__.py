"""Level-2 order books: typed feed events, sequence validation, a streaming book for serving, and
a columnar cache plus a numba replay for batch work.

Import discipline (serving imports this package): the modules re-exported here use numpy, the
standard library and orjson only. The batch modules (:mod:`dea.book.scan`, :mod:`dea.book.capture`,
:mod:`dea.book.replay`) import numba/pyarrow and are imported explicitly by batch code.

- :mod:`dea.book.events`      typed events (snapshot, depth diff, book ticker, trade)
- :mod:`dea.book.binance`     one raw Binance websocket/REST message -> typed event (live feed)
- :mod:`dea.book.sequencing`  the U/u/pu rules (written once; numba jits the same functions)
- :mod:`dea.book.l2`          :class:`L2Book` (streaming book) and :class:`SyncedBook` (book + rules)
- :mod:`dea.book.formulas`    feature arithmetic shared by the streaming and replay executions
"""

from dea.book.binance import parse_binance_message, parse_capture_line
from dea.book.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from dea.book.l2 import L2Book, SyncedBook
from dea.book.sequencing import FUTURES, SPOT, market_mode

__all__ = [
    "BookTicker",
    "DepthDiff",
    "DepthSnapshot",
    "FUTURES",
    "L2Book",
    "SPOT",
    "SyncedBook",
    "Trade",
    "market_mode",
    "parse_binance_message",
    "parse_capture_line",
]
