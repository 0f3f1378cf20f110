"""The store's thread: one thread that runs the Core Client's store work, one piece after the other, so
that the event loop never waits for the database.

A PostgreSQL statement takes milliseconds (tens at the tail on a loaded machine); run on the event
loop, each one delays every charge point's answer, Heartbeats included. So the session service's inputs
(an OCPP message, a range of chain events, a job mined, a reconcile pass) run here, whole: each reads,
decides and writes as it did on the loop, and the loop awaits its outcome while it serves the other
charge points. One thread, in the order handed over: the session service's state (its dicts, the
store's transactions, which belong to the thread that opened them) is never touched by two threads at
once, and a read sees every write handed over before it. An answer that needs its write durable (the
transaction id of a StartTransaction, the settle a StopTransaction queues) still waits for it; it only
no longer holds up the others.

Group commit: when several inputs are waiting, the thread runs them in one database transaction (one
commit, on PostgreSQL one wait for the disk, instead of one each), each as if it ran alone
(:meth:`core_client.storage.database.Database.grouped`); their outcomes reach their callers only once
that transaction is committed, so an answer still goes out only after its write is durable.

What the thread's work starts on the loop (waking the reconcile loop or the chain worker, a task that
talks to a charge point) goes back through :meth:`StoreThread.to_loop`.

Several instances on one PostgreSQL: another instance may write a session between this one's read and
its write (the leader applying a chain event, this one an OCPP message). The write is then refused
(:class:`~core_client.storage.database.Conflict`: the session's revision moved on), its transaction
rolled back, and the input run again whole, on fresh state: the decisions are pure, so the second run
decides on both changes and nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from core_client.storage.database import Conflict, Database

T = TypeVar("T")
log = logging.getLogger("core_client.storage")
GROUP_MAX = 64  # inputs committed together at most (the transaction holds SQLite's one writer meanwhile)
RUNS = 5  # how often an input runs before a conflict it keeps losing is its error


class StoreThread:
    """One thread for the store's work (see the module docstring); started when first used."""

    def __init__(self, db: Database | None = None, name: str = "store") -> None:
        self._db, self._name = db, name
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.conflicts = 0  # inputs run again after a conflict (several instances; /health)

    def inside(self) -> bool:
        """Whether the caller runs on the store's thread."""
        return threading.current_thread() is self._thread

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the store's thread, after what was handed over before; its result (or its
        exception), once what it wrote is committed. Called on the thread itself (nested work), it runs at once."""
        if self.inside():
            return work(*args)
        self._loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(self._hand_over(work, args))

    def submit(self, work: Callable[..., Any], *args: Any) -> None:
        """``work(*args)`` on the store's thread, not waited for (an error is logged)."""
        self._hand_over(work, args).add_done_callback(_log_failure)

    def to_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        """``callback(*args)`` on the event loop: soon if called on the store's thread, else now."""
        if self.inside() and self._loop is not None:
            self._loop.call_soon_threadsafe(callback, *args)
        else:
            callback(*args)

    def close(self) -> None:
        """Finish what was handed over, then end the thread (not waiting for it when called on it)."""
        with self._start_lock:
            thread, self._closed = self._thread, True
        if thread is not None:
            self._queue.put(None)
            if threading.current_thread() is not thread:
                thread.join()

    def _hand_over(self, work: Callable[..., Any], args: tuple) -> Future:
        future: Future = Future()
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the store's thread is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put((functools.partial(self._whole, work, args), future))
        return future

    def _whole(self, work: Callable[..., T], args: tuple) -> T:
        """``work(*args)``, run again on fresh state after a conflict (see the module docstring; in a group,
        within its piece: the piece's transactions are savepoints, so a lost run leaves nothing)."""
        for _ in range(RUNS - 1):
            try:
                return work(*args)
            except Conflict as lost:
                self.conflicts += 1
                log.info("%s: deciding again", lost)
        return work(*args)

    def _serve(self) -> None:
        while (first := self._queue.get()) is not None:
            batch, closing = [first], False
            while len(batch) < GROUP_MAX and not self._queue.empty():
                if (more := self._queue.get()) is None:
                    closing = True
                    break
                batch.append(more)
            self._run_batch(batch)
            if closing:
                return

    def _run_batch(self, batch: list[tuple[Callable[[], Any], Future]]) -> None:
        """Several inputs in one transaction (see the module docstring), one alone as it is."""
        live = [(work, future) for work, future in batch if future.set_running_or_notify_cancel()]
        if len(live) == 1 or self._db is None:
            for work, future in live:
                _settle(future, work)
            return
        try:
            outcomes = self._db.grouped([work for work, _ in live])
        except Exception as error:  # the commit failed: none of them was written
            outcomes = [error] * len(live)
        for (_, future), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _settle(future: Future, work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as error:
        future.set_exception(error)


def _log_failure(done: Future) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("store work failed", exc_info=done.exception())
