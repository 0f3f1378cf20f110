"""Proxy mode's outbox: the charge points' CALLs that the CSMS has not answered yet, in SQLite or
PostgreSQL (:mod:`core_client.storage.database`).

A CALL answered by the Core Client while the CSMS was down or slow is appended here, in the order the
charge point sent it, and removed only when the CSMS has answered it (:meth:`Outbox.delivered`), in
the same transaction that records the CSMS's transactionId for a StartTransaction that was given an
offline id. So after a crash or restart nothing is lost; a CALL is sent again (with its original
message id) only if the Core Client stopped between the CSMS's answer and that commit, or the
connection dropped before the answer came.

Used from the event loop's thread. Its own tables (part ``outbox`` of the migrations) in the database it
is given: the Core Client's own or one of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocpp.messages import Call

from core_client.proxy.policy import OFFLINE_ID_BASE
from core_client.storage.database import Database
from core_client.storage.engines import open_database
from core_client.storage.migrations import Migration, migrate

STEPS = (
    Migration(
        1,
        (
            """CREATE TABLE IF NOT EXISTS upstream_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, charge_point_id TEXT NOT NULL, message_id TEXT NOT NULL,
  action TEXT NOT NULL, payload TEXT NOT NULL, offline_transaction_id INTEGER, queued_at REAL NOT NULL
)""",
            "CREATE INDEX IF NOT EXISTS upstream_outbox_cp ON upstream_outbox(charge_point_id, seq)",
            """CREATE TABLE IF NOT EXISTS upstream_transactions (
  charge_point_id TEXT NOT NULL, offline_id INTEGER NOT NULL, csms_id INTEGER NOT NULL,
  PRIMARY KEY (charge_point_id, offline_id)
)""",
            "CREATE TABLE IF NOT EXISTS upstream_offline_ids (id INTEGER PRIMARY KEY AUTOINCREMENT, charge_point_id TEXT NOT NULL)",
        ),
        # offline ids count up from OFFLINE_ID_BASE, and never repeat (not even after rows are gone)
        sqlite=(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'upstream_offline_ids', "
            f"{OFFLINE_ID_BASE - 1} WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'upstream_offline_ids')",
        ),
        postgresql=(f"ALTER TABLE upstream_offline_ids ALTER COLUMN id RESTART WITH {OFFLINE_ID_BASE}",),
    ),
)


@dataclass(frozen=True)
class Entry:
    """One queued CALL of a charge point, as it sent it (transaction ids not yet rewritten)."""

    seq: int
    charge_point_id: str
    call: Call
    offline_transaction_id: int | None
    queued_at: float


class Outbox:
    """Persistent, ordered, per charge point; see the module's docstring."""

    def __init__(self, location: str | Path | Database) -> None:
        self.db = location if isinstance(location, Database) else open_database(location)
        migrate(self.db, "outbox", STEPS)
        #: The one deliverer of each charge point's queue (an Upstream): a new connection takes over.
        self.deliverers: dict[str, Any] = {}  # core_client.proxy.upstream.Upstream (which imports this module)

    def close(self) -> None:
        self.db.close()

    def append(self, cp_id: str, call: Call, offline_transaction_id: int | None = None) -> int:
        """Queue ``call`` behind the charge point's earlier ones; returns its sequence number."""
        added = self.db.execute(
            "INSERT INTO upstream_outbox(charge_point_id, message_id, action, payload, offline_transaction_id, queued_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            (cp_id, call.unique_id, call.action, json.dumps(call.payload), offline_transaction_id, time.time()),
        )
        return int(added[0][0])

    def first(self, cp_id: str) -> Entry | None:
        """The charge point's oldest CALL the CSMS has not answered, or None."""
        row = self.db.execute(
            "SELECT * FROM upstream_outbox WHERE charge_point_id = ? ORDER BY seq LIMIT 1", (cp_id,)
        ).fetchone()
        return None if row is None else _entry(row)

    def pending(self, cp_id: str | None = None) -> list[Entry]:
        """Every queued CALL (of one charge point, or of all), oldest first."""
        where, args = ("WHERE charge_point_id = ?", (cp_id,)) if cp_id is not None else ("", ())
        rows = self.db.execute(f"SELECT * FROM upstream_outbox {where} ORDER BY seq", args).fetchall()
        return [_entry(row) for row in rows]

    def delivered(self, entry: Entry, csms_transaction_id: int | None = None) -> None:
        """The CSMS answered ``entry``: remove it and, for a StartTransaction given an offline id,
        remember which id the CSMS gave it. One transaction: both or neither."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM upstream_outbox WHERE seq = ?", (entry.seq,))
            if entry.offline_transaction_id is not None and csms_transaction_id is not None:
                db.execute(
                    "INSERT INTO upstream_transactions VALUES (?, ?, ?) ON CONFLICT (charge_point_id, offline_id)"
                    " DO UPDATE SET csms_id = excluded.csms_id",
                    (entry.charge_point_id, entry.offline_transaction_id, csms_transaction_id),
                )

    def new_offline_id(self, cp_id: str) -> int:
        """A transaction id for a StartTransaction answered without the CSMS (never handed out twice)."""
        added = self.db.execute("INSERT INTO upstream_offline_ids(charge_point_id) VALUES (?) RETURNING id", (cp_id,))
        return int(added[0][0])

    def csms_ids(self, cp_id: str) -> dict[int, int]:
        """offline transaction id -> the CSMS's id, for the charge point's transactions started offline."""
        rows = self.db.execute(
            "SELECT offline_id, csms_id FROM upstream_transactions WHERE charge_point_id = ?", (cp_id,)
        )
        return {offline_id: csms_id for offline_id, csms_id in rows}


def _entry(row: Sequence[Any]) -> Entry:
    seq, cp_id, message_id, action, payload, offline_id, queued_at = row
    return Entry(seq, cp_id, Call(message_id, action, json.loads(payload)), offline_id, queued_at)
