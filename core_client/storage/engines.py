"""The engine a database location names: a PostgreSQL server for a ``postgresql://`` URL, else a
SQLite file."""

from __future__ import annotations

from pathlib import Path

from core_client.storage.database import Database, is_postgres_url
from core_client.storage.postgres import PostgresDatabase
from core_client.storage.sqlite import SqliteDatabase


def open_database(location: str | Path) -> Database:
    """The database at ``location``: a ``postgresql://`` URL, else the path of a SQLite file."""
    if is_postgres_url(location):
        return PostgresDatabase(str(location))
    return SqliteDatabase(Path(location))
