"""Notices between the instances of one operator (core_client.storage.notices), on a real PostgreSQL: what
one instance says reaches the others' listeners on its operator's channel only, and a listener whose
connection ended (the server restarted) listens again by itself."""

from __future__ import annotations

import queue

import pytest

from core_client.storage.claims import Claims
from core_client.storage.engines import open_database
from core_client.storage.notices import LocalNotices, Notices, notices_for
from core_client.storage.store import Store
from tools.pgserver import PostgresServer

OPERATOR = "31337:0xescrow:0xoperator"
WAIT_S = 10


class Ear:
    """What a listener heard, in order: ("cp", id or None: any) or ("jobs",)."""

    def __init__(self, notices: LocalNotices) -> None:
        self.heard: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        notices.listen(lambda cp: self.heard.put(("cp", cp)), lambda: self.heard.put(("jobs",)))

    def next(self) -> tuple:
        return self.heard.get(timeout=WAIT_S)

    def connected(self) -> None:
        """(Re)connected: it hears of the jobs and of every charge point (what was said meanwhile is lost)."""
        assert [self.next(), self.next()] == [("jobs",), ("cp", None)]


@pytest.fixture
def pair(pg_url):
    """Two instances' notices on one database, the second listening (and connected)."""
    dbs = [open_database(pg_url), open_database(pg_url)]
    said, listening = Notices(dbs[0], OPERATOR), Notices(dbs[1], OPERATOR)
    ear = Ear(listening)
    ear.connected()
    yield said, ear
    for notices in (said, listening):
        notices.close()
    for db in dbs:
        db.close()


def test_a_charge_point_and_a_queued_job_are_heard_by_the_other_instance(pair):
    said, ear = pair
    said.charge_point("CP-7")
    assert ear.next() == ("cp", "CP-7")
    said.jobs()
    assert ear.next() == ("jobs",)


def test_another_operator_on_the_same_server_is_not_heard(pair, pg_url):
    said, ear = pair
    db = open_database(pg_url)
    other = Notices(db, "31337:0xescrow:0xsomeone-else")
    try:
        other.charge_point("CP-OTHER")
        other.close()  # sent (the sender thread ends once its outbox is empty)
        said.charge_point("CP-OURS")
        assert ear.next() == ("cp", "CP-OURS")  # delivered in commit order: the other's would have come first
    finally:
        db.close()


def test_a_notice_said_inside_a_transaction_is_heard_after_it_commits(pg_url):
    """The service hands its notices over on commit: one of a transaction rolled back is never said."""
    db, listener_db = open_database(pg_url), open_database(pg_url)
    said, listening = Notices(db, OPERATOR), Notices(listener_db, OPERATOR)
    try:
        ear = Ear(listening)
        ear.connected()
        with pytest.raises(RuntimeError), db.transaction():
            db.on_commit(lambda: said.charge_point("CP-ROLLED-BACK"))
            raise RuntimeError("rolled back")
        with db.transaction():
            db.on_commit(lambda: said.charge_point("CP-COMMITTED"))
        assert ear.next() == ("cp", "CP-COMMITTED")
    finally:
        said.close(), listening.close()
        db.close(), listener_db.close()


def test_the_listener_listens_again_after_postgres_restarted():
    with PostgresServer() as server:  # a server of its own: restarting the shared one would cut other tests off
        url = server.url()
        db, listener_db = open_database(url), open_database(url)
        said, listening = Notices(db, OPERATOR), Notices(listener_db, OPERATOR)
        try:
            ear = Ear(listening)
            ear.connected()
            server.restart()  # fast shutdown: the listener's connection ends
            ear.connected()  # by itself, once the server is back
            said.charge_point("CP-AFTER")
            assert ear.next() == ("cp", "CP-AFTER")
        finally:
            said.close(), listening.close()
            db.close(), listener_db.close()


def test_sqlite_has_one_instance_and_nothing_to_say(tmp_path):
    db = open_database(tmp_path / "one.sqlite")
    try:
        notices = notices_for(db, OPERATOR)
        assert type(notices) is LocalNotices and not notices.shared
        notices.charge_point("CP-1"), notices.jobs(), Ear(notices), notices.close()  # nothing to do
    finally:
        db.close()


def test_an_instance_that_takes_a_charge_point_another_holds_tells_it(pair, pg_url):
    """The former holder is told at once (it closes its old connection); a first claim tells nobody."""
    said, ear = pair
    store = Store(pg_url)
    try:
        a, b = Claims(store.db, "a", said), Claims(store.db, "b", said)
        a.claim("CP-MOVED"), a.claim("CP-NEW")
        b.claim("CP-MOVED")
        assert ear.next() == ("cp", "CP-MOVED")  # in order: a first claim's notice would have come first
    finally:
        store.close()
