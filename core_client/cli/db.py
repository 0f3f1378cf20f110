"""``core-client db``: the Core Client's database (a SQLite file, or a PostgreSQL database shared by
several instances) on its own, without the daemon."""

from __future__ import annotations

import typer

from core_client.cli.common import ConfigOpt
from core_client.config import Settings, load_settings
from core_client.errors import clean_errors
from core_client.proxy.outbox import STEPS as OUTBOX_STEPS
from core_client.records.schema import STEPS as RECORDS_STEPS
from core_client.storage.card_state import STEPS as CARDS_STEPS
from core_client.storage.database import StorageError, describe, is_database_error
from core_client.storage.engines import open_database
from core_client.storage.migrations import migrate
from core_client.storage.schema import migrate_store

STEPS = {"records": RECORDS_STEPS, "cards": CARDS_STEPS, "outbox": OUTBOX_STEPS}
db_app = typer.Typer(help="The Core Client's database: SQLite file or PostgreSQL.", no_args_is_help=True)


def migrate_all(settings: Settings) -> list[tuple[str, str, int]]:
    """Bring every part of the Core Client's state to this version's schema; (part, where, version) each."""
    parts = [("store", settings.database), ("records", settings.database), ("cards", settings.database)]
    if settings.upstream is not None:
        parts.append(("outbox", settings.upstream.outbox))
    done = []
    for part, location in parts:
        try:
            db = open_database(location)
            try:
                version = migrate_store(db) if part == "store" else migrate(db, part, STEPS[part])
            finally:
                db.close()
        except Exception as error:
            if not is_database_error(error):
                raise
            raise StorageError(f"database {describe(location)}: {error}") from None
        done.append((part, describe(location), version))
    return done


@db_app.command("migrate")
@clean_errors
def db_migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the database's tables for this version (the daemon does it at start; run it
    alone before starting several instances of a new version on one PostgreSQL)."""
    for part, where, version in migrate_all(load_settings(config)):
        typer.echo(f"{part}: schema version {version} in {where}")
