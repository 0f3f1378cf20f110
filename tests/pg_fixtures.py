"""Fixtures for the Core Client's state on both engines: one throwaway PostgreSQL server per test run
(tools/pgserver.py; started on first use, stopped at the end of the run, however it ends) and, per
test, a new empty schema on it (as good as a database of its own, and 100 times faster to make) or a new
SQLite file."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.pgserver import PostgresServer

ENGINES = ("sqlite", "postgresql")
_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test run (Debian's binaries, a free port, its own folder)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A new empty schema on the test run's server: the postgresql:// URL that works in it alone."""
    return postgres.create_schema(f"test_{next(_names)}")


@pytest.fixture(params=ENGINES)
def db_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's Core Client state lives, once per engine: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "cc.sqlite"
    return request.getfixturevalue("pg_url")
