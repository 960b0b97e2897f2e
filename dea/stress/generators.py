"""Scenario generators: each takes a :class:`MarketPath` and returns a shocked copy.

Price shocks are written as changes to the path's log returns inside the shock window, and the
price is rebuilt from them: after the window the original returns resume from the shocked
level. So a flash crash of ``drop`` really takes the price from its onset level to exactly
``(1 - drop)`` of it, whatever the market was doing underneath, and what follows keeps its own
dynamics. Windows are given as a start step and a length in steps (:func:`window` converts a
config's share + duration); lengths shorter than one step become one step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dea.errors import DataError
from dea.stress.path import BookLevels, MarketPath


def steps_for(path: MarketPath, duration_ns: int) -> int:
    """Decision steps covering ``duration_ns`` (at least one)."""
    return max(1, math.ceil(duration_ns / path.step_ns))


def window(path: MarketPath, start_share: float, n_steps: int) -> tuple[int, int]:
    """[i0, i1) step indices: onset at ``start_share`` of the path, ``n_steps`` long, clipped."""
    if not 0 <= start_share < 1:
        raise DataError(f"scenario start {start_share} must be a share of the path in [0, 1)")
    i0 = int(start_share * (path.n_steps - 1))
    i1 = min(path.n_steps - 1, i0 + n_steps)
    if i1 <= i0:
        raise DataError(f"scenario window at step {i0} does not fit in a {path.n_steps}-step path")
    return i0, i1


def _with_returns(path: MarketPath, r: np.ndarray, name: str, shock: tuple[int, int]) -> MarketPath:
    """Prices whose log returns are ``r`` [T-1, N]: the original prices times the cumulated
    change of returns, so steps before the shock (and untouched instruments) stay bit-exact."""
    delta = np.cumsum(r - path.log_returns(), axis=0)
    factor = np.exp(np.vstack([np.zeros((1, r.shape[1])), delta]))
    return path.replace(price=path.price * factor, name=name, shock=shock)


def flash_crash(
    path: MarketPath,
    *,
    i0: int,
    crash_steps: int,
    drop: float,
    recovery: float,
    recovery_steps: int,
    instruments: Sequence[str] | None = None,
    volume_factor: float = 1.0,
    spread_factor: float = 1.0,
    name: str = "flash_crash",
) -> MarketPath:
    """Price falls by ``drop`` from step ``i0`` to ``i0 + crash_steps`` (evenly in log terms),
    then recovers ``recovery`` of the fall by ``i0 + crash_steps + recovery_steps`` (evenly);
    volume and spread are multiplied over the whole episode."""
    if not 0 < drop < 1 or not 0 <= recovery <= 1:
        raise DataError(f"flash crash needs 0 < drop < 1 and 0 <= recovery <= 1, got {drop}, {recovery}")
    cols = path.columns(instruments)
    trough = i0 + crash_steps
    end = min(path.n_steps - 1, trough + recovery_steps)
    if trough > path.n_steps - 1:
        raise DataError(f"flash crash of {crash_steps} steps at step {i0} does not fit in {path.n_steps} steps")
    r = path.log_returns().copy()
    level = 1 - drop * (1 - recovery)
    for j in cols:
        r[i0:trough, j] = math.log(1 - drop) / crash_steps
        if end > trough:
            r[trough:end, j] = math.log(level / (1 - drop)) / (end - trough)
    out = _with_returns(path, r, name, (i0, end))
    vol, spread, depth = path.volume.copy(), path.spread_bps.copy(), path.depth.copy()
    for j in cols:
        vol[i0 + 1 : end + 1, j] *= volume_factor
        spread[i0 + 1 : end + 1, j] *= spread_factor
        depth[i0 + 1 : end + 1, j] /= spread_factor
    return out.replace(volume=vol, spread_bps=spread, depth=depth)


def vol_spike(
    path: MarketPath, *, i0: int, i1: int, factor: float, instruments: Sequence[str] | None = None, name: str = "vol_spike"
) -> MarketPath:
    """Log returns in [i0, i1) scaled by ``factor`` around their window mean (drift kept)."""
    if factor <= 0:
        raise DataError(f"vol spike factor must be > 0, got {factor}")
    r = path.log_returns().copy()
    for j in path.columns(instruments):
        w = r[i0:i1, j]
        r[i0:i1, j] = w.mean() + factor * (w - w.mean())
    return _with_returns(path, r, name, (i0, i1))


def liquidity_drain(
    path: MarketPath,
    *,
    i0: int,
    i1: int,
    depth_factor: float,
    spread_factor: float,
    instruments: Sequence[str] | None = None,
    name: str = "liquidity_drain",
) -> MarketPath:
    """Resting depth ×``depth_factor`` and spread ×``spread_factor`` at steps [i0, i1).

    With L2 levels the sizes are thinned and every level moved away from the mid by
    ``spread_factor`` (so walking the book costs more both ways); the summary ``depth`` and
    ``spread_bps`` arrays are changed consistently.
    """
    if not 0 < depth_factor <= 1 or spread_factor < 1:
        raise DataError(f"liquidity drain needs 0 < depth_factor <= 1 and spread_factor >= 1, got {depth_factor}, {spread_factor}")
    cols = path.columns(instruments)
    spread, depth = path.spread_bps.copy(), path.depth.copy()
    spread[i0:i1, cols] *= spread_factor
    depth[i0:i1, cols] *= depth_factor
    book = path.book
    if book is not None:
        bp, bs, ap, as_ = (a.copy() for a in (book.bid_price, book.bid_size, book.ask_price, book.ask_size))
        sl = (slice(i0, i1), cols)
        mid = 0.5 * (bp[sl][..., :1] + ap[sl][..., :1])
        bp[sl] = mid - (mid - bp[sl]) * spread_factor
        ap[sl] = mid + (ap[sl] - mid) * spread_factor
        bs[sl] *= depth_factor
        as_[sl] *= depth_factor
        book = BookLevels(bp, bs, ap, as_)
    return path.replace(spread_bps=spread, depth=depth, book=book, name=name, shock=(i0, i1))


def funding_squeeze(
    path: MarketPath,
    *,
    i0: int,
    i1: int,
    rate: float,
    interval_ns: int,
    instruments: Sequence[str] | None = None,
    name: str = "funding_squeeze",
) -> MarketPath:
    """Every settlement instant (multiples of ``interval_ns``) in (clock[i0-1], clock[i1-1]]
    settles ``rate``; the latest known rate is ``rate`` throughout. A step spanning several
    settlements (a daily clock with 8 h funding) pays each of them."""
    if interval_ns <= 0:
        raise DataError("funding interval must be positive")
    cols = path.columns(instruments)
    settled, latest = path.funding_settled.copy(), path.funding_rate.copy()
    prev = path.clock[max(i0 - 1, 0)] if i0 > 0 else path.clock[0] - path.step_ns
    bounds = np.concatenate([[prev], path.clock[i0:i1]])
    n_settle = np.floor_divide(bounds[1:], interval_ns) - np.floor_divide(bounds[:-1], interval_ns)
    for j in cols:
        settled[i0:i1, j] = rate * n_settle
        latest[i0:i1, j] = rate
    return path.replace(funding_settled=settled, funding_rate=latest, name=name, shock=(i0, i1))


def correlation_one(
    path: MarketPath, *, i0: int, i1: int, leader: str | None = None, instruments: Sequence[str] | None = None, name: str = "correlation_one"
) -> MarketPath:
    """In [i0, i1) every instrument's log returns become the leader's, rescaled to the
    instrument's own window volatility: pairwise correlation 1, each volatility unchanged."""
    r = path.log_returns().copy()
    lead = path.column(leader) if leader else 0
    lr = r[i0:i1, lead]
    lsd = lr.std()
    if lsd == 0:
        raise DataError(f"correlation shock: leader {path.instruments[lead]!r} does not move in the window")
    for j in path.columns(instruments):
        if j != lead:
            r[i0:i1, j] = r[i0:i1, j].mean() + (lr - lr.mean()) * (r[i0:i1, j].std() / lsd)
    return _with_returns(path, r, name, (i0, i1))


