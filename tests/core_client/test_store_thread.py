"""The store's thread (core_client.storage.serial) on both engines: inputs waiting together are committed
together (group commit), each as if it ran alone, and none is answered before its write is committed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core_client.storage.engines import open_database
from core_client.storage.store import Store


@pytest.fixture
def store(db_location):
    s = Store(db_location)
    yield s
    s.close()


async def _held_up(store: Store, inputs: list) -> list:
    """Run ``inputs`` (work, args...) on the store's thread, all handed over while it is busy with another
    piece of work (so that they wait together); their outcomes, exceptions included."""
    busy, release = threading.Event(), threading.Event()
    first = asyncio.ensure_future(store.thread.run(lambda: busy.set() or release.wait(10)))
    await asyncio.to_thread(busy.wait, 10)
    waiting = [asyncio.ensure_future(store.thread.run(*work)) for work in inputs]
    release.set()
    await first
    return await asyncio.gather(*waiting, return_exceptions=True)


async def test_inputs_waiting_together_are_committed_together(store):
    events: list[tuple[str, int]] = []

    def write(n: int) -> int:
        store.set_meta(f"k{n}", str(n))
        store.on_commit(lambda: events.append(("committed", n)))
        events.append(("ran", n))
        return n

    assert await _held_up(store, [(write, n) for n in range(5)]) == list(range(5))
    ran, committed = [("ran", n) for n in range(5)], [("committed", n) for n in range(5)]
    assert events == ran + committed  # one transaction: every commit callback after the last input
    assert [store.meta(f"k{n}") for n in range(5)] == ["0", "1", "2", "3", "4"]


async def test_an_input_that_fails_in_a_group_leaves_nothing_and_the_others_stand(store):
    def write(n: int) -> None:
        store.set_meta(f"k{n}", "written")

    def fail() -> None:
        store.set_meta("failed", "written")
        raise RuntimeError("the input failed")

    def caught() -> str:  # an input that gives up on its own transaction and carries on
        try:
            with store.transaction():
                store.set_meta("rolled back", "written")
                raise ValueError("its own transaction failed")
        except ValueError:
            store.set_meta("after", "written")
        return "done"

    outcomes = await _held_up(store, [(write, 1), (fail,), (caught,), (write, 2)])
    assert outcomes[0] is None and isinstance(outcomes[1], RuntimeError) and outcomes[2:] == ["done", None]
    assert store.meta("failed") is None and store.meta("rolled back") is None
    assert [store.meta(k) for k in ("k1", "after", "k2")] == ["written"] * 3


async def test_an_input_is_answered_only_once_its_write_is_committed(store, db_location):
    """Each input's caller, when it resumes, finds its write on another connection (what a crash keeps)."""
    other = open_database(db_location)
    seen: dict[int, str | None] = {}

    async def answered(n: int) -> None:
        await store.thread.run(store.set_meta, f"k{n}", str(n))
        rows = other.execute("SELECT value FROM meta WHERE key = ?", (f"k{n}",))
        seen[n] = rows[0][0] if rows else None

    try:
        busy, release = threading.Event(), threading.Event()
        first = asyncio.ensure_future(store.thread.run(lambda: busy.set() or release.wait(10)))
        await asyncio.to_thread(busy.wait, 10)
        tasks = [asyncio.ensure_future(answered(n)) for n in range(4)]
        await asyncio.sleep(0)  # every input handed over while the thread is busy
        release.set()
        await asyncio.gather(first, *tasks)
    finally:
        other.close()
    assert seen == {n: str(n) for n in range(4)}


async def test_an_input_of_a_group_that_deadlocks_with_another_instance_runs_again_after_the_group(pg_url):
    """PostgreSQL breaks a deadlock between a group and another instance's transaction by failing one
    statement of the group's: that input runs again once the group is committed (in the group it would
    wait for the other transaction again, which waits for the group), and succeeds."""
    store, other = Store(pg_url), open_database(pg_url)
    store.set_meta("x", "0")
    store.set_meta("y", "0")
    x_taken, y_taken = threading.Event(), threading.Event()

    def lock_x() -> None:
        store.set_meta("x", "group")
        x_taken.set()
        y_taken.wait(10)

    def write_y() -> str:
        store.set_meta("y", "group")
        return "written"

    def the_other_instance() -> None:
        with other.transaction():
            other.execute("SET LOCAL deadlock_timeout = '20s'")  # the group's statement is the one that fails
            other.execute("UPDATE meta SET value = 'other' WHERE key = 'y'")
            y_taken.set()
            x_taken.wait(10)
            other.execute("UPDATE meta SET value = 'other' WHERE key = 'x'")  # waits for the group

    try:
        instance = asyncio.ensure_future(asyncio.to_thread(the_other_instance))
        assert await _held_up(store, [(lock_x,), (write_y,)]) == [None, "written"]
        await instance
        assert (store.meta("x"), store.meta("y")) == ("other", "group")  # the input ran after the other
    finally:
        other.close()
        store.close()
