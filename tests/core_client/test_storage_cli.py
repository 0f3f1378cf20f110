"""``core-client db migrate``: the schema of every part of the Core Client's state, on either engine,
without starting the daemon; one clear line when it cannot."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from core_client.cli.main import app
from core_client.storage.card_state import STEPS as CARDS_STEPS
from core_client.storage.engines import open_database
from core_client.storage.migrations import schema_version
from core_client.storage.store import SCHEMA_VERSION


def _config(tmp_path: Path, database: str | Path) -> Path:
    config = tmp_path / "cc.toml"
    config.write_text(f'database = "{database}"\n[upstream]\nurl = "ws://127.0.0.1:1/ocpp"\noutbox = "{database}"\n')
    return config


def test_migrate_creates_every_part_once_and_says_where(tmp_path, db_location):
    config = _config(tmp_path, db_location)
    for _ in range(2):  # the second run finds nothing to do
        result = CliRunner().invoke(app, ["db", "migrate", "--config", str(config)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert [line.split(":")[0] for line in lines] == ["store", "records", "cards", "outbox"]
        assert f"store: schema version {SCHEMA_VERSION} in " in lines[0]
    db = open_database(db_location)
    try:
        versions = [schema_version(db, part) for part in ("store", "records", "cards", "outbox")]
        assert versions == [SCHEMA_VERSION, 1, CARDS_STEPS[-1].version, 1]
    finally:
        db.close()


def test_migrate_refuses_a_newer_database_in_one_line(tmp_path, db_location):
    config = _config(tmp_path, db_location)
    assert CliRunner().invoke(app, ["db", "migrate", "--config", str(config)]).exit_code == 0
    db = open_database(db_location)
    db.execute("UPDATE schema_versions SET version = 9 WHERE part = 'records'")
    db.close()
    result = CliRunner().invoke(app, ["db", "migrate", "--config", str(config)])
    assert result.exit_code == 1
    assert "records at version 9, written by a newer Core Client" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_an_unreachable_postgresql_is_one_line(tmp_path, postgres):
    config = _config(tmp_path, f"postgresql://evn:hunter2@127.0.0.1:{postgres.port}/missing")
    result = CliRunner().invoke(app, ["db", "migrate", "--config", str(config)])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL at postgresql://evn@127.0.0.1" in result.output
    assert 'database "missing" does not exist' in result.output and "hunter2" not in result.output
    assert len(result.output.strip().splitlines()) == 1
