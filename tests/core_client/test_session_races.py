"""Two instances of one operator on one database write the same session within milliseconds: the leader
applies a chain input (a job mined), the instance holding the charge point's socket an OCPP message. Each
reads the session, decides and writes it whole; the writes are ordered here (one instance stops right after
its read until the other has committed, no sleeps), and both changes survive: the later write is refused
(the session's revision moved on) and its input decided again on fresh state. A meter reading written in
between refuses nothing and is not overwritten. On both engines: two stores on one SQLite file, or two
instances (each its own pool) on one real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core_client.config import Settings
from core_client.sessions.jobs import JobKind, StartArgs
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.storage.claims import claims_for
from core_client.storage.store import Store
from ev_network.pricing import Tariff
from ev_network.session_ids import make_session_id

TOKEN = 10**18
CP = "CP-RACE"
SID = make_session_id("0x" + "ab" * 20, 0, 9)
BUDGET_WH = 28_000  # with the tariff below, the reading that uses up the deposit (a budget stop)


class PausingStore(Store):
    """A real store whose next session read, once armed, holds its thread until let go: the other instance
    reads, decides and commits meanwhile."""

    def __init__(self, location: str | Path) -> None:
        super().__init__(location)
        self.armed, self.has_read, self.go = False, threading.Event(), threading.Event()

    def get_session(self, session_id: int) -> SessionRecord | None:
        found = super().get_session(session_id)
        if self.armed:
            self.armed = False
            self.has_read.set()
            assert self.go.wait(30), "never let go"
        return found


class Socket:
    """The charge point's connection as the sessions see it: what follows an answer runs after it."""

    id = CP

    def __init__(self) -> None:
        self.later: list[Callable[[], Awaitable[Any]]] = []

    def after_reply(self, send: Callable[[], Awaitable[Any]]) -> None:
        self.later.append(send)


@dataclasses.dataclass
class Pair:
    """Two instances: the leader (chain inputs) and the one holding the charge point's socket."""

    leader: SessionService
    holder: SessionService


@pytest.fixture
async def pair(db_location: str | Path) -> AsyncIterator[Pair]:  # on both engines (tests/conftest.py)
    stores = [PausingStore(db_location) for _ in range(2)]
    leader, holder = (
        SessionService(Settings(), s, claims=claims_for(s.db, name)) for s, name in zip(stores, "lh", strict=True)
    )
    starting(stores[0])
    holder.claim(CP)
    yield Pair(leader, holder)
    for store in stores:
        store.close()


def starting(store: Store) -> None:
    """A session whose charge point started its transaction 10 minutes ago; its start is queued for the chain."""
    begun = time.time() - 600
    s = SessionRecord(
        session_id=SID,
        station_id=1,
        charge_point_id=CP,
        connector=1,
        driver="0x" + "ab" * 20,
        deposit=10 * TOKEN,
        tariff=Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2),
    )
    store.insert_session(s)
    tx = store.new_transaction(CP, 1, "EVN1", SID, 1000)
    s = s.apply("start_transaction", transaction_id=tx, meter_start=1000, meter_last=1000, started_at=begun)
    store.save_session(dataclasses.replace(s, meter_at=begun))
    store.enqueue(JobKind.START, SID, StartArgs(tx, 1000))


def mined(leader: SessionService) -> Callable[[], Awaitable[None]]:
    """The leader's chain worker: the session's start is mined."""
    job = leader.store.job(JobKind.START, SID)
    return lambda: leader.handle(leader.on_job_done, job, 77, "0x" + "11" * 32, None)


def meter(holder: SessionService, wh: int) -> Callable[[], Awaitable[None]]:
    """The charge point's MeterValues at the instance holding its socket."""
    values = [{"timestamp": "2026-12-06T22:00:00Z", "sampled_value": [{"value": str(wh), "unit": "Wh"}]}]
    return lambda: holder.handle(holder.meter_values, Socket(), 1, 1, values)


def stopped(holder: SessionService) -> Callable[[], Awaitable[str]]:
    """The charge point's StopTransaction at the instance holding its socket."""
    return lambda: holder.handle(holder.stop_transaction, Socket(), 1, 1500, "Local")


async def interleaved(paused: SessionService, first: Callable[[], Awaitable[Any]], then: Callable[[], Awaitable[Any]]):
    """``first`` (on ``paused``) reads the session; ``then`` runs whole and commits; ``first`` goes on."""
    store = paused.store
    assert isinstance(store, PausingStore)
    store.armed = True
    held = asyncio.ensure_future(first())
    assert await asyncio.to_thread(store.has_read.wait, 30)
    assert not held.done()
    await then()
    store.go.set()
    await held


@pytest.mark.parametrize("paused", ["leader", "holder"])
async def test_a_start_mined_and_a_budget_stop_decided_at_once_both_survive(pair, paused):
    """Unchecked, the later write undid the other: the session went back to STARTING (the holder's
    write), or its budget stop was lost (the leader's)."""
    start, budget = mined(pair.leader), meter(pair.holder, BUDGET_WH)
    if paused == "leader":
        await interleaved(pair.leader, start, budget)
    else:
        await interleaved(pair.holder, budget, start)
    s = pair.leader.store.get_session(SID)
    assert (s.state, s.stop_wanted, s.meter_last) == (State.CHARGING, "budget", BUDGET_WH)
    assert getattr(pair, paused).store.thread.conflicts == 1  # the later write was refused, its input decided again


async def test_a_start_mined_read_before_the_stop_does_not_undo_the_stop(pair):
    """Unchecked, the leader's write took the session from STOPPED back to CHARGING, its meter stop gone,
    with its settle queued: a settle mined later found a charging session."""
    await interleaved(pair.leader, mined(pair.leader), stopped(pair.holder))
    s = pair.holder.store.get_session(SID)
    assert (s.state, s.meter_stop) == (State.STOPPED, 1500)
    assert pair.leader.store.job(JobKind.SETTLE, SID) is not None
    assert pair.leader.store.thread.conflicts == 1


async def test_a_meter_reading_written_between_a_read_and_its_write_refuses_nothing_and_stays(pair):
    """The holder's batch of readings is no revision: the leader's decision goes through at once, and the
    newer reading is not written over by the older one the leader read."""

    async def reading() -> None:
        await meter(pair.holder, 3000)()
        await pair.holder.handle(pair.holder.flush)

    await interleaved(pair.leader, mined(pair.leader), reading)
    s = pair.leader.store.get_session(SID)
    assert (s.state, s.meter_last) == (State.CHARGING, 3000)
    assert pair.leader.store.thread.conflicts == 0
