"""Order generation: from the exposure the risk engine allows to exchange-ready quantities.

Shared by the vectorised backtest (JIT-compiled :func:`order_quantity`), the event-driven
backtest and the live loop (:func:`generate_orders`), so all three round, skip and size orders
identically. The exposure-level rules (no-trade band, maximum order notional, order rate) are
applied just before, by the risk engine (:mod:`dea.risk.rules`); this module handles what only
exists in quantities:

- target minus position: the order moves position *plus orders still in flight* to the target,
  so latency never makes the loop order the same change twice;
- lot rounding toward zero, so an order never exceeds what the risk engine approved (a full
  close is sent exactly);
- minimum notional: an order below the instrument's ``min_notional`` is not sent, unless it
  closes the position (venues accept reduce-only closes of any size);
- dust: a change below 1e-12 of the position (float noise from exposure round trips) is no order;
- inverse (coin-margined) contracts trade in whole contracts of ``contract_size`` quote units
  (:func:`inverse_order_quantity`): what the order buys is USD of contracts, and a reduction
  closes contracts at the position's entry price, so the size depends on the open contract
  notional (:func:`dea.risk.margin.contract_notional_after`), which the caller passes.

Numpy + stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dea.errors import RiskError
from dea.instruments import Instrument

_DUST = 1e-12
_LOT_SLACK = 1e-9


def order_quantity(target_w, equity, price, position_q, pending_q, lot, min_notional):
    """Signed base-unit quantity that moves ``position_q + pending_q`` to ``target_w`` of equity.

    Returns 0.0 for no order. Plain scalar code so numba can compile it unchanged.
    """
    if not (price > 0.0) or not (equity > 0.0):
        return 0.0
    held = position_q + pending_q
    if target_w == 0.0:
        return -held
    dq = target_w * equity / price - held
    scale = abs(held) if abs(held) > abs(dq) else abs(dq)
    if abs(dq) <= _DUST * scale:
        return 0.0
    if lot > 0.0:
        n_lots = math.floor(abs(dq) / lot + _LOT_SLACK)
        dq = math.copysign(n_lots * lot, dq)
        if dq == 0.0:
            return 0.0
    if abs(dq) * price < min_notional and held + dq != 0.0:
        return 0.0
    return dq


def inverse_order_quantity(target_w, equity, price, position_q, pending_q, size, contract_n, min_notional):
    """Signed linear-equivalent quantity (coins, the unit every engine holds an inverse position
    in: ``N / P_entry``) that moves ``position_q + pending_q`` to ``target_w`` of equity on an
    inverse contract, in whole contracts of ``size`` quote units, as the venue takes the order.

    Opening, adding, or the new side of a reversal buys ``n * size`` quote units of contracts at
    ``price`` (``n * size / price`` coins); a reduction closes ``n`` contracts at the filled
    position's entry price ``contract_n / position_q`` (coins per contract ``size * |position_q|
    / |contract_n|``, whatever the price now); a full close (target 0, or fewer than one contract
    wanted on the other side) closes everything. Rounded toward zero like
    :func:`order_quantity`, with its dust and ``min_notional`` rules. ``contract_n``: the open
    contract notional of ``position_q`` (:func:`dea.risk.margin.contract_notional_after`).
    Plain scalar code: the vectorised kernel JIT-compiles it, the event backtest, the paper
    venue and the live loop call it through :func:`generate_orders`.
    """
    if not (price > 0.0) or not (equity > 0.0):
        return 0.0
    held = position_q + pending_q
    if target_w == 0.0:
        return -held
    want = target_w * equity / price
    if held == 0.0 or (want > 0.0) != (held > 0.0):
        n = math.floor(abs(want) * price / size + _LOT_SLACK)
        dq = math.copysign(n * size / price, want) - held
    elif abs(want) >= abs(held):
        n = math.floor((abs(want) - abs(held)) * price / size + _LOT_SLACK)
        dq = math.copysign(n * size / price, want)
    else:
        lot = size * abs(position_q) / abs(contract_n) if contract_n != 0.0 and position_q != 0.0 else size / price
        n = math.floor((abs(held) - abs(want)) / lot + _LOT_SLACK)
        dq = -math.copysign(n * lot, held)
    scale = abs(held) if abs(held) > abs(dq) else abs(dq)
    if abs(dq) <= _DUST * scale:
        return 0.0
    if abs(dq) * price < min_notional and held + dq != 0.0:
        return 0.0
    return dq


def inverse_order_contracts(dq, price, position_q, pending_q, size, contract_n):
    """Contracts (unsigned) an inverse order of ``dq`` coins from :func:`inverse_order_quantity`
    trades, the same branches: contracts closed at the entry lot ``size * |position_q| /
    |contract_n|`` coins each (a reduction, or the whole position on a full close or reversal)
    plus contracts opened at ``price`` (``|coins| * price / size``). What a venue is sent
    instead of converting ``dq`` at the decision price, which is right for an opening only."""
    held = position_q + pending_q
    lot = size * abs(position_q) / abs(contract_n) if contract_n != 0.0 and position_q != 0.0 else size / price
    after = held + dq
    if held == 0.0:
        return abs(dq) * price / size
    if after == 0.0 or (after > 0.0) != (held > 0.0):
        return abs(held) / lot + abs(after) * price / size
    if abs(after) > abs(held):
        return abs(dq) * price / size
    return abs(dq) / lot


@dataclass(frozen=True, slots=True)
class Order:
    """A market order: ``qty`` signed base units (+ buys), decided at ``t_decision``, due at
    ``t_due`` (decision + latency). ``client_id`` is deterministic (decision time and symbol), so
    a restarted loop regenerates the same id and the venue rejects the duplicate."""

    instrument: str
    index: int
    qty: float
    t_decision: int
    t_due: int
    price_ref: float
    client_id: str
    #: an inverse contract's order: how many contracts it trades (unsigned, whole where the
    #: position is), what a venue is sent (:func:`inverse_order_contracts`); 0 otherwise
    contracts: float = 0.0

    @property
    def side(self) -> str:
        return "buy" if self.qty > 0 else "sell"

    @property
    def notional(self) -> float:
        return abs(self.qty) * self.price_ref


@dataclass(frozen=True)
class OrderSpec:
    """Per-instrument order constraints, as arrays aligned with the instrument order.
    ``inverse_size``: the contract size (quote units) of an inverse contract, 0 for the others."""

    symbols: tuple[str, ...]
    lot: np.ndarray
    min_notional: np.ndarray
    inverse_size: np.ndarray

    @classmethod
    def from_instruments(cls, instruments: Sequence[Instrument]) -> "OrderSpec":
        return cls(
            tuple(i.symbol for i in instruments),
            np.array([i.lot_size for i in instruments], dtype=np.float64),
            np.array([i.min_notional for i in instruments], dtype=np.float64),
            np.array([i.contract_size if i.inverse else 0.0 for i in instruments], dtype=np.float64),
        )


def generate_orders(
    t_ns: int,
    exposure: np.ndarray,
    position_q: np.ndarray,
    pending_q: np.ndarray,
    equity: float,
    prices: np.ndarray,
    spec: OrderSpec,
    *,
    latency_ns: int = 0,
    id_prefix: str = "dea",
    contract_n: Sequence[float] | None = None,
) -> list[Order]:
    """Orders that move positions (plus in-flight orders) to ``exposure`` at ``prices``.

    Instruments without a positive finite price get no order (they cannot be valued). An inverse
    contract is sized in whole contracts (:func:`inverse_order_quantity`) and needs
    ``contract_n``, the open contract notional of each position
    (:attr:`dea.execution.account.Account.contract_n`).
    """
    n = len(spec.symbols)
    for name, arr in (("exposure", exposure), ("position", position_q), ("pending", pending_q), ("prices", prices)):
        if len(arr) != n:
            raise RiskError(f"{name} has {len(arr)} entries; expected {n} for {spec.symbols}")
    inv = spec.inverse_size
    if contract_n is None:
        if inv.any():
            raise RiskError(f"orders on inverse contracts {[s for s, c in zip(spec.symbols, inv) if c]} need the "
                            "open contract notional of each position (contract_n) to size whole contracts")
    elif len(contract_n) != n:
        raise RiskError(f"contract_n has {len(contract_n)} entries; expected {n} for {spec.symbols}")
    orders: list[Order] = []
    for i in range(n):
        px = float(prices[i])
        contracts = 0.0
        if inv[i] > 0.0:
            assert contract_n is not None
            pos, pend, n0 = float(position_q[i]), float(pending_q[i]), float(contract_n[i])
            dq = inverse_order_quantity(float(exposure[i]), equity, px, pos, pend, float(inv[i]), n0,
                                        float(spec.min_notional[i]))
            if dq != 0.0:
                contracts = inverse_order_contracts(dq, px, pos, pend, float(inv[i]), n0)
        else:
            dq = order_quantity(
                float(exposure[i]), equity, px, float(position_q[i]), float(pending_q[i]),
                float(spec.lot[i]), float(spec.min_notional[i]),
            )
        if dq != 0.0:
            sym = spec.symbols[i]
            orders.append(Order(sym, i, dq, t_ns, t_ns + latency_ns, px, f"{id_prefix}-{t_ns}-{sym}", contracts))
    return orders
