"""The live loop's state journal: SQLite in WAL mode, one transaction per state change.

Why: a process that trades must survive its own crash without sending an order twice or
forgetting one. The protocol is write-ahead:

1. a decision and the orders it implies are committed together (status ``new``) *before* any
   order is sent; client order ids are deterministic (decision time + symbol), so a re-sent
   order is recognised by the venue as the same order;
2. the venue's answer moves an order to ``sent`` / ``filled`` / ``rejected``;
3. each fill is inserted under its venue fill id (``INSERT OR IGNORE``) into the ledger and moves
   the position and cash in the same transaction, so a fill reported twice is counted once.
   Funding payments go to the same ledger, so replaying it rebuilds the account exactly.

On restart :meth:`Journal.load` returns positions, cash, orders still open (``new``/``sent``:
to reconcile with the venue), the last decision time, the risk engine's state and the model
version; the loop reconciles and continues. stdlib only.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dea.errors import JournalError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    t_ns INTEGER PRIMARY KEY,
    model_version TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    allowed TEXT NOT NULL,
    equity REAL,
    detail TEXT,
    written_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY,
    t_decision INTEGER NOT NULL,
    t_due INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    idx INTEGER NOT NULL,
    qty REAL NOT NULL,
    price_ref REAL,
    status TEXT NOT NULL,
    venue_id TEXT,
    reason TEXT,
    updated_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    fill_id TEXT UNIQUE,
    client_id TEXT,
    ts INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    idx INTEGER NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL,
    fee REAL NOT NULL,
    spread REAL NOT NULL,
    impact REAL NOT NULL,
    amount REAL NOT NULL,
    liquidation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (instrument TEXT PRIMARY KEY, qty REAL NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS account (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ns INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    written_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    heartbeat_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS option_orders (
    client_id TEXT PRIMARY KEY,
    t_decision INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    contracts REAL NOT NULL,
    price_ref REAL NOT NULL,
    underlying_price REAL NOT NULL,
    status TEXT NOT NULL,
    venue_id TEXT,
    reason TEXT,
    detail TEXT,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS option_fills (
    fill_id TEXT PRIMARY KEY,
    client_id TEXT,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    contracts REAL NOT NULL,
    price REAL NOT NULL,
    underlying_price REAL NOT NULL,
    fee REAL NOT NULL,
    cash REAL NOT NULL,
    collateral TEXT NOT NULL,
    cash_collateral REAL NOT NULL,
    fee_collateral REAL NOT NULL,
    written_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS option_state (
    t_ns INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    instrument TEXT,
    contracts REAL NOT NULL,
    value REAL NOT NULL,
    price REAL,
    iv REAL,
    delta REAL,
    gamma REAL,
    vega REAL,
    theta REAL,
    equity REAL,
    detail TEXT,
    written_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS guard_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ns INTEGER NOT NULL,
    guard TEXT NOT NULL,
    instrument TEXT NOT NULL,
    value REAL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    written_ns INTEGER NOT NULL
);
"""

OPEN_STATUSES = ("new", "sent")


class LeaseHeldError(JournalError):
    """Another live writer holds the journal's lease: this process must not trade on it."""


@dataclass(frozen=True)
class Lease:
    """The journal's single-writer lease: who holds it, since which takeover, until when."""

    holder: str
    epoch: int
    heartbeat_ns: int
    expires_ns: int


@dataclass(frozen=True)
class OrderRow:
    client_id: str
    t_decision: int
    t_due: int
    instrument: str
    index: int
    qty: float
    price_ref: float
    status: str
    venue_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FillRow:
    fill_id: str
    client_id: str
    ts: int
    instrument: str
    index: int
    qty: float
    price: float
    fee: float
    spread: float
    impact: float
    liquidation: bool = False


