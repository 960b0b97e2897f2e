"""Cross-venue routing: split a parent order across the venues that trade the instrument by
visible depth, fees and per-venue limits, and say where each part went and why.

Why: the same perpetual trades at several venues; the cheapest way to buy Q is to take the
levels with the best *all-in* price (price x (1 + taker fee) for buys, x (1 - fee) for sells)
across every book, subject to what each venue allows in one order (maximum quantity and
notional, lot size, minimum notional). The greedy merge of all visible levels by all-in price is
optimal for a single marketable sweep (it is a fractional knapsack over price levels); lot
rounding and minimum notionals are applied per venue afterwards, and what they remove goes to
the next-best venue with room (a venue once rounded takes no more, so the passes terminate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dea.errors import ExchangeError
from dea.execution.config import ExecutionConfig
from dea.execution.schedule import floor_lot


@dataclass(frozen=True)
class VenueBook:
    """One venue's view: its book side levels (best first) and its limits for this instrument."""

    venue: str
    bids: Sequence[tuple[float, float]]
    asks: Sequence[tuple[float, float]]
    taker_fee: float
    lot: float = 0.0
    min_notional: float = 0.0
    max_qty: float = math.inf
    max_notional: float = math.inf


@dataclass(frozen=True)
class RouteLeg:
    venue: str
    qty: float  # signed
    avg_price: float
    worst_price: float
    fee: float
    levels: int
    reason: str


@dataclass(frozen=True)
class RoutePlan:
    qty: float
    legs: tuple[RouteLeg, ...]
    unfilled: float
    all_in_price: float  # quantity-weighted price including fees

    def by_venue(self) -> dict[str, float]:
        return {leg.venue: leg.qty for leg in self.legs}


def route(qty: float, venues: Sequence[VenueBook], limit_price: float | None = None) -> RoutePlan:
    """Split signed ``qty`` across ``venues`` (see the module docstring)."""
    if not qty or not math.isfinite(qty):
        raise ExchangeError(f"route: quantity must be finite and non-zero, got {qty}")
    if len({v.venue for v in venues}) != len(venues):
        raise ExchangeError(f"route: venue names repeat in {[v.venue for v in venues]}")
    side = 1 if qty > 0 else -1
    want = abs(qty)
    levels = []
    for k, v in enumerate(venues):
        if v.taker_fee < 0 or v.max_qty <= 0 or v.max_notional <= 0:
            raise ExchangeError(f"route: venue {v.venue} has a negative fee or no room (max_qty/max_notional)")
        for j, (p, q) in enumerate(v.asks if side > 0 else v.bids):
            if q > 0 and p > 0 and (limit_price is None or (p <= limit_price if side > 0 else p >= limit_price)):
                levels.append((p * (1 + side * v.taker_fee) * side, j, k, p, q))
    levels.sort()
    take = [0.0] * len(venues)
    notional = [0.0] * len(venues)
    parts: list[list[list[float]]] = [[] for _ in venues]  # per venue: [price, qty] in sweep order
    capped = [""] * len(venues)

    def sweep(remaining: float, blocked: set[int]) -> float:
        for _, _, k, p, q in levels:
            if remaining <= 1e-12:
                break
            if k in blocked:
                continue
            v = venues[k]
            room = min(v.max_qty - take[k], (v.max_notional - notional[k]) / p)
            if room <= 1e-12:
                capped[k] = capped[k] or ("max_qty" if v.max_qty - take[k] <= 1e-12 else "max_notional")
                continue
            avail = q - _taken_at(k, p)
            x = min(avail, remaining, room)
            if x <= 1e-12:
                continue
            if room <= min(avail, remaining):
                capped[k] = capped[k] or ("max_qty" if v.max_qty - take[k] <= room + 1e-12 else "max_notional")
            _level_use[(k, p)] = _taken_at(k, p) + x
            take[k] += x
            notional[k] += x * p
            if parts[k] and parts[k][-1][0] == p:
                parts[k][-1][1] += x
            else:
                parts[k].append([p, x])
            remaining -= x
        return remaining

    _level_use: dict[tuple[int, float], float] = {}

    def _taken_at(k: int, p: float) -> float:
        return _level_use.get((k, p), 0.0)

    remaining = sweep(want, set())
    # per-venue lot rounding and minimum notional; the removed size goes to venues with room
    blocked: set[int] = set()
    for _ in range(len(venues) + 1):  # each pass that moves size blocks a venue: terminates
        moved = 0.0
        for k, v in enumerate(venues):
            if take[k] <= 0:
                continue
            q = floor_lot(take[k], v.lot)
            if q * (notional[k] / take[k]) < v.min_notional:
                q = 0.0
            if q < take[k] - 1e-12:
                cut = take[k] - q
                moved += cut
                while cut > 1e-12:  # give back the venue's worst levels first
                    p, x = parts[k][-1]
                    y = min(x, cut)
                    _level_use[(k, p)] -= y
                    notional[k] -= y * p
                    take[k] -= y
                    cut -= y
                    if y >= x - 1e-12:
                        parts[k].pop()
                    else:
                        parts[k][-1][1] = x - y
                take[k] = q
                blocked.add(k)  # at a lot boundary now: the rest goes to venues not yet rounded
                if q == 0.0:
                    capped[k] = capped[k] or "below min_notional"
                else:
                    capped[k] = capped[k] or f"lot {v.lot:g}"
        if moved <= 1e-12:
            break
        remaining = sweep(remaining + moved, blocked)
    legs = []
    total_allin = 0.0
    for k, v in enumerate(venues):
        if take[k] <= 1e-12:
            continue
        if v.lot > 0:  # on the lot grid exactly: float noise (7.8919999...) would be truncated a lot short by a venue
            take[k] = round(take[k] / v.lot) * v.lot
        avg = notional[k] / take[k]
        fee = notional[k] * v.taker_fee
        total_allin += notional[k] + side * fee
        worst = parts[k][-1][0]
        why = f"{len(parts[k])} level(s) to {worst:g} at all-in {avg * (1 + side * v.taker_fee):.6g} (fee {v.taker_fee:g})"
        if capped[k]:
            why += f"; capped by {capped[k]}"
        legs.append(RouteLeg(v.venue, side * take[k], avg, worst, fee, len(parts[k]), why))
    filled = sum(take)
    return RoutePlan(qty, tuple(legs), max(want - filled, 0.0), total_allin / filled if filled > 0 else math.nan)



