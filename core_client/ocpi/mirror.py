"""What the CSMS pushed to our receivers, as we hold it (its GET of our copy reads it back), and which
EVSEs were imported as which chain stations, on either engine of :mod:`core_client.storage.database`:
a SQLite file next to the Core Client's SQLite database, or its tables in the Core Client's PostgreSQL
database (:func:`mirror_location`).

Objects are kept as their OCPI JSON, keyed by module, owner (country code, party id) and id, all
compared case-insensitively (CiStrings). One object per write, each write one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core_client.ocpi.models.base import ci, format_datetime, parse_datetime
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.transport import Party
from core_client.storage.database import is_postgres_url
from core_client.storage.engines import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS ocpi_objects (
    module TEXT NOT NULL, country_code TEXT NOT NULL, party_id TEXT NOT NULL, id TEXT NOT NULL,
    last_updated TEXT NOT NULL, body TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (module, country_code, party_id, id)
);
CREATE TABLE IF NOT EXISTS ocpi_transactions (
    country_code TEXT NOT NULL, party_id TEXT NOT NULL, session_id TEXT NOT NULL,
    transaction_id INTEGER NOT NULL UNIQUE, PRIMARY KEY (country_code, party_id, session_id)
);
CREATE TABLE IF NOT EXISTS ocpi_cursors (name TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ocpi_stations (
    station_id INTEGER PRIMARY KEY, charge_point_id TEXT NOT NULL UNIQUE,
    country_code TEXT NOT NULL, party_id TEXT NOT NULL, location_id TEXT NOT NULL, evse_uid TEXT NOT NULL,
    connector_ids TEXT NOT NULL, tariff TEXT NOT NULL,
    UNIQUE (country_code, party_id, location_id, evse_uid)
);
"""


@dataclass(frozen=True)
class ImportedStation:
    """An EVSE registered as a chain station: connector n on chain is ``connector_ids[n - 1]``."""

    station_id: int
    charge_point_id: str
    party: Party
    location_id: str
    evse_uid: str
    connector_ids: list[str]
    tariff: str  # the OCPI tariff it was converted from (country/party/id)


def mirror_location(database: Path | str) -> Path | str:
    """Where the mirror of the Core Client whose database is ``database`` lives: the same PostgreSQL
    database, or the SQLite file ``<database>.ocpi.sqlite`` beside a SQLite one."""
    if is_postgres_url(database):
        return database
    path = Path(database)
    return path.with_name(path.name + ".ocpi.sqlite")


