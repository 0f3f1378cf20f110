"""Which instance holds which charge point: several Core Client instances of one operator on one PostgreSQL
each serve OCPP, and a charge point may connect (through a load balancer) to any of them.

- ``instances``: each instance's row, written again every :data:`BEAT_EVERY_S` (its role, its OCPP and
  control addresses); a row not written for :data:`GONE_AFTER_S` is an instance that is gone (killed, cut
  off): the charge points it held count as held by nobody.
- ``charge_point_claims``: the instance that holds each charge point's socket, with an **epoch** that
  grows by one each time the charge point connects (to any instance). An instance writes what it learnt
  over a socket (meter readings, connector statuses) only while its epoch is the current one
  (:meth:`Claims.still_mine`): one that lost the charge point to another cannot write stale readings over it.
  The instance that took a charge point another held tells that one at once (:mod:`core_client.storage.notices`):
  it closes its old connection now, not at its next reconcile pass.

The chain decisions that need a socket (RemoteStart, RemoteStop) are made from the sessions table by the
reconcile loop of the instance that holds the charge point (:meth:`Claims.acts_for`), woken by a notice of
the instance that wrote them; the leader acts for the charge points nobody holds (rejects a session at an
offline station, times out a start).

On SQLite there is one instance: :class:`LocalClaims` holds every charge point, without a table.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from core_client.storage.database import Database
from core_client.storage.notices import LocalNotices
from core_client.storage.postgres import PostgresDatabase

BEAT_EVERY_S = 2.0
GONE_AFTER_S = 10.0


def new_instance_id() -> str:
    """A name for this run of the daemon: host, process id and a random part (unique across restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LocalClaims:
    """One instance alone on its database (SQLite): it holds every charge point."""

    shared = False

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or new_instance_id()
        self.epochs: dict[str, int] = {}

    def claim(self, charge_point_id: str) -> int:
        self.epochs[charge_point_id] = self.epochs.get(charge_point_id, 0) + 1
        return self.epochs[charge_point_id]

    def release(self, charge_point_id: str, epoch: int) -> bool:
        if self.epochs.get(charge_point_id) != epoch:
            return False
        del self.epochs[charge_point_id]
        return True

    def mine(self) -> dict[str, int]:
        return dict(self.epochs)

    def holders(self) -> dict[str, str]:
        return dict.fromkeys(self.epochs, self.instance_id)

    def acts_for(self, charge_point_id: str, leading: bool, holders: dict[str, str]) -> bool:
        return True

    def still_mine(self, charge_point_ids: set[str]) -> set[str]:
        return set(charge_point_ids)

    def beat(self, role: str, ocpp_url: str | None, control_url: str | None) -> None:
        pass

    def tell_holders(self, charge_point_ids: set[str]) -> None:
        pass

    def tell_leader(self) -> None:
        pass

    def leave(self) -> None:
        self.epochs.clear()

    def instances(self) -> list[dict[str, Any]]:
        return []


class Claims(LocalClaims):
    """The claims and instances tables of a shared database (see the module docstring)."""

    shared = True

    def __init__(self, db: Database, instance_id: str | None = None, notices: LocalNotices | None = None) -> None:
        super().__init__(instance_id)
        self.db, self.notices = db, notices or LocalNotices()
        self.started_at = time.time()

    def claim(self, charge_point_id: str) -> int:
        """Take the charge point (it connected here): its new epoch. A claim not let go (epoch > 1) is
        maybe another instance's: that one is told."""
        [(epoch,)] = self.db.execute(
            "INSERT INTO charge_point_claims (charge_point_id, instance_id, epoch, claimed_at) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (charge_point_id) DO UPDATE SET instance_id = excluded.instance_id,"
            " epoch = charge_point_claims.epoch + 1, claimed_at = excluded.claimed_at RETURNING epoch",
            (charge_point_id, self.instance_id, time.time()),
        )
        if epoch > 1:
            self.db.on_commit(lambda: self.notices.charge_point(charge_point_id))
        self.epochs[charge_point_id] = int(epoch)
        return int(epoch)

    def release(self, charge_point_id: str, epoch: int) -> bool:
        """Let the charge point go (its socket here closed), unless it has moved on since ``epoch``."""
        if self.epochs.get(charge_point_id) == epoch:
            del self.epochs[charge_point_id]
        rows = self.db.execute(
            "DELETE FROM charge_point_claims WHERE charge_point_id = ? AND instance_id = ? AND epoch = ?"
            " RETURNING charge_point_id",
            (charge_point_id, self.instance_id, epoch),
        )
        return bool(rows)

    def mine(self) -> dict[str, int]:
        """The charge points this instance holds now, by the database (their epochs); what it held and no
        longer holds (another instance took it) is forgotten here."""
        rows = self.db.execute(
            "SELECT charge_point_id, epoch FROM charge_point_claims WHERE instance_id = ?", (self.instance_id,)
        )
        held = {cp: int(epoch) for cp, epoch in rows}
        self.epochs = {cp: epoch for cp, epoch in self.epochs.items() if held.get(cp) == epoch}
        return held

    def holders(self) -> dict[str, str]:
        """Charge point -> the instance holding it, for the instances alive (written within GONE_AFTER_S)."""
        rows = self.db.execute(
            "SELECT c.charge_point_id, c.instance_id FROM charge_point_claims c"
            " JOIN instances i ON i.instance_id = c.instance_id WHERE i.seen_at >= ?",
            (time.time() - GONE_AFTER_S,),
        )
        return {cp: instance for cp, instance in rows}

    def acts_for(self, charge_point_id: str, leading: bool, holders: dict[str, str]) -> bool:
        """Whether this instance makes the socket's decisions for the charge point: it holds it, or nobody
        (alive) does and this instance leads."""
        holder = holders.get(charge_point_id)
        return holder == self.instance_id or (holder is None and leading)

    def still_mine(self, charge_point_ids: set[str]) -> set[str]:
        """Of ``charge_point_ids``, those this instance still holds at the epoch it took them. Inside a
        transaction their claim rows stay locked until it ends: another instance's claim waits for it, so
        what the transaction writes about them lands before the charge point moves, or not at all."""
        if not charge_point_ids:
            return set()
        ids = sorted(charge_point_ids)
        rows = self.db.execute(
            "SELECT charge_point_id, epoch FROM charge_point_claims WHERE instance_id = ?"
            f" AND charge_point_id IN ({', '.join('?' for _ in ids)}) FOR SHARE",
            (self.instance_id, *ids),
        )
        return {cp for cp, epoch in rows if self.epochs.get(cp) == int(epoch)}

    def tell_holders(self, charge_point_ids: set[str]) -> None:
        """Once the current transaction commits, wake the instances holding these charge points (those this
        one holds excepted): their sessions wait for a call over the charge point's socket."""
        for cp_id in charge_point_ids - self.epochs.keys():
            self.db.on_commit(lambda cp_id=cp_id: self.notices.charge_point(cp_id))

    def tell_leader(self) -> None:
        """Once the current transaction commits, wake the leader's chain worker: a job was queued."""
        self.db.on_commit(self.notices.jobs)

    def beat(self, role: str, ocpp_url: str | None, control_url: str | None) -> None:
        """Write this instance's row (it is alive, in ``role``)."""
        self.db.execute(
            "INSERT INTO instances (instance_id, role, ocpp_url, control_url, started_at, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET role = excluded.role,"
            " ocpp_url = excluded.ocpp_url, control_url = excluded.control_url, seen_at = excluded.seen_at",
            (self.instance_id, role, ocpp_url, control_url, self.started_at, time.time()),
        )

    def leave(self) -> None:
        """This instance stops (cleanly): its row and its claims go."""
        with self.db.transaction():
            self.db.execute("DELETE FROM charge_point_claims WHERE instance_id = ?", (self.instance_id,))
            self.db.execute("DELETE FROM instances WHERE instance_id = ?", (self.instance_id,))
        self.epochs.clear()

    def instances(self) -> list[dict[str, Any]]:
        """Every instance row (the gone ones too, with ``alive`` False), with its charge point count."""
        now = time.time()
        rows = self.db.execute(
            "SELECT i.instance_id, i.role, i.ocpp_url, i.control_url, i.started_at, i.seen_at,"
            " (SELECT COUNT(*) FROM charge_point_claims c WHERE c.instance_id = i.instance_id)"
            " FROM instances i ORDER BY i.started_at"
        )
        return [
            {
                "instance": instance_id,
                "role": role,
                "ocpp_url": ocpp_url,
                "control_url": control_url,
                "started_at": started_at,
                "seen_at": seen_at,
                "alive": now - seen_at < GONE_AFTER_S,
                "charge_points": int(count),
            }
            for instance_id, role, ocpp_url, control_url, started_at, seen_at, count in rows
        ]


def claims_for(db: Database, instance_id: str | None = None, notices: LocalNotices | None = None) -> LocalClaims:
    """The claims of an instance on ``db``: shared ones on PostgreSQL (telling the others through ``notices``),
    local ones on SQLite."""
    return Claims(db, instance_id, notices) if isinstance(db, PostgresDatabase) else LocalClaims(instance_id)
