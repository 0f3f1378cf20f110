"""A slow database holds up only the answers that wait for it: the store's work runs on its own thread
(core_client.storage.serial), so while PostgreSQL takes a second over a StartTransaction's transaction
id, another charge point's Heartbeat is answered at once, and the StartTransaction still gets its id."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tools.harness.core import start_payload

SLOW_S = 1.5  # each transaction id takes this long in PostgreSQL
HEARTBEAT_BOUND_S = 0.5  # a Heartbeat that waited for the database would take SLOW_S


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
