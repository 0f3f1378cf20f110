"""The storage interface on both engines (a SQLite file, a real PostgreSQL server started by the tests):
the same SQL, the same transactions, the same migrations; and the test server's own life cycle."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core_client.storage.database import StorageError, describe, is_postgres_url
from core_client.storage.engines import open_database
from core_client.storage.migrations import Migration, SchemaVersionError, migrate, schema_version
from tools.pgserver import PostgresServer

ROOT = Path(__file__).resolve().parents[2]

STEPS = (
    Migration(
        1,
        (
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
            " amount TEXT NOT NULL, wh INTEGER, at REAL)",
        ),
    ),
)
STEPS_2 = (*STEPS, Migration(2, ("ALTER TABLE items ADD COLUMN note TEXT",)))


@pytest.fixture
def db(db_location):
    database = open_database(db_location)
    migrate(database, "items", STEPS)
    yield database
    database.close()


def test_wide_values_round_trip(db):
    amount, wh = str(2**256 - 1), 2**40  # a 256-bit id as TEXT, an energy register past 32 bits
    rows = db.execute(
        "INSERT INTO items (name, amount, wh, at) VALUES (?, ?, ?, ?) RETURNING id", ("a%b?", amount, wh, 1.5)
    )
    row = db.execute("SELECT * FROM items WHERE id = ?", (rows[0][0],)).fetchone()
    assert dict(row) == {"id": rows[0]["id"], "name": "a%b?", "amount": amount, "wh": wh, "at": 1.5}
    assert row["amount"] == row[2] == amount


def test_a_conflict_is_ignored_or_updated_and_counted(db):
    insert = "INSERT INTO items (name, amount) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
    assert db.execute(insert, ("a", "1")).rowcount == 1
    assert db.execute(insert, ("a", "2")).rowcount == 0
    db.execute(
        "INSERT INTO items (name, amount) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET amount = excluded.amount",
        ("a", "3"),
    )
    assert _tuples(db.execute("SELECT amount FROM items")) == [("3",)]


def test_a_transaction_is_all_or_nothing_and_commit_callbacks_wait_for_it(db):
    committed = []
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO items (name, amount) VALUES (?, ?)", ("a", "1"))
        with db.transaction():  # joins the outer one
            db.executemany("INSERT INTO items (name, amount) VALUES (?, ?)", [("b", "2"), ("c", "3")])
        db.on_commit(lambda: committed.append("lost"))
        raise RuntimeError("rolled back")
    assert db.execute("SELECT COUNT(*) FROM items")[0][0] == 0
    assert committed == []
    with db.transaction():
        db.execute("INSERT INTO items (name, amount) VALUES (?, ?)", ("a", "1"))
        db.on_commit(lambda: committed.append("kept"))
        assert committed == []
    assert committed == ["kept"]
    assert _tuples(db.execute("SELECT name FROM items")) == [("a",)]


def test_a_transaction_belongs_to_its_thread(db):
    """Another thread's statements neither join nor see an open transaction."""
    inside, seen = threading.Event(), []

    def other() -> None:
        inside.wait(10)
        seen.append(db.execute("SELECT COUNT(*) FROM items")[0][0])

    with db.transaction():
        db.execute("INSERT INTO items (name, amount) VALUES (?, ?)", ("a", "1"))
        thread = threading.Thread(target=other)
        thread.start()
        inside.set()
        if db.dialect == "postgresql":  # SQLite: the other thread waits for the connection's lock
            thread.join(10)
            assert seen == [0]
    thread.join(10)
    assert seen in ([0], [1])
    assert db.execute("SELECT COUNT(*) FROM items")[0][0] == 1


def test_migrations_run_once_and_in_order(db_location):
    db = open_database(db_location)
    try:
        assert schema_version(db, "items") == 0
        assert migrate(db, "items", STEPS) == 1
        db.execute("INSERT INTO items (name, amount) VALUES (?, ?)", ("kept", "1"))
        assert migrate(db, "items", STEPS) == 1  # again: nothing to do, nothing lost
        assert migrate(db, "items", STEPS_2) == 2
        db.execute("UPDATE items SET note = ?", ("step 2 ran",))
        assert _tuples(db.execute("SELECT name, note FROM items")) == [("kept", "step 2 ran")]
        assert schema_version(db, "items") == 2
        assert schema_version(db, "other") == 0
    finally:
        db.close()


