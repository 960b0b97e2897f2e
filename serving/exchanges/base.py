"""What the live loop needs from a venue, and the reports it gets back.

Orders are market orders with deterministic client ids (:class:`dea.execution.orders.Order`).
``submit`` must be idempotent on the client id: a restarted loop re-submits orders it journaled
but never saw acknowledged, and the adapter must answer with the existing order instead of
placing a second one. Fills carry a venue-unique ``fill_id`` so the journal can ignore repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dea.execution.orders import Order


@dataclass(frozen=True, slots=True)
class OrderAck:
    """The venue's answer to a submission or a lookup."""

    client_id: str
    status: str  # "sent" (accepted, working), "filled", "rejected", "unknown" (venue never saw it)
    venue_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ExecFill:
    """One execution reported by a venue (quantities signed, costs in quote currency)."""

    fill_id: str
    client_id: str
    ts: int
    instrument: str
    index: int
    qty: float
    price: float
    fee: float
    spread: float = 0.0
    impact: float = 0.0
    maker: bool | None = None  # liquidity role when the venue reports it


@runtime_checkable
class Exchange(Protocol):
    """A venue as the loop sees it."""

    name: str

    def submit(self, orders: Sequence[Order]) -> list[OrderAck]:
        """Send orders (idempotent per client id); returns one ack per order."""

    def lookup(self, client_id: str, instrument: str) -> OrderAck:
        """What the venue knows about an order (``unknown`` if it never received it)."""

    def poll_fills(self, now_ns: int) -> list[ExecFill]:
        """Fills that happened since the last poll (may repeat earlier ones; journal dedupes)."""

    def positions(self) -> dict[str, float]:
        """Venue positions in base units, by instrument symbol (reconciliation truth)."""

    def close(self) -> None:
        """Release connections."""