class Mirror:
    """The OCPI objects the CSMS gave us, and the stations imported from them."""

    def __init__(self, location: Path | str) -> None:
        self._db = open_database(location)
        if self._db.dialect == "sqlite":  # writes are few and small: SQLite checkpoints as it goes
            self._db.execute("PRAGMA wal_autocheckpoint=1000")
        with self._db.transaction():
            for table in filter(str.strip, SCHEMA.split(";")):
                self._db.execute(self._db.ddl(table))

    def close(self) -> None:
        self._db.close()

    def get(self, module: ModuleID, party: Party, object_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT body FROM ocpi_objects WHERE module=? AND country_code=? AND party_id=? AND id=?",
            (module.value, *party.key(), ci(object_id)),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, module: ModuleID, party: Party, object_id: str, body: dict[str, Any], last_updated: str) -> bool:
        """Store (create or replace) an object; True when it is new."""
        with self._db.transaction():
            created = self.get(module, party, object_id) is None
            self._write(module, party, object_id, body, last_updated)
        return created

    def refresh(self, module: ModuleID, party: Party, object_id: str, body: dict[str, Any], last_updated: str) -> bool:
        """Store a pulled object unless we hold a newer one (a push may have come meanwhile); True if stored."""
        with self._db.transaction():
            row = self._db.execute(
                "SELECT last_updated FROM ocpi_objects WHERE module=? AND country_code=? AND party_id=? AND id=?",
                (module.value, *party.key(), ci(object_id)),
            ).fetchone()
            if row is not None and parse_datetime(row[0]) > parse_datetime(last_updated):
                return False
            self._write(module, party, object_id, body, last_updated)
        return True

    def _write(self, module: ModuleID, party: Party, object_id: str, body: dict[str, Any], last_updated: str) -> None:
        self._db.execute(
            "INSERT INTO ocpi_objects VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM ocpi_objects))"
            " ON CONFLICT (module, country_code, party_id, id) DO UPDATE SET last_updated=excluded.last_updated,"
            " body=excluded.body",
            (module.value, *party.key(), ci(object_id), last_updated, json.dumps(body)),
        )

    def add(self, module: ModuleID, party: Party, object_id: str, body: dict[str, Any], last_updated: str) -> bool:
        """Store a new object only: False (nothing written) when one with this id exists (a CDR is never
        replaced)."""
        cursor = self._db.execute(
            "INSERT INTO ocpi_objects VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM ocpi_objects))"
            " ON CONFLICT DO NOTHING",
            (module.value, *party.key(), ci(object_id), last_updated, json.dumps(body)),
        )
        return cursor.rowcount == 1

    def delete(self, module: ModuleID, party: Party, object_id: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM ocpi_objects WHERE module=? AND country_code=? AND party_id=? AND id=?",
            (module.value, *party.key(), ci(object_id)),
        )
        return cursor.rowcount == 1

    def all(self, module: ModuleID) -> list[dict[str, Any]]:
        """Every object of ``module``, in the order they were first stored."""
        rows = self._db.execute("SELECT body FROM ocpi_objects WHERE module=? ORDER BY seq", (module.value,))
        return [json.loads(body) for (body,) in rows]

    def latest(self, module: ModuleID) -> datetime | None:
        """The newest ``last_updated`` of ``module``'s objects (where a pull resumes)."""
        rows = self._db.execute("SELECT last_updated FROM ocpi_objects WHERE module=?", (module.value,))
        return max((parse_datetime(stamp) for (stamp,) in rows), default=None)

    def cursor(self, name: str) -> datetime | None:
        """Where the pull called ``name`` resumes (None: from the beginning)."""
        row = self._db.execute("SELECT at FROM ocpi_cursors WHERE name=?", (name,)).fetchone()
        return None if row is None else parse_datetime(row[0])

    def set_cursor(self, name: str, at: datetime) -> None:
        self._db.execute(
            "INSERT INTO ocpi_cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET at=excluded.at",
            (name, format_datetime(at)),
        )

    # ------------------------------------------------------------------------------ sessions <-> transactions

    def link_transaction(self, party: Party, session_id: str, transaction_id: int) -> None:
        """The CSMS's Session ``session_id`` is our transaction ``transaction_id`` (kept for good)."""
        self._db.execute(
            "INSERT INTO ocpi_transactions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*party.key(), ci(session_id), transaction_id),
        )

    def transaction_of(self, party: Party, session_id: str) -> int | None:
        row = self._db.execute(
            "SELECT transaction_id FROM ocpi_transactions WHERE country_code=? AND party_id=? AND session_id=?",
            (*party.key(), ci(session_id)),
        ).fetchone()
        return None if row is None else row[0]

    def session_of(self, transaction_id: int) -> tuple[Party, str] | None:
        """The CSMS's Session (owner, id) that is our transaction ``transaction_id``."""
        row = self._db.execute(
            "SELECT country_code, party_id, session_id FROM ocpi_transactions WHERE transaction_id=?", (transaction_id,)
        ).fetchone()
        return None if row is None else (Party(row[0], row[1]), row[2])

    # ------------------------------------------------------------------------------ imported stations

    def add_station(self, station: ImportedStation) -> None:
        self._db.execute(
            "INSERT INTO ocpi_stations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                station.station_id,
                station.charge_point_id,
                *station.party.key(),
                ci(station.location_id),
                ci(station.evse_uid),
                json.dumps(station.connector_ids),
                station.tariff,
            ),
        )

    def set_station_tariff(self, station_id: int, tariff: str) -> None:
        """Station ``station_id``'s chain tariff is now converted from the OCPI tariff ``tariff`` (country/party/id)."""
        self._db.execute("UPDATE ocpi_stations SET tariff=? WHERE station_id=?", (tariff, station_id))

    def stations(self) -> list[ImportedStation]:
        return self._stations("", ())

    def stations_at(self, party: Party, location_id: str) -> list[ImportedStation]:
        """The stations imported from the EVSEs of that Location."""
        return self._stations(
            "WHERE country_code = ? AND party_id = ? AND location_id = ?", (*party.key(), ci(location_id))
        )

    def station_of(self, party: Party, location_id: str, evse_uid: str) -> ImportedStation | None:
        """The station imported from that EVSE (read by its key: each Session and status push asks)."""
        found = self._stations(
            "WHERE country_code = ? AND party_id = ? AND location_id = ? AND evse_uid = ?",
            (*party.key(), ci(location_id), ci(evse_uid)),
        )
        return found[0] if found else None

    def _stations(self, where: str, params: tuple[str, ...]) -> list[ImportedStation]:
        rows = self._db.execute(
            "SELECT station_id, charge_point_id, country_code, party_id, location_id, evse_uid, connector_ids, tariff"
            f" FROM ocpi_stations {where} ORDER BY station_id",
            params,
        )
        return [ImportedStation(r[0], r[1], Party(r[2], r[3]), r[4], r[5], json.loads(r[6]), r[7]) for r in rows]