def stale_feed(path: MarketPath, *, i0: int, i1: int, name: str = "stale_feed") -> MarketPath:
    """No market data reaches the loop at steps [i0, i1); prices keep moving underneath."""
    ok = path.feed_ok.copy()
    ok[i0:i1] = False
    return path.replace(feed_ok=ok, name=name, shock=(i0, i1))


def latency_spike(path: MarketPath, *, i0: int, i1: int, latency_ns: int, name: str = "latency_spike") -> MarketPath:
    """Orders sent at steps [i0, i1) reach the exchange ``latency_ns`` later."""
    if latency_ns < 0:
        raise DataError("latency must be >= 0")
    lat = path.latency_ns.copy()
    lat[i0:i1] = latency_ns
    return path.replace(latency_ns=lat, name=name, shock=(i0, i1))


def order_rejects(path: MarketPath, *, i0: int, i1: int, share: float = 1.0, name: str = "order_rejects") -> MarketPath:
    """The exchange refuses a ``share`` of orders sent at steps [i0, i1)."""
    if not 0 < share <= 1:
        raise DataError(f"reject share must be in (0, 1], got {share}")
    rej = path.reject_share.copy()
    rej[i0:i1] = share
    return path.replace(reject_share=rej, name=name, shock=(i0, i1))


def transplant(
    path: MarketPath, *, i0: int, history: np.ndarray, instruments: Sequence[str] | None = None, name: str = "historical"
) -> MarketPath:
    """Replay a real price series' returns onto the path from step ``i0``, one source step per
    decision step (truncated at the end of the path)."""
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 1 or history.size < 2 or not (np.isfinite(history).all() and (history > 0).all()):
        raise DataError(f"historical window must be >= 2 finite positive prices, got {history.size} values")
    hr = np.diff(np.log(history))
    r = path.log_returns().copy()
    n = min(hr.size, r.shape[0] - i0)
    if n <= 0:
        raise DataError(f"historical window starting at step {i0} does not fit in {path.n_steps} steps")
    for j in path.columns(instruments):
        r[i0 : i0 + n, j] = hr[:n]
    return _with_returns(path, r, name, (i0, i0 + n))