@dataclass(frozen=True)
class OptionOrderRow:
    """An option order of the overlay (:mod:`serving.options_overlay`), journaled before it is sent."""

    client_id: str
    t_decision: int
    instrument: str
    contracts: float
    price_ref: float  # USD per unit of underlying the overlay priced it at
    underlying_price: float
    status: str
    venue_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class OptionFillRow:
    """An option trade or settlement (``kind``: ``trade`` | ``settle``; a settlement's
    ``contracts`` closes the position). ``cash``: USD the account received (negative: paid), fee
    deducted; ``*_collateral``: the same in the venue's collateral currency."""

    fill_id: str
    client_id: str | None
    kind: str
    ts: int
    instrument: str
    contracts: float
    price: float
    underlying_price: float
    fee: float
    cash: float
    collateral: str
    cash_collateral: float
    fee_collateral: float


@dataclass(frozen=True)
class LedgerEntry:
    """One cash/position movement, in the order it happened (``kind``: ``fill``, ``funding`` or
    ``option``: an option trade or settlement, whose detail is in ``option_fills``)."""

    seq: int
    kind: str
    fill: FillRow | None
    ts: int
    index: int
    amount: float  # funding or option cash paid (positive: the account paid)


@dataclass
class JournalState:
    """What a restarted loop needs to continue where it stopped."""

    positions: dict[str, float] = field(default_factory=dict)
    cash: float | None = None
    open_orders: list[OrderRow] = field(default_factory=list)
    last_decision_t: int | None = None
    decisions: int = 0
    risk_state: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def is_fresh(self) -> bool:
        return self.last_decision_t is None and not self.positions and self.cash is None


def _funding_key(ts: int, instrument: str) -> str:
    return f"funding:{int(ts)}:{instrument}"


