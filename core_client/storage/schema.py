"""The store's tables, as migration steps (part ``store``), and the check of SQLite files written before
the migrations (whose version is SQLite's ``user_version``)."""

from __future__ import annotations

from pathlib import Path

from core_client.errors import CoreClientError
from core_client.storage.database import Database, describe
from core_client.storage.migrations import Migration, migrate, schema_version
from core_client.storage.sqlite import SqliteDatabase

STEPS = (
    # 2: 256-bit session ids (driver, lane, sequence) as TEXT, tags for idTags (1: integer ids, not kept)
    Migration(
        2,
        (
            """CREATE TABLE IF NOT EXISTS sessions (
  tag INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL UNIQUE, station_id INTEGER NOT NULL, charge_point_id TEXT NOT NULL,
  connector INTEGER NOT NULL, driver TEXT NOT NULL, deposit TEXT NOT NULL,
  price_per_kwh TEXT NOT NULL, session_fee TEXT NOT NULL, time_fee_per_hour TEXT NOT NULL,
  tariff_id INTEGER NOT NULL, state TEXT NOT NULL, requested_block INTEGER NOT NULL,
  transaction_id INTEGER UNIQUE, meter_start INTEGER, meter_last INTEGER, meter_stop INTEGER,
  stop_reason TEXT, stop_wanted TEXT, remote_stop_sent INTEGER NOT NULL DEFAULT 0, reject_reason INTEGER,
  cost TEXT, refund TEXT, last_error TEXT, requested_at REAL NOT NULL, remote_start_at REAL,
  started_at REAL, meter_at REAL, stopped_at REAL, finished_at REAL
)""",
            "CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state)",
            "CREATE INDEX IF NOT EXISTS sessions_charge_point ON sessions(charge_point_id, state)",
            """CREATE TABLE IF NOT EXISTS transactions (
  transaction_id INTEGER PRIMARY KEY, charge_point_id TEXT NOT NULL, connector INTEGER NOT NULL,
  id_tag TEXT, session_id TEXT, meter_start INTEGER NOT NULL, started_at REAL NOT NULL,
  meter_stop INTEGER, stop_reason TEXT, stopped_at REAL
)""",
            """CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL CHECK (kind IN ('start', 'reject', 'settle')),
  session_id TEXT NOT NULL, args TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'done', 'failed')),
  tx_hash TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, block INTEGER,
  created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (kind, session_id)
)""",
            "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status)",
            """CREATE TABLE IF NOT EXISTS stations (
  station_id INTEGER PRIMARY KEY, charge_point_id TEXT NOT NULL UNIQUE, connectors INTEGER NOT NULL
)""",
            """CREATE TABLE IF NOT EXISTS connectors (
  charge_point_id TEXT NOT NULL, connector INTEGER NOT NULL, status TEXT NOT NULL, error_code TEXT,
  updated_at REAL NOT NULL, PRIMARY KEY (charge_point_id, connector)
)""",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE IF NOT EXISTS meter_records (
  session_id TEXT NOT NULL, context TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (session_id, context)
)""",
        ),
        # a file of this version written before schema_versions existed says so here (and old readers look here)
        sqlite=("PRAGMA user_version = 2",),
    ),
    # 3: several instances on one PostgreSQL (core_client.storage.claims): who is alive, who holds which charge point
    Migration(
        3,
        (
            """CREATE TABLE IF NOT EXISTS instances (
  instance_id TEXT PRIMARY KEY, role TEXT NOT NULL, ocpp_url TEXT, control_url TEXT,
  started_at REAL NOT NULL, seen_at REAL NOT NULL
)""",
            """CREATE TABLE IF NOT EXISTS charge_point_claims (
  charge_point_id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, epoch INTEGER NOT NULL, claimed_at REAL NOT NULL
)""",
            "CREATE INDEX IF NOT EXISTS charge_point_claims_instance ON charge_point_claims(instance_id)",
        ),
    ),
    # 4: a card's open says which SessionRequested its mining emits (payer/station/connector, see
    # Store.awaits), so the event watcher finds it by index instead of reading every open job
    Migration(
        4,
        (
            "ALTER TABLE jobs ADD COLUMN awaits TEXT",
            "CREATE INDEX IF NOT EXISTS jobs_awaits ON jobs(awaits, status) WHERE awaits IS NOT NULL",
        ),
        sqlite=(
            "UPDATE jobs SET awaits = lower(json_extract(args, '$.payer')) || '/' || json_extract(args, '$.station_id')"
            " || '/' || json_extract(args, '$.connector') WHERE kind = 'start' AND json_extract(args, '$.mandate_id')"
            " IS NOT NULL",
        ),
        postgresql=(
            "UPDATE jobs SET awaits = lower(args::json->>'payer') || '/' || (args::json->>'station_id') || '/'"
            " || (args::json->>'connector') WHERE kind = 'start' AND (args::json->>'mandate_id') IS NOT NULL",
        ),
    ),
    # 5: each session's revision: a whole-row write is refused if another instance wrote the row since it was read
    Migration(5, ("ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",)),
    # 6: the end a stop bills the time until (an OCPI CDR's end), kept while its settle waits for the meter key
    Migration(6, ("ALTER TABLE transactions ADD COLUMN ended_at INTEGER",)),
)
# SQLite files written before schema_versions existed say their version in user_version: this one
FIRST_VERSION = STEPS[0].version
SCHEMA_VERSION = STEPS[-1].version


class StoreVersionError(CoreClientError):
    """The store file was written by an incompatible Core Client version (its sessions and chain jobs
    belong to an escrow of another design: they cannot be carried over)."""

    def __init__(self, path: str | Path, version: int) -> None:
        self.path, self.version = path, version
        if version < SCHEMA_VERSION:
            why = (
                f"store version {version}, from before 256-bit session ids (this Core Client needs version "
                f"{SCHEMA_VERSION}, and an escrow deployed since)"
            )
        else:
            why = f"store version {version}, by a newer Core Client (this one reads version {SCHEMA_VERSION})"
        super().__init__(
            f"the database {path} was written with {why}; it cannot be upgraded: point `database` in the "
            "config at a new file (and `deployment_file` at the new deployment), keep the old file for its records"
        )


def migrate_store(db: Database) -> int:
    """Bring the store's tables in ``db`` to this version (refusing a SQLite file of an older design); its version."""
    if isinstance(db, SqliteDatabase) and schema_version(db, "store") == 0 and db.has_table("sessions"):
        version = db.user_version()
        if version != FIRST_VERSION:
            raise StoreVersionError(describe(db.location), version)
    return migrate(db, "store", STEPS)
