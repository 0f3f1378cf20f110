"""A slow database holds up only the answers that wait for it: the store's work runs on its own thread
(core_client.storage.serial), so while PostgreSQL takes a second over a StartTransaction's transaction
id, another charge point's Heartbeat is answered at once, and the StartTransaction still gets its id; and
while the database holds /health's queries, the charge points are answered as well."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request

import psycopg
import pytest

from tools.harness.core import start_payload

SLOW_S = 1.5  # each transaction id takes this long in PostgreSQL
HEARTBEAT_BOUND_S = 0.5  # a Heartbeat that waited for the database would take SLOW_S
VALVE_S = 8.0  # a table lock goes after this at the latest: a test of a loop that waits for it ends, failing


@pytest.fixture
def core_database(pg_url):
    return pg_url


def slow_transactions(url: str) -> None:
    """Make PostgreSQL sleep SLOW_S over every new OCPP transaction (a trigger: nothing of ours changes)."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_sleep({SLOW_S}); RETURN NEW; END $$"
        )
        db.execute("CREATE TRIGGER slow BEFORE INSERT ON transactions FOR EACH ROW EXECUTE FUNCTION slow_down()")


def sleeping(url: str) -> bool:
    """Whether PostgreSQL is in the trigger's sleep now."""
    with psycopg.connect(url, autocommit=True) as db:
        return bool(db.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").fetchone()[0])


async def test_a_heartbeat_is_answered_while_the_database_holds_a_start_transaction(core, pg_url):
    a, b = await core.raw(core.a), await core.raw(core.b)
    await asyncio.to_thread(slow_transactions, pg_url)
    began = time.monotonic()
    start = asyncio.ensure_future(a.call("StartTransaction", start_payload(1, "NOSESSION", 0), timeout=30))
    deadline = time.monotonic() + 10
    while not await asyncio.to_thread(sleeping, pg_url):  # the trigger sleeps: the database holds the start
        assert not start.done(), "answered before anything else ran: the event loop waited for the database"
        assert time.monotonic() < deadline, "the StartTransaction never reached the database"
    asked = time.monotonic()
    heartbeat = await b.call("Heartbeat", {}, timeout=10)
    answered = time.monotonic() - asked
    assert heartbeat[0] == 3 and "currentTime" in heartbeat[2]
    assert answered < HEARTBEAT_BOUND_S, f"the Heartbeat waited {answered:.2f}s for the database"
    assert not start.done()  # the database still holds it
    answer = await start
    assert answer[0] == 3 and answer[2]["idTagInfo"]["status"] == "Invalid"
    assert time.monotonic() - began >= SLOW_S
    assert core.daemon.store.get_transaction(answer[2]["transactionId"]) is not None  # durable before the answer
    await a.close()
    await b.close()


class HeldLock(threading.Thread):
    """``LOCK TABLE`` in a transaction of its own connection, held until let go (VALVE_S at most)."""

    def __init__(self, url: str, table: str) -> None:
        super().__init__(daemon=True)
        self.url, self.table = url, table
        self.locked, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url) as db:
            db.execute(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE")
            self.locked.set()
            self.release.wait(VALVE_S)
            db.rollback()


def waiting_for_lock(url: str, statement: str) -> bool:
    """Whether a statement containing ``statement`` waits for a lock in PostgreSQL now."""
    with psycopg.connect(url, autocommit=True) as db:
        found = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{statement}%",),
        )
        return bool(found.fetchone()[0])


def get_health(control_url: str) -> dict:
    with urllib.request.urlopen(control_url + "/health", timeout=VALVE_S * 2) as response:
        return json.loads(response.read())


async def test_the_charge_points_are_answered_while_the_database_holds_the_health_report(core, pg_url):
    core.daemon.watcher.stop()  # the chain side no longer reads the job queue: only /health does
    core.daemon.worker.stop()
    b = await core.raw(core.b)
    loop = asyncio.get_running_loop()
    lock = HeldLock(pg_url, "jobs")
    lock.start()
    assert await asyncio.to_thread(lock.locked.wait, 10)
    health = asyncio.ensure_future(asyncio.to_thread(get_health, core.control_url))

    def heartbeat_while_health_waits() -> float:
        """From outside the event loop: once /health's count of the jobs waits for the lock, how long the
        other charge point's Heartbeat takes."""
        deadline = time.monotonic() + 10
        while not waiting_for_lock(pg_url, "GROUP BY status, kind"):
            assert time.monotonic() < deadline, "/health never asked the database"
        asked = time.monotonic()
        answer = asyncio.run_coroutine_threadsafe(b.call("Heartbeat", {}, timeout=VALVE_S * 2), loop).result()
        assert answer[0] == 3 and "currentTime" in answer[2]
        return time.monotonic() - asked

    answered = await asyncio.to_thread(heartbeat_while_health_waits)
    assert answered < HEARTBEAT_BOUND_S, f"the Heartbeat waited {answered:.2f}s for /health's database"
    assert not health.done()  # the database still holds it
    lock.release.set()
    report = await health
    assert report["role"] == "leader" and report["queue_depth"] == 0 and core.b in report["connected_charge_points"]
    assert [i["role"] for i in report["instances"]] == ["leader"] and report["conflicts"] == 0  # no other writer
    await b.close()