def _dumps(obj: Any) -> str:
    """Compact JSON (orjson: fast enough for every decision; NaN becomes null, never a number)."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _clean(values: Iterable[float]) -> list[float | None]:
    """NaN is not JSON; a NaN target (model failure) is stored as null."""
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in values]


class Journal:
    """SQLite WAL journal (one connection, serialised by a lock; safe to call from the
    hot-swap thread too). ``synchronous=FULL`` by default: a committed order survives power loss."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode!r})")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable SQLite journal: {exc}") from None
        self._lock = threading.Lock()
        self._holder: str | None = None
        self._epoch = 0
        self._lease_ttl = 0
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif version != str(SCHEMA_VERSION):
            raise JournalError(f"{self.path}: journal schema {version}, this DEA writes {SCHEMA_VERSION}")

    # -- plumbing ----------------------------------------------------------------------------------
    def _tx(self, statements: Sequence[tuple[str, Sequence[Any]]], *, fenced: bool = False) -> list[int]:
        """Run statements in one IMMEDIATE transaction; returns each statement's rowcount.

        ``fenced``: the transaction also renews this process's lease and is rolled back (a
        :class:`LeaseHeldError`) when the lease is no longer ours: a writer that stalled past its
        expiry while a standby took over cannot journal (and so cannot send) another order."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if fenced and self._holder is not None:
                    now = time.time_ns()
                    n = self._db.execute(
                        "UPDATE lease SET heartbeat_ns=?, expires_ns=? WHERE id=1 AND holder=? AND epoch=? AND expires_ns>=?",
                        (now, now + self._lease_ttl, self._holder, self._epoch, now),
                    ).rowcount
                    if n != 1:
                        row = self._db.execute("SELECT holder, epoch, expires_ns FROM lease WHERE id=1").fetchone()
                        self._db.execute("ROLLBACK")
                        raise LeaseHeldError(f"{self.path}: this process ({self._holder}) lost the journal lease "
                                             f"(now held by {row[0] if row else None}, epoch {row[1] if row else None}); "
                                             "stopping without journaling or sending")
                counts = [self._db.execute(sql, args).rowcount for sql, args in statements]
                self._db.execute("COMMIT")
                return counts
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    # -- single writer: the lease -----------------------------------------------------------------
    def lease(self) -> Lease | None:
        rows = self._query("SELECT holder, epoch, heartbeat_ns, expires_ns FROM lease WHERE id=1")
        return Lease(*rows[0]) if rows else None

    def try_acquire_lease(self, holder: str, ttl_ns: int) -> Lease | None:
        """Take the lease atomically when it is free or expired (or already ours); None when a
        live writer holds it. A takeover bumps the epoch, which fences the previous holder."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                now = time.time_ns()
                row = self._db.execute("SELECT holder, epoch, expires_ns FROM lease WHERE id=1").fetchone()
                if row is not None and row[0] != holder and row[2] >= now:
                    self._db.execute("ROLLBACK")
                    return None
                epoch = (row[1] if row is not None else 0) + (0 if row is not None and row[0] == holder else 1)
                self._db.execute(
                    "INSERT INTO lease(id, holder, epoch, heartbeat_ns, expires_ns) VALUES(1,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET holder=excluded.holder, epoch=excluded.epoch, "
                    "heartbeat_ns=excluded.heartbeat_ns, expires_ns=excluded.expires_ns",
                    (holder, epoch, now, now + int(ttl_ns)),
                )
                self._db.execute("INSERT INTO events(t_ns, kind, detail, written_ns) VALUES(?,?,?,?)",
                                 (None, "lease_acquired", _dumps({"holder": holder, "epoch": epoch,
                                                                  "previous": None if row is None else row[0]}), now))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        self._holder, self._epoch, self._lease_ttl = holder, epoch, int(ttl_ns)
        return Lease(holder, epoch, now, now + int(ttl_ns))

    def acquire_lease(self, holder: str, ttl_ns: int) -> Lease:
        """:meth:`try_acquire_lease` or a :class:`LeaseHeldError` naming the holder."""
        got = self.try_acquire_lease(holder, ttl_ns)
        if got is None:
            cur = self.lease()
            left = (cur.expires_ns - time.time_ns()) / 1e9 if cur else 0.0
            raise LeaseHeldError(
                f"{self.path}: journal is held by a live writer {cur.holder if cur else '?'} (lease renewed "
                f"{(time.time_ns() - cur.heartbeat_ns) / 1e9 if cur else 0:.1f}s ago, expires in {left:.1f}s); refusing "
                "to trade on it. Run `dea serve --standby` to take over when it stops."
            )
        return got

    def renew_lease(self) -> None:
        """Heartbeat (raises :class:`LeaseHeldError` when the lease was lost)."""
        if self._holder is not None:
            self._tx([], fenced=True)

    def release_lease(self) -> None:
        """Give the lease up (clean shutdown): a standby may take over at once."""
        if self._holder is None:
            return
        self._tx([("UPDATE lease SET expires_ns=0 WHERE id=1 AND holder=? AND epoch=?", (self._holder, self._epoch))])
        self._holder = None

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta / state ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._tx([("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))])

    def check_identity(self, instruments: Sequence[str]) -> None:
        """Bind the journal to its instruments; reopening it for others is an error."""
        stored = self.get_meta("instruments")
        want = _dumps(list(instruments))
        if stored is None:
            self.set_meta("instruments", want)
        elif stored != want:
            raise JournalError(f"{self.path}: journal belongs to instruments {stored}, not {want}")

    # -- writes ------------------------------------------------------------------------------------
    def record_decision(
        self,
        t_ns: int,
        *,
        model_version: str | None,
        action: str,
        target: Iterable[float],
        allowed: Iterable[float],
        equity: float,
        orders: Sequence[OrderRow],
        detail: Mapping[str, Any] | None = None,
        risk_state: Mapping[str, Any] | None = None,
    ) -> None:
        """Commit a decision, its new orders and the risk state in ONE transaction."""
        now = time.time_ns()
        stmts: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO decisions(t_ns, model_version, action, target, allowed, equity, detail, written_ns) "
                "VALUES(?,?,?,?,?,?,?,?)",
                (int(t_ns), model_version, action, _dumps(_clean(target)), _dumps(_clean(allowed)), float(equity),
                 _dumps(dict(detail or {})), now),
            )
        ]
        for o in orders:
            stmts.append(
                (
                    "INSERT INTO orders(client_id, t_decision, t_due, instrument, idx, qty, price_ref, status, venue_id, "
                    "reason, updated_ns) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                    (o.client_id, o.t_decision, o.t_due, o.instrument, o.index, o.qty, o.price_ref, o.status,
                     o.venue_id, o.reason, now),
                )
            )
        if risk_state is not None:
            stmts.append(self._state_stmt("risk", risk_state, now))
        try:
            self._tx(stmts, fenced=True)
        except sqlite3.IntegrityError as exc:
            raise JournalError(f"{self.path}: decision at t={t_ns} or one of its orders is already journaled: {exc}") from None

    def update_order(self, client_id: str, status: str, *, venue_id: str | None = None, reason: str | None = None) -> None:
        counts = self._tx(
            [
                (
                    "UPDATE orders SET status=?, venue_id=COALESCE(?, venue_id), reason=COALESCE(?, reason), updated_ns=? "
                    "WHERE client_id=?",
                    (status, venue_id, reason, time.time_ns(), client_id),
                )
            ]
        )
        if counts[0] != 1:
            raise JournalError(f"{self.path}: no journaled order with client id {client_id!r}")

    def record_fill(self, fill: FillRow, *, order_status: str | None = "filled") -> bool:
        """Insert a fill (idempotent on ``fill_id``) and move position and cash with it.

        Returns False when this fill was already journaled (nothing changes).
        """
        now = time.time_ns()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO ledger(kind, fill_id, client_id, ts, instrument, idx, qty, price, fee, spread, "
                    "impact, amount, liquidation) VALUES('fill',?,?,?,?,?,?,?,?,?,?,0,?)",
                    (fill.fill_id, fill.client_id, fill.ts, fill.instrument, fill.index, fill.qty, fill.price, fill.fee,
                     fill.spread, fill.impact, int(fill.liquidation)),
                )
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "INSERT INTO positions(instrument, qty, updated_ns) VALUES(?,?,?) "
                    "ON CONFLICT(instrument) DO UPDATE SET qty=qty+excluded.qty, updated_ns=excluded.updated_ns",
                    (fill.instrument, fill.qty, now),
                )
                self._db.execute(
                    "UPDATE account SET value=value-? WHERE key='cash'",
                    (fill.qty * fill.price + fill.fee + fill.spread + fill.impact,),
                )
                if order_status is not None:
                    self._db.execute(
                        "UPDATE orders SET status=?, updated_ns=? WHERE client_id=?", (order_status, now, fill.client_id)
                    )
                self._db.execute("COMMIT")
                return True
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def set_cash(self, cash: float) -> None:
        self._tx([("INSERT INTO account(key, value) VALUES('cash', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (float(cash),))])

    def record_funding(self, ts: int, instrument: str, index: int, paid: float) -> bool:
        """A funding settlement: the account paid ``paid`` (negative: received). Returns False
        when this settlement was already journaled (nothing changes)."""
        # keyed like a fill (``funding:<ts>:<instrument>``): one settlement is journaled once
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO ledger(kind, fill_id, client_id, ts, instrument, idx, qty, price, fee, "
                    "spread, impact, amount, liquidation) VALUES('funding', ?, NULL, ?, ?, ?, 0, 0, 0, 0, 0, ?, 0)",
                    (_funding_key(ts, instrument), int(ts), instrument, int(index), float(paid)),
                )
                if cur.rowcount == 1:
                    self._db.execute("UPDATE account SET value=value-? WHERE key='cash'", (float(paid),))
                self._db.execute("COMMIT")
                return cur.rowcount == 1
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    # -- options (serving.options_overlay) ---------------------------------------------------------
    def record_option_order(self, order: OptionOrderRow, detail: Mapping[str, Any] | None = None) -> bool:
        """Journal an option order before it is sent; False when its client id is already
        journaled (a restart re-deciding the same roll), and nothing changes."""
        counts = self._tx([(
            "INSERT OR IGNORE INTO option_orders(client_id, t_decision, instrument, contracts, price_ref, underlying_price, "
            "status, venue_id, reason, detail, updated_ns) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            (order.client_id, int(order.t_decision), order.instrument, float(order.contracts), float(order.price_ref),
             float(order.underlying_price), order.status, order.venue_id, order.reason, _dumps(dict(detail or {})),
             time.time_ns()),
        )], fenced=True)
        return counts[0] == 1

    def update_option_order(self, client_id: str, status: str, *, venue_id: str | None = None, reason: str | None = None) -> None:
        counts = self._tx([(
            "UPDATE option_orders SET status=?, venue_id=COALESCE(?, venue_id), reason=COALESCE(?, reason), updated_ns=? "
            "WHERE client_id=?", (status, venue_id, reason, time.time_ns(), client_id),
        )])
        if counts[0] != 1:
            raise JournalError(f"{self.path}: no journaled option order with client id {client_id!r}")

    def option_orders(self, statuses: Sequence[str] | None = None) -> list[OptionOrderRow]:
        sql = ("SELECT client_id, t_decision, instrument, contracts, price_ref, underlying_price, status, venue_id, reason "
               "FROM option_orders")
        args: tuple[Any, ...] = ()
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(statuses)
        return [OptionOrderRow(*r) for r in self._query(sql + " ORDER BY t_decision", args)]

    def record_option_fill(self, fill: OptionFillRow) -> bool:
        """An option trade or settlement, idempotent on ``fill_id``: its detail row, a ledger
        row (kind ``option``, amount = cash paid) and the cash, in one transaction; the order
        (if any) becomes ``filled``. False when it was already journaled (nothing changes)."""
        now = time.time_ns()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO option_fills(fill_id, client_id, kind, ts, instrument, contracts, price, "
                    "underlying_price, fee, cash, collateral, cash_collateral, fee_collateral, written_ns) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (fill.fill_id, fill.client_id, fill.kind, int(fill.ts), fill.instrument, float(fill.contracts),
                     float(fill.price), float(fill.underlying_price), float(fill.fee), float(fill.cash), fill.collateral,
                     float(fill.cash_collateral), float(fill.fee_collateral), now),
                )
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "INSERT INTO ledger(kind, fill_id, client_id, ts, instrument, idx, qty, price, fee, spread, impact, "
                    "amount, liquidation) VALUES('option',?,?,?,?,-1,?,?,?,0,0,?,0)",
                    (fill.fill_id, fill.client_id, int(fill.ts), fill.instrument, float(fill.contracts), float(fill.price),
                     float(fill.fee), -float(fill.cash)),
                )
                self._db.execute("UPDATE account SET value=value-? WHERE key='cash'", (-float(fill.cash),))
                if fill.client_id:
                    self._db.execute("UPDATE option_orders SET status='filled', updated_ns=? WHERE client_id=?",
                                     (now, fill.client_id))
                self._db.execute("COMMIT")
                return True
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def option_fills(self) -> list[OptionFillRow]:
        rows = self._query("SELECT fill_id, client_id, kind, ts, instrument, contracts, price, underlying_price, fee, cash, "
                           "collateral, cash_collateral, fee_collateral FROM option_fills ORDER BY ts, written_ns")
        return [OptionFillRow(*r) for r in rows]

    def option_positions(self) -> dict[str, float]:
        """Option contracts held per instrument: the sum of the journaled trades and settlements."""
        rows = self._query("SELECT instrument, SUM(contracts) FROM option_fills GROUP BY instrument")
        return {k: float(q) for k, q in rows if abs(q) > 1e-9}

    def record_option_state(self, t_ns: int, *, action: str, instrument: str | None, contracts: float, value: float,
                            price: float, iv: float, greeks: Mapping[str, float], equity: float,
                            detail: Mapping[str, Any] | None = None) -> None:
        """The overlay after its step at ``t_ns`` (position, per-unit mark, inputs, greeks as
        fractions of equity): the step is done once this row is journaled."""
        def num(x: float) -> float | None:
            return float(x) if x is not None and math.isfinite(float(x)) else None

        self._tx([(
            "INSERT OR REPLACE INTO option_state(t_ns, action, instrument, contracts, value, price, iv, delta, gamma, vega, "
            "theta, equity, detail, written_ns) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (int(t_ns), action, instrument, float(contracts), float(value), num(price), num(iv),
             *(num(greeks.get(k, 0.0)) for k in ("delta", "gamma", "vega", "theta")), num(equity),
             _dumps(dict(detail or {})), time.time_ns()),
        )], fenced=True)

    def option_states(self, t_ns: int | None = None) -> list[dict[str, Any]]:
        """The overlay's journaled steps in time order (only the one at ``t_ns`` when given)."""
        where, args = (" WHERE t_ns=?", (int(t_ns),)) if t_ns is not None else ("", ())
        rows = self._query("SELECT t_ns, action, instrument, contracts, value, price, iv, delta, gamma, vega, theta, equity, "
                           f"detail FROM option_state{where} ORDER BY t_ns", args)
        keys = ("t_ns", "action", "instrument", "contracts", "value", "price", "iv", "delta", "gamma", "vega", "theta", "equity")
        return [{**dict(zip(keys, r[:12])), "detail": json.loads(r[12] or "{}")} for r in rows]

    def last_option_state(self) -> dict[str, Any] | None:
        rows = self._query("SELECT MAX(t_ns) FROM option_state")
        return None if rows[0][0] is None else self.option_states(int(rows[0][0]))[0]

    def funding_recorded(self, ts: int, instrument: str) -> bool:
        """Whether the settlement of ``instrument`` at ``ts`` is already in the ledger."""
        rows = self._query("SELECT 1 FROM ledger WHERE fill_id=? OR (kind='funding' AND fill_id IS NULL AND ts=? "
                           "AND instrument=?) LIMIT 1", (_funding_key(ts, instrument), int(ts), instrument))
        return bool(rows)

    def set_positions(self, positions: Mapping[str, float], *, reason: str) -> None:
        """Overwrite positions (reconciliation with the venue) and log the correction."""
        now = time.time_ns()
        stmts: list[tuple[str, Sequence[Any]]] = [
            ("INSERT INTO positions(instrument, qty, updated_ns) VALUES(?,?,?) "
             "ON CONFLICT(instrument) DO UPDATE SET qty=excluded.qty, updated_ns=excluded.updated_ns", (k, float(v), now))
            for k, v in positions.items()
        ]
        stmts.append(("INSERT INTO events(t_ns, kind, detail, written_ns) VALUES(?,?,?,?)",
                      (None, "reconcile", _dumps({"positions": dict(positions), "reason": reason}), now)))
        self._tx(stmts)

    def _state_stmt(self, key: str, value: Mapping[str, Any], now: int) -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO state(key, value, updated_ns) VALUES(?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_ns=excluded.updated_ns",
            (key, _dumps(dict(value)), now),
        )

    def save_state(self, key: str, value: Mapping[str, Any]) -> None:
        self._tx([self._state_stmt(key, value, time.time_ns())])

    def record_event(self, kind: str, detail: Mapping[str, Any], t_ns: int | None = None) -> None:
        """Fallbacks, model swaps, kill switch, reconciliation: the loop's audit trail."""
        self._tx([("INSERT INTO events(t_ns, kind, detail, written_ns) VALUES(?,?,?,?)",
                   (t_ns, kind, _dumps(dict(detail)), time.time_ns()))])

    def record_guard(self, t_ns: int, guard: str, instrument: str, value: float, action: str, detail: str) -> None:
        """A value the market-data guards quarantined (:mod:`dea.guards`): what, when, which action."""
        v = float(value)
        self._tx([("INSERT INTO guard_events(t_ns, guard, instrument, value, action, detail, written_ns) "
                   "VALUES(?,?,?,?,?,?,?)",
                   (int(t_ns), guard, instrument, v if v - v == 0.0 else None, action,
                    f"{detail} (value {v!r})", time.time_ns()))])

    def guard_events(self, guard: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT t_ns, guard, instrument, value, action, detail FROM guard_events"
        args: tuple[Any, ...] = (guard,) if guard else ()
        rows = self._query(sql + (" WHERE guard=?" if guard else "") + " ORDER BY id", args)
        return [{"t_ns": r[0], "guard": r[1], "instrument": r[2], "value": r[3], "action": r[4], "detail": r[5]}
                for r in rows]

    # -- reads -------------------------------------------------------------------------------------
    def load(self) -> JournalState:
        st = JournalState()
        st.positions = {k: float(v) for k, v in self._query("SELECT instrument, qty FROM positions")}
        cash = self._query("SELECT value FROM account WHERE key='cash'")
        st.cash = float(cash[0][0]) if cash else None
        st.open_orders = self.orders(OPEN_STATUSES)
        last = self._query("SELECT MAX(t_ns), COUNT(*) FROM decisions")[0]
        st.last_decision_t = None if last[0] is None else int(last[0])
        st.decisions = int(last[1])
        for key, value in self._query("SELECT key, value FROM state"):
            if key == "risk":
                st.risk_state = json.loads(value)
            elif key == "model":
                st.model = json.loads(value)
        st.meta = dict(self._query("SELECT key, value FROM meta"))
        return st

    def orders(self, statuses: Sequence[str] | None = None) -> list[OrderRow]:
        sql = ("SELECT client_id, t_decision, t_due, instrument, idx, qty, price_ref, status, venue_id, reason "
               "FROM orders")
        args: tuple[Any, ...] = ()
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(statuses)
        sql += " ORDER BY t_decision, idx"
        return [OrderRow(*row) for row in self._query(sql, args)]

    def ledger(self) -> list[LedgerEntry]:
        """Every fill and funding payment in the order it was journaled (to rebuild the account)."""
        rows = self._query(
            "SELECT seq, kind, fill_id, client_id, ts, instrument, idx, qty, price, fee, spread, impact, amount, "
            "liquidation FROM ledger ORDER BY seq"
        )
        out = []
        for r in rows:
            fill = None
            if r[1] == "fill":
                fill = FillRow(r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], bool(r[13]))
            out.append(LedgerEntry(r[0], r[1], fill, r[4], r[6], r[12]))
        return out

    def fills(self) -> list[FillRow]:
        return [e.fill for e in self.ledger() if e.fill is not None]

    def decisions(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT t_ns, model_version, action, target, allowed, equity, detail FROM decisions ORDER BY t_ns")
        return [
            {"t_ns": r[0], "model_version": r[1], "action": r[2], "target": json.loads(r[3]),
             "allowed": json.loads(r[4]), "equity": r[5], "detail": json.loads(r[6] or "{}")}
            for r in rows
        ]

    def last_decision_t(self) -> int | None:
        """Time of the latest journaled decision (a standby follows the writer by it)."""
        rows = self._query("SELECT MAX(t_ns) FROM decisions")
        return None if rows[0][0] is None else int(rows[0][0])

    def decision_target(self, t_ns: int) -> list[float | None] | None:
        """The pre-risk target journaled for the decision at ``t_ns`` (None: no such decision)."""
        rows = self._query("SELECT target FROM decisions WHERE t_ns=?", (int(t_ns),))
        return json.loads(rows[0][0]) if rows else None

    def decision_allowed(self, t_ns: int) -> list[float | None] | None:
        """The exposure the risk engine allowed at ``t_ns`` (None: no such decision)."""
        rows = self._query("SELECT allowed FROM decisions WHERE t_ns=?", (int(t_ns),))
        return json.loads(rows[0][0]) if rows else None

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT t_ns, kind, detail FROM events"
        args: tuple[Any, ...] = ()
        if kind:
            sql += " WHERE kind=?"
            args = (kind,)
        return [{"t_ns": r[0], "kind": r[1], "detail": json.loads(r[2])} for r in self._query(sql + " ORDER BY id", args)]