def venue_books(cfg: ExecutionConfig, symbol: str,
                books: dict[str, tuple[Sequence[tuple[float, float]], Sequence[tuple[float, float]]]]) -> list[VenueBook]:
    """The configured venues of ``symbol`` with their current (bids, asks); a configured venue
    without a book is an error (routing must not silently skip a venue it was told about)."""
    routes = cfg.routes.get(symbol)
    if not routes:
        raise ExchangeError(f"execution.routes has no venues for {symbol}")
    out = []
    for r in routes:
        if r.venue not in books:
            raise ExchangeError(f"route {symbol}: no book from venue {r.venue} (have {sorted(books)})")
        bids, asks = books[r.venue]
        out.append(VenueBook(r.venue, bids, asks, r.taker_fee, r.lot, r.min_notional,
                             math.inf if r.max_qty is None else r.max_qty,
                             math.inf if r.max_notional is None else r.max_notional))
    return out


def route_rows(records: Sequence) -> list[dict]:  # Sequence[ParentRecord]
    """Every routed leg of journaled parents (``detail["routes"]`` written by
    :class:`dea.execution.routed.RoutedVenue`), one row each with its parent: the report's
    "where it went and why"."""
    out = []
    for rec in records:
        for leg in rec.detail.get("routes", ()):
            out.append({"parent_id": rec.parent_id, "instrument": rec.instrument, **leg})
    return out


def route_summary(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per ``instrument/venue``: legs, planned and filled size (absolute), filled notional,
    fees, average fill price and the venue's share of the instrument's filled size."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        a = out.setdefault(f"{r['instrument']}/{r['venue']}", {"legs": 0.0, "planned": 0.0, "filled": 0.0,
                                                               "notional": 0.0, "fees": 0.0})
        a["legs"] += 1
        a["planned"] += abs(r["qty"])
        a["filled"] += abs(r["filled"])
        a["notional"] += abs(r["filled"]) * (r["avg_price"] or 0.0)
        a["fees"] += r["fee"]
    totals: dict[str, float] = {}
    for key, a in out.items():
        totals[key.split("/", 1)[0]] = totals.get(key.split("/", 1)[0], 0.0) + a["filled"]
    for key, a in out.items():
        a["avg_price"] = a["notional"] / a["filled"] if a["filled"] > 0 else math.nan
        t = totals[key.split("/", 1)[0]]
        a["share"] = a["filled"] / t if t > 0 else math.nan
    return out
