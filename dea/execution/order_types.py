"""Order types beyond the market order: limit, post-only, IOC/FOK, reduce-only, expiry, and
cancel/replace with deterministic client ids.

Why one definition: the schedules (:mod:`dea.execution.schedule`), the queue-aware simulator
(:mod:`dea.execution.queue`, used by the event replay and the paper venue), the execution store
and the ccxt adapter must agree on what an order *is*, or a restarted loop cannot recognise an
order it sent before the crash. Client ids are a pure function of (prefix, parent decision time,
symbol, child sequence number, replace count), so regenerating a schedule after a restart gives
the same ids and the venue (or the journal) rejects a duplicate instead of trading twice.

Numpy-free, stdlib only (serving imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from dea.errors import ExchangeError

OrderKind = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTX"]  # GTX = post-only (Binance's name)
TIME_IN_FORCE: tuple[str, ...] = ("GTC", "IOC", "FOK", "GTX")
_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
MAX_CLIENT_ID = 36  # Binance's limit on newClientOrderId


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One child order as sent to a venue.

    ``qty`` signed base units (+ buys). ``price`` is the limit (None for market orders).
    ``tif``: GTC rests, IOC fills what it can at once and cancels the rest, FOK fills entirely at
    once or not at all, GTX (post-only) is rejected if any part would take liquidity.
    ``reduce_only``: the venue clips it so that it can only shrink the position.
    ``expire_ns``: a resting order still open then is cancelled by the venue (or the simulator).
    ``parent_id``: the parent (rebalance) order this child works, for execution quality.
    """

    instrument: str
    index: int
    qty: float
    client_id: str
    t_decision: int
    kind: OrderKind = "market"
    price: float | None = None
    tif: TimeInForce = "GTC"
    reduce_only: bool = False
    expire_ns: int | None = None
    parent_id: str = ""

    def __post_init__(self) -> None:
        validate_request(self)

    @property
    def side(self) -> int:
        return 1 if self.qty > 0 else -1

    @property
    def side_name(self) -> str:
        return "buy" if self.qty > 0 else "sell"

    @property
    def post_only(self) -> bool:
        return self.tif == "GTX"


def validate_request(o: OrderRequest) -> None:
    """Refuse an order no venue would accept, naming the order and the rule."""
    where = f"order {o.client_id!r} ({o.instrument})"
    if not (math.isfinite(o.qty) and o.qty != 0.0):
        raise ExchangeError(f"{where}: qty must be finite and non-zero, got {o.qty}")
    if not o.client_id or len(o.client_id) > MAX_CLIENT_ID or not set(o.client_id) <= _ID_OK:
        raise ExchangeError(f"{where}: client id must be 1-{MAX_CLIENT_ID} characters of [A-Za-z0-9-_.:]")
    if o.tif not in TIME_IN_FORCE:
        raise ExchangeError(f"{where}: time in force {o.tif!r} is not one of {TIME_IN_FORCE}")
    if o.kind == "market":
        if o.price is not None:
            raise ExchangeError(f"{where}: a market order has no limit price (got {o.price})")
        if o.tif == "GTX":
            raise ExchangeError(f"{where}: post-only (GTX) needs a limit order")
    elif o.kind == "limit":
        if o.price is None or not (math.isfinite(o.price) and o.price > 0.0):
            raise ExchangeError(f"{where}: a limit order needs a positive finite price, got {o.price}")
    else:
        raise ExchangeError(f"{where}: order kind {o.kind!r} is not market or limit")
    if o.expire_ns is not None and o.expire_ns <= o.t_decision:
        raise ExchangeError(f"{where}: expiry {o.expire_ns} is not after the decision time {o.t_decision}")


def child_client_id(prefix: str, t_decision: int, symbol: str, seq: int, replaces: int = 0) -> str:
    """Deterministic id of child ``seq`` of the parent decided at ``t_decision`` for ``symbol``.

    Compact (base-36 time in ms) so it fits Binance's 36 characters with long symbols; the
    ``replaces``-th cancel/replace of a child gets ``rN`` appended, so a replacement is a new
    order to the venue (it is: cancel/replace loses queue priority).
    """
    t36 = _base36(t_decision // 1_000_000)
    ns_rest = t_decision % 1_000_000
    core = f"{prefix}-{t36}{'' if ns_rest == 0 else '.' + _base36(ns_rest)}-{symbol}-{seq}"
    cid = core if replaces == 0 else f"{core}r{replaces}"
    if len(cid) > MAX_CLIENT_ID:
        raise ExchangeError(f"client id {cid!r} exceeds {MAX_CLIENT_ID} characters; shorten serving.client_id_prefix")
    return cid


def replacement(o: OrderRequest, client_id: str, *, qty: float | None = None, price: float | None = None) -> OrderRequest:
    """The order that replaces ``o`` (cancel/replace): same child, new id (from
    :func:`child_client_id` with the next ``replaces``), new price and/or size."""
    if client_id == o.client_id:
        raise ExchangeError(f"a replacement of {o.client_id!r} needs a new client id")
    return replace(o, client_id=client_id, qty=o.qty if qty is None else qty, price=o.price if price is None else price)


def clip_reduce_only(qty: float, position: float) -> float:
    """What a reduce-only order of ``qty`` may execute against ``position``: it can shrink the
    position to zero but never grow or flip it (0.0 when it would only add)."""
    if position == 0.0 or (qty > 0) == (position > 0):
        return 0.0
    return math.copysign(min(abs(qty), abs(position)), qty)


def passive_price(price: float, tick: float, side: int) -> float:
    """Round a limit price to the tick on the passive side (buys down, sells up)."""
    if tick <= 0.0:
        return price
    n = price / tick
    k = math.floor(n + 1e-9) if side > 0 else math.ceil(n - 1e-9)
    return round(k * tick, 12)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(reversed(out))
