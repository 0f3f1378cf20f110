"""The signer lease on a real PostgreSQL: one holder among instances, taken over when the holder's
connection ends; always held on SQLite (one instance per file)."""

from __future__ import annotations

import psycopg

from core_client.storage.database import open_database
from core_client.storage.lease import Lease

NAME = "signer:31337:0xescrow:0xoperator"


def test_one_holder_and_a_takeover_when_it_goes(pg_url):
    first_db, second_db = open_database(pg_url), open_database(pg_url)
    first, second = Lease(first_db, NAME), Lease(second_db, NAME)
    try:
        assert first.try_acquire() and first.held
        assert not second.try_acquire() and not second.held
        assert first.try_acquire()  # again: still the holder
        assert Lease(second_db, "signer:another operator").try_acquire()  # leases of other names are apart
        first.release()
        assert not first.held and second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
        first_db.close()
        second_db.close()


def test_a_holder_whose_connection_ends_knows_it_and_another_takes_over(pg_url):
    """The server ends the holder's session (as when its process dies or it is cut off): the holder's
    next check says the lease is gone, and the other instance takes it."""
    first_db, second_db = open_database(pg_url), open_database(pg_url)
    first, second = Lease(first_db, NAME), Lease(second_db, NAME)
    try:
        assert first.try_acquire()
        holder = first._connection.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (holder,)).fetchone()[0]  # waits for its end
        assert second.try_acquire()
        assert not first.still_held() and not first.held
    finally:
        first.release()
        second.release()
        first_db.close()
        second_db.close()


def test_on_sqlite_the_one_instance_always_holds_it(tmp_path):
    db = open_database(tmp_path / "cc.sqlite")
    lease = Lease(db, NAME)
    assert not lease.shared and lease.held and lease.try_acquire() and lease.still_held()
    db.close()


def test_a_server_restart_ends_the_lease_and_it_can_be_taken_again(postgres, pg_url):
    db = open_database(pg_url)
    lease = Lease(db, NAME)
    try:
        assert lease.try_acquire()
        postgres.restart()
        assert not lease.still_held()  # the holder knows: it stops signing
        assert lease.try_acquire()  # and once the server is back, an instance leads again
    finally:
        lease.release()
        db.close()