def test_a_newer_schema_is_refused_and_left_as_it_is(db_location):
    db = open_database(db_location)
    try:
        migrate(db, "items", STEPS_2)
        with pytest.raises(SchemaVersionError, match=r"items at version 2.*newer Core Client"):
            migrate(db, "items", STEPS)
        assert schema_version(db, "items") == 2
    finally:
        db.close()


def test_a_failed_migration_changes_nothing(db_location):
    db = open_database(db_location)
    broken = (*STEPS, Migration(2, ("ALTER TABLE items ADD COLUMN note TEXT", "ALTER TABLE nowhere ADD COLUMN x TEXT")))
    try:
        migrate(db, "items", STEPS)
        with pytest.raises(Exception, match="nowhere"):
            migrate(db, "items", broken)
        assert schema_version(db, "items") == 1
        assert migrate(db, "items", STEPS_2) == 2  # the column of the failed step was not left behind
    finally:
        db.close()


def test_instances_starting_together_migrate_once(pg_url):
    """Four connections (as four instances) migrate one PostgreSQL database at the same moment."""
    start, errors, versions = threading.Barrier(4), [], []

    def instance() -> None:
        db = open_database(pg_url)
        try:
            start.wait(10)
            versions.append(migrate(db, "items", STEPS_2))
        except Exception as error:
            errors.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and versions == [2, 2, 2, 2]


def test_a_named_lock_serialises_transactions_across_connections(pg_url):
    first, second = open_database(pg_url), open_database(pg_url)
    migrate(first, "items", STEPS)
    held, order = threading.Event(), []

    def waiter() -> None:
        held.wait(10)
        with second.transaction():
            second.lock("items")
            order.append("second")

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        with first.transaction():
            first.lock("items")
            held.set()
            # the other transaction is inside lock() as long as pg_locks shows it waiting for ours
            deadline = time.monotonic() + 10
            while not first.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]:
                assert time.monotonic() < deadline, "the second transaction never waited for the lock"
                time.sleep(0.01)
            order.append("first")
        thread.join(10)
        assert order == ["first", "second"]
    finally:
        first.close()
        second.close()


def test_an_unreachable_server_is_one_clear_error(postgres):
    url = f"postgresql://evn:secret@127.0.0.1:{postgres.port}/no_such_database"
    with pytest.raises(StorageError) as caught:
        open_database(url)
    message = str(caught.value)
    assert "no_such_database" in message and "does not exist" in message
    assert "secret" not in message


def test_locations_are_told_apart_and_described_without_passwords():
    assert is_postgres_url("postgresql://u:pw@db.example:5433/cc") and is_postgres_url("postgres:///cc")
    assert not is_postgres_url("core-client.sqlite") and not is_postgres_url(Path("postgresql://x"))
    assert describe("postgresql://u:pw@db.example:5433/cc") == "postgresql://u@db.example:5433/cc"


def test_the_test_server_dies_with_its_starter_and_leaves_no_folder():
    """The harness's server ends when the process that started it is SIGKILLed (no pg_ctl daemon left)."""
    script = (
        "from tools.pgserver import PostgresServer\n"
        "s = PostgresServer().start()\n"
        "print(s.process.pid, s.folder, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid, folder = starter.stdout.readline().split()
        os.kill(int(pid), 0)  # running
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    deadline = time.monotonic() + 20
    while _alive(int(pid)):
        assert time.monotonic() < deadline, "the server outlived its starter"
        time.sleep(0.05)
    shutil.rmtree(folder, ignore_errors=True)  # SIGKILL skipped the starter's cleanup


def test_the_test_server_restarts_with_its_data(postgres, pg_url):
    db = open_database(pg_url)
    migrate(db, "items", STEPS)
    db.execute("INSERT INTO items (name, amount) VALUES (?, ?)", ("a", "1"))
    db.close()
    postgres.restart()
    db = open_database(pg_url)
    assert _tuples(db.execute("SELECT name FROM items")) == [("a",)]
    db.close()


def test_the_test_server_leaves_no_folder():
    server = PostgresServer().start()
    folder = server.folder
    assert (folder / "data" / "PG_VERSION").exists()
    server.stop()
    assert not folder.exists() and server.process is None


def _tuples(rows) -> list[tuple]:
    return [tuple(row) for row in rows]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by init) counts as ended
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
