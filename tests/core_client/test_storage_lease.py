"""The signer lease on a real PostgreSQL: one holder among instances, taken over when the holder's
connection ends; always held on SQLite (one instance per file)."""

from __future__ import annotations

import asyncio
import queue
import time

import psycopg

from core_client.storage.engines import open_database
from core_client.storage.lease import (
    CHECK_TIMEOUT_S,
    GIVES_UP_WITHIN_S,
    SERVER_DROPS_SILENT_HOLDER_S,
    Lease,
)
from tools.devchain import ChainProxy

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
        # the database's pooled connections were cut off too: each is checked and replaced, none fails
        assert [tuple(db.execute("SELECT 1").fetchone()) for _ in range(6)] == [(1,)] * 6
    finally:
        lease.release()
        db.close()


def _watched(lease: Lease) -> queue.Queue:
    """``lease`` watched; the reasons it was lost, as they come."""
    reasons: queue.Queue = queue.Queue()
    lease.watch(reasons.put)
    return reasons


def test_a_watched_lease_whose_connection_ends_is_reported_lost(pg_url):
    db = open_database(pg_url)
    lease = Lease(db, NAME)
    try:
        assert lease.try_acquire()
        reasons = _watched(lease)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (lease._connection.info.backend_pid,))
        assert reasons.get(timeout=GIVES_UP_WITHIN_S + 1) == "its connection to PostgreSQL ended"
        assert not lease.held
    finally:
        lease.release()
        db.close()


async def test_a_watched_lease_the_server_stops_answering_is_lost_in_time(postgres, pg_url):
    """A partition: the holder's connection stays open and nothing answers. The watch, a thread of its
    own, says so within GIVES_UP_WITHIN_S, while a statement is stuck on the database, and long before
    the server would let the lock go. (The proxy runs on this test's loop: the database is used from
    threads.) The stuck statement waits for ever on a pooled connection, or gives up with PoolTimeout when
    it needed a new one; it ends, with the database's error, at the latest once the proxy closes its
    connections: before the test ends (a thread still running a statement would fail in a later test)."""
    proxy = ChainProxy(postgres.port)
    await proxy.resume()
    db = await asyncio.to_thread(open_database, pg_url.replace(f":{postgres.port}/", f":{proxy.port}/"))
    lease = Lease(db, NAME)
    blocked: asyncio.Future | None = None
    try:
        assert await asyncio.to_thread(lease.try_acquire)
        reasons = _watched(lease)
        proxy.partition(server_drops_after=60)
        cut = time.monotonic()
        await asyncio.sleep(0)  # the proxy has stopped forwarding
        blocked = asyncio.get_running_loop().run_in_executor(None, db.execute, "SELECT 1")  # never answered
        reason = await asyncio.to_thread(reasons.get, timeout=GIVES_UP_WITHIN_S + 2)
        assert reason == f"PostgreSQL did not answer within {CHECK_TIMEOUT_S:g}s"
        assert time.monotonic() - cut < SERVER_DROPS_SILENT_HOLDER_S / 2
    finally:
        lease._unwatched.set()
        await proxy.pause()  # closes the connections: the waiting statement fails now
        if blocked is not None:
            [ended] = await asyncio.gather(blocked, return_exceptions=True)
            assert isinstance(ended, psycopg.OperationalError), ended
        await asyncio.to_thread(db.pool.close, 1)
    assert GIVES_UP_WITHIN_S * 2 < SERVER_DROPS_SILENT_HOLDER_S  # a holder stops well before the server lets go


def test_a_released_lease_is_not_reported_lost(pg_url):
    db = open_database(pg_url)
    lease = Lease(db, NAME)
    assert lease.try_acquire()
    reasons = _watched(lease)
    watcher = lease._watcher
    assert watcher is not None and watcher.is_alive()
    lease.release()  # ends the watch first, then the connection
    assert not lease.held
    assert not watcher.is_alive() and reasons.empty()  # the watch ended without a word
    db.close()
