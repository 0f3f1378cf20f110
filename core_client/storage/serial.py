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
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from core_client.storage.database import Conflict

T = TypeVar("T")
log = logging.getLogger("core_client.storage")
RUNS = 5  # how often an input runs before a conflict it keeps losing is its error


class StoreThread:
    """One thread for the store's work (see the module docstring); idle until first used."""

    def __init__(self, name: str = "store") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=self._started)
        self._ident: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.conflicts = 0  # inputs run again after a conflict (several instances; /health)

    def _started(self) -> None:
        self._ident = threading.get_ident()

    def inside(self) -> bool:
        """Whether the caller runs on the store's thread."""
        return threading.get_ident() == self._ident

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the store's thread, after what was handed over before; its result (or its
        exception). Called on the thread itself (nested work), it runs at once."""
        if self.inside():
            return work(*args)
        self._loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(self._executor.submit(self._whole, work, args))

    def submit(self, work: Callable[..., Any], *args: Any) -> None:
        """``work(*args)`` on the store's thread, not waited for (an error is logged)."""
        self._executor.submit(self._whole, work, args).add_done_callback(_log_failure)

    def _whole(self, work: Callable[..., T], args: tuple) -> T:
        """``work(*args)``, run again on fresh state after a conflict (see the module docstring)."""
        for _ in range(RUNS - 1):
            try:
                return work(*args)
            except Conflict as lost:
                self.conflicts += 1
                log.info("%s: deciding again", lost)
        return work(*args)

    def to_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        """``callback(*args)`` on the event loop: soon if called on the store's thread, else now."""
        if self.inside() and self._loop is not None:
            self._loop.call_soon_threadsafe(callback, *args)
        else:
            callback(*args)

    def close(self) -> None:
        """Finish what was handed over, then end the thread (not waiting for it when called on it)."""
        self._executor.shutdown(wait=not self.inside())


def _log_failure(done: Future) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("store work failed", exc_info=done.exception())
