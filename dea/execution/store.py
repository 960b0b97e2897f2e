"""Execution store: child orders (with their type), parent orders and their fills, in SQLite —
the same file as the live loop's state journal (its own tables, WAL mode) or a file of its own.

Why separate tables next to the journal's: the journal's ``orders``/``ledger`` keep the account
(what was bought, what it cost); execution quality needs what the journal does not keep — the
order type, the parent an order works, the mid and touch at every fill, the arrival price and
the modelled cost — and ``dea execution-report`` must read it without importing ``serving``.

Idempotency across restarts: :meth:`ExecutionStore.record_order` inserts a client id once
(``INSERT OR IGNORE``) and says whether it was new; a restarted process that regenerates the
same deterministic ids learns which orders it already sent and asks the venue about those
instead of sending them again. stdlib only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from dea.errors import JournalError
from dea.execution.order_types import OrderRequest
from dea.execution.quality import FillRecord, ParentRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS exec_orders (
    client_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, instrument TEXT NOT NULL, idx INTEGER NOT NULL,
    qty REAL NOT NULL, kind TEXT NOT NULL, price REAL, tif TEXT NOT NULL, reduce_only INTEGER NOT NULL,
    expire_ns INTEGER, t_decision INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, updated_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exec_orders_status ON exec_orders(status);
CREATE TABLE IF NOT EXISTS exec_parents (
    parent_id TEXT PRIMARY KEY, instrument TEXT NOT NULL, algo TEXT NOT NULL, qty REAL NOT NULL,
    t_arrival INTEGER NOT NULL, arrival_mid REAL NOT NULL, end_mid REAL, t_end INTEGER, modelled_cost REAL,
    status TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exec_fills (
    fill_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, client_id TEXT NOT NULL, ts INTEGER NOT NULL,
    qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, mid REAL, touch REAL, maker INTEGER NOT NULL
);
"""
OPEN = ("new", "sent", "open", "pending")


class ExecutionStore:
    """SQLite store of typed child orders, parents and fills (thread-safe, one connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable SQLite execution store: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ orders
    def record_order(self, req: OrderRequest, status: str = "new") -> bool:
        """Write-ahead record of a child before it is sent; False if this client id is known."""
        return self._run(
            "INSERT OR IGNORE INTO exec_orders VALUES(?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)",
            (req.client_id, req.parent_id, req.instrument, req.index, req.qty, req.kind, req.price, req.tif,
             int(req.reduce_only), req.expire_ns, req.t_decision, status, time.time_ns()),
        ) == 1

    def update_order(self, client_id: str, status: str, reason: str | None = None) -> None:
        n = self._run("UPDATE exec_orders SET status=?, reason=COALESCE(?, reason), updated_ns=? WHERE client_id=?",
                      (status, reason, time.time_ns(), client_id))
        if n != 1:
            raise JournalError(f"{self.path}: no stored order with client id {client_id!r}")

    def order_status(self, client_id: str) -> str | None:
        rows = self._rows("SELECT status FROM exec_orders WHERE client_id=?", (client_id,))
        return rows[0][0] if rows else None

    def open_orders(self) -> list[OrderRequest]:
        """Orders not known to be final (to reconcile with the venue after a restart)."""
        q = ",".join("?" * len(OPEN))
        rows = self._rows(
            "SELECT instrument, idx, qty, client_id, t_decision, kind, price, tif, reduce_only, expire_ns, parent_id "
            f"FROM exec_orders WHERE status IN ({q}) ORDER BY t_decision, client_id", OPEN)
        return [OrderRequest(r[0], r[1], r[2], r[3], r[4], kind=r[5], price=r[6], tif=r[7], reduce_only=bool(r[8]),
                             expire_ns=r[9], parent_id=r[10]) for r in rows]

    # ------------------------------------------------------------------ parents and fills
    def record_parent(self, rec: ParentRecord) -> None:
        """Insert or update a parent and insert its fills (each once, keyed by client id and time)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO exec_parents VALUES(?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(parent_id) DO UPDATE SET "
                    "end_mid=excluded.end_mid, t_end=excluded.t_end, status=excluded.status, detail=excluded.detail",
                    (rec.parent_id, rec.instrument, rec.algo, rec.qty, rec.t_arrival, rec.arrival_mid, rec.end_mid,
                     rec.t_end, rec.modelled_cost, rec.status, json.dumps(rec.detail)),
                )
                for k, f in enumerate(rec.fills):
                    self._db.execute(
                        "INSERT OR IGNORE INTO exec_fills VALUES(?,?,?,?,?,?,?,?,?,?)",
                        (f"{f.client_id}:{f.ts}:{k}", rec.parent_id, f.client_id, f.ts, f.qty, f.price, f.fee, f.mid,
                         f.touch, int(f.maker)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def parents(self) -> list[ParentRecord]:
        fills: dict[str, list[FillRecord]] = {}
        for r in self._rows("SELECT parent_id, client_id, ts, qty, price, fee, mid, touch, maker FROM exec_fills "
                            "ORDER BY ts, fill_id"):
            fills.setdefault(r[0], []).append(FillRecord(r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8])))
        out = []
        for r in self._rows("SELECT parent_id, instrument, algo, qty, t_arrival, arrival_mid, end_mid, t_end, "
                            "modelled_cost, status, detail FROM exec_parents ORDER BY t_arrival, parent_id"):
            out.append(ParentRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6] if r[6] is not None else float("nan"),
                                    r[7] or r[4], r[8] if r[8] is not None else float("nan"),
                                    tuple(fills.get(r[0], [])), r[9], json.loads(r[10])))
        return out


def open_store(path: str | Path) -> ExecutionStore:
    """Open an existing store, refusing a file that is missing or has no execution tables."""
    p = Path(path)
    if not p.is_file():
        raise JournalError(f"{p}: no such journal")
    try:
        with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as db:
            ok = db.execute("SELECT 1 FROM sqlite_master WHERE name='exec_parents'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{p}: not a SQLite journal: {exc}") from None
    if not ok:
        raise JournalError(f"{p}: has no execution tables (exec_parents): nothing was journaled by an execution desk")
    return ExecutionStore(p)
