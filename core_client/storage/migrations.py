"""Schema migrations: each part of the Core Client's state (the store, the transaction record, the proxy
outbox) lists its table definitions as numbered :class:`Migration` steps; :func:`migrate` applies the
steps a database has not seen yet, in one transaction, and records the part's version in the table
``schema_versions``. The daemon migrates at start; ``core-client db migrate`` does it alone (before
starting several instances of a new version on one PostgreSQL, for instance).

Instances starting together on one PostgreSQL take turns (an advisory lock): one migrates, the others
find it done. A database of a newer version than this code knows is refused, never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core_client.errors import CoreClientError
from core_client.storage.database import Database, describe

VERSIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_versions (part TEXT PRIMARY KEY, version INTEGER NOT NULL)"


@dataclass(frozen=True)
class Migration:
    """One step of a part's schema: statements in both engines' words (see ``Database.ddl``), then
    those of one engine only (triggers, sequences)."""

    version: int
    statements: tuple[str, ...]
    sqlite: tuple[str, ...] = ()
    postgresql: tuple[str, ...] = ()

    def for_engine(self, dialect: str) -> tuple[str, ...]:
        return self.statements + getattr(self, dialect)


class SchemaVersionError(CoreClientError):
    """The database holds a part of a version this code cannot use."""


def schema_version(db: Database, part: str) -> int:
    """The version of ``part`` recorded in ``db`` (0: none)."""
    db.execute(VERSIONS_TABLE)
    row = db.execute("SELECT version FROM schema_versions WHERE part = ?", (part,)).fetchone()
    return int(row[0]) if row else 0


def migrate(db: Database, part: str, steps: Sequence[Migration]) -> int:
    """Apply the steps of ``part`` that ``db`` has not had, atomically; return its version now."""
    newest = steps[-1].version
    with db.transaction():
        db.lock("schema_versions")
        current = schema_version(db, part)
        if current > newest:
            raise SchemaVersionError(
                f"the database {describe(db.location)} holds the {part} at version {current}, written by a newer "
                f"Core Client (this one knows up to version {newest}): run that version, or point `database` elsewhere"
            )
        for step in steps:
            if step.version > current:
                for statement in step.for_engine(db.dialect):
                    db.execute(db.ddl(statement))
        if newest != current:
            db.execute(
                "INSERT INTO schema_versions (part, version) VALUES (?, ?)"
                " ON CONFLICT (part) DO UPDATE SET version = excluded.version",
                (part, newest),
            )
    return newest
