"""What the card path keeps in the database (part ``cards`` of the migrations, both engines): the tokens the
Core Client vouches for until their charge point starts them (:class:`Vouchers`), and the local list sent
to each charge point (:class:`LocalLists`).

A voucher is a roaming eMSP's token the Core Client remote-starts under the eMSP's mandate
(:mod:`core_client.ocpi.cpo.roaming`): between RemoteStartTransaction and the charge point's
StartTransaction that token is a card of that mandate, at that charge point and connector only (connector 0:
any of its connectors, as for a token vouched for at Authorize, which names none; charge point ``*``: any),
until it starts or ``expires_at``. Kept in the database, so a Core Client restarted in that window still
answers the StartTransaction Accepted.

A charge point's local list is kept as last accepted (its version and entries): when it connects again (or
the Core Client restarted) and its GetLocalListVersion answers that version, it is sent only what changed
since (a Differential update, or nothing), not the whole list again."""

from __future__ import annotations

import json
import time
from typing import Any

from core_client.sessions.cards import Card, CardMandate
from core_client.sessions.local_list import Entry, ListStatus
from core_client.storage.database import Database
from core_client.storage.migrations import Migration, migrate

ANY_CHARGE_POINT = "*"
STEPS = (
    Migration(
        1,
        (
            """CREATE TABLE IF NOT EXISTS card_vouchers (
  charge_point_id TEXT NOT NULL, connector INTEGER NOT NULL, id_tag TEXT NOT NULL, card TEXT NOT NULL,
  expires_at REAL NOT NULL, PRIMARY KEY (charge_point_id, connector, id_tag)
)""",
            "CREATE INDEX IF NOT EXISTS card_vouchers_tag ON card_vouchers(id_tag)",
        ),
    ),
    Migration(
        2,
        (
            """CREATE TABLE IF NOT EXISTS local_lists (
  charge_point_id TEXT PRIMARY KEY, version INTEGER NOT NULL, entries TEXT NOT NULL, sent_at REAL NOT NULL
)""",
        ),
    ),
)


def mandate_row(m: CardMandate) -> dict[str, Any]:
    """``m`` as JSON-ready values (bytes as hex)."""
    return {**m.__dict__, "salt": m.salt.hex(), "token_refs": sorted(r.hex() for r in m.token_refs)}


def mandate_from_row(row: dict[str, Any]) -> CardMandate:
    """The :class:`CardMandate` of a :func:`mandate_row`."""
    refs = frozenset(bytes.fromhex(r) for r in row["token_refs"])
    old = {"any_token": False}  # a copy kept before CardMandate carried the whole record
    return CardMandate(**{**old, **row, "salt": bytes.fromhex(row["salt"]), "token_refs": refs})


def _tag(id_tag: str) -> str:
    return id_tag.strip().upper()


class Vouchers:
    """The tokens vouched for as cards, in ``db`` (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, "cards", STEPS)

    def put(self, id_tag: str, card: Card, charge_point_id: str | None, connector: int, expires_at: float) -> None:
        """Vouch for ``id_tag`` as ``card`` at the charge point's connector (a voucher there before is replaced)."""
        text = json.dumps({"mandate": mandate_row(card.mandate), "token_ref": card.token_ref.hex()})
        where = charge_point_id or ANY_CHARGE_POINT
        with self.db.transaction() as db:
            if connector:  # one token vouched for per connector
                db.execute("DELETE FROM card_vouchers WHERE charge_point_id = ? AND connector = ?", (where, connector))
            db.execute(
                "INSERT INTO card_vouchers VALUES (?, ?, ?, ?, ?) ON CONFLICT (charge_point_id, connector, id_tag)"
                " DO UPDATE SET card = excluded.card, expires_at = excluded.expires_at",
                (where, connector, _tag(id_tag), text, expires_at),
            )

    def drop(self, id_tag: str, charge_point_id: str | None = None, connector: int | None = None) -> None:
        """Vouch for ``id_tag`` no longer (at that charge point / connector, or anywhere)."""
        query, params = "DELETE FROM card_vouchers WHERE id_tag = ?", [_tag(id_tag)]
        if charge_point_id is not None:
            query, params = query + " AND charge_point_id IN (?, ?)", [*params, charge_point_id, ANY_CHARGE_POINT]
        if connector is not None:
            query, params = query + " AND connector IN (?, 0)", [*params, connector]
        self.db.execute(query, params)

    def find(
        self, id_tag: str, now: float, charge_point_id: str | None = None, connector: int | None = None
    ) -> Card | None:
        """The card ``id_tag`` is vouched for as, at that charge point and connector (None: anywhere), unless
        expired; the most specific voucher first."""
        query, params = "SELECT card FROM card_vouchers WHERE id_tag = ? AND expires_at > ?", [_tag(id_tag), now]
        if charge_point_id is not None:
            query, params = query + " AND charge_point_id IN (?, ?)", [*params, charge_point_id, ANY_CHARGE_POINT]
        if connector is not None:
            query, params = query + " AND connector IN (?, 0)", [*params, connector]
        row = self.db.execute(query + " ORDER BY connector DESC, charge_point_id DESC LIMIT 1", params).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Card(mandate_from_row(data["mandate"]), bytes.fromhex(data["token_ref"]))

    def count(self, now: float) -> int:
        """How many vouchers are in force."""
        return int(self.db.execute("SELECT COUNT(*) FROM card_vouchers WHERE expires_at > ?", (now,)).fetchone()[0])

    def purge(self, now: float) -> None:
        """Drop the expired vouchers."""
        self.db.execute("DELETE FROM card_vouchers WHERE expires_at <= ?", (now,))


class LocalLists:
    """The local list each charge point accepted last, in ``db`` (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, "cards", STEPS)

    def get(self, charge_point_id: str) -> tuple[int, dict[str, Entry]] | None:
        """(version, entries) of the list the charge point accepted last, or None."""
        row = self.db.execute(
            "SELECT version, entries FROM local_lists WHERE charge_point_id = ?", (charge_point_id,)
        ).fetchone()
        if row is None:
            return None
        entries = {tag: (ListStatus(status), expiry) for tag, (status, expiry) in json.loads(row[1]).items()}
        return int(row[0]), entries

    def put(self, charge_point_id: str, version: int, entries: dict[str, Entry]) -> None:
        text = json.dumps({tag: [status.value, expiry] for tag, (status, expiry) in entries.items()})
        self.db.execute(
            "INSERT INTO local_lists VALUES (?, ?, ?, ?) ON CONFLICT (charge_point_id) DO UPDATE SET"
            " version = excluded.version, entries = excluded.entries, sent_at = excluded.sent_at",
            (charge_point_id, version, text, time.time()),
        )

    def forget(self, charge_point_id: str) -> None:
        """What the charge point holds is not known (a failed update): the next one is Full."""
        self.db.execute("DELETE FROM local_lists WHERE charge_point_id = ?", (charge_point_id,))
