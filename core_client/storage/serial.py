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
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from core_client.storage.database import Conflict, Database, lost_to_another

T = TypeVar("T")
log = logging.getLogger("core_client.storage")
GROUP_MAX = 64  # inputs committed together at most (the transaction holds SQLite's one writer meanwhile)
RUNS = 5  # how often an input runs before a conflict it keeps losing is its error


class _Input(NamedTuple):
    """A piece of work handed over, and the future its caller awaits on ``loop`` (None: not awaited)."""

    work: Callable[[], Any]
    future: asyncio.Future | None = None
    loop: asyncio.AbstractEventLoop | None = None


class StoreThread:
    """One thread for the store's work (see the module docstring); started when first used."""

    def __init__(self, db: Database | None = None, name: str = "store") -> None:
        self._db, self._name = db, name
        self._queue: queue.SimpleQueue[_Input | None] = queue.SimpleQueue()
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
        exception), once what it wrote is committed. Called on the thread itself (nested work), it runs at
        once. Cancelled before it started, it does not run."""
        if self.inside():
            return work(*args)
        self._loop = loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._hand_over(_Input(functools.partial(self._whole, work, args), future, loop))
        return await future

    def submit(self, work: Callable[..., Any], *args: Any) -> None:
        """``work(*args)`` on the store's thread, not waited for (an error is logged)."""
        self._hand_over(_Input(functools.partial(self._whole, work, args)))

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

    def _hand_over(self, piece: _Input) -> None:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the store's thread is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put(piece)

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
            live = [p for p in batch if p.future is None or not p.future.cancelled()]
            if live:
                _deliver_all(live, self._run_batch([p.work for p in live]))
            if closing:
                return

    def _run_batch(self, works: list[Callable[[], Any]]) -> list[Any]:
        """The outcomes (results or exceptions) of several inputs run in one transaction (see the module
        docstring); of one, run alone as it is."""
        if len(works) == 1 or self._db is None:
            return [_outcome(work) for work in works]
        try:
            outcomes = self._db.grouped(works)
        except BaseException as error:  # the commit failed: none of them was written
            return [error] * len(works)
        # a piece that deadlocked with another instance's transaction runs again once the group's locks are
        # gone (run again inside the group, it would wait for the same transaction, which waits for the group)
        return [_outcome(w) if lost_to_another(o) else o for w, o in zip(works, outcomes, strict=True)]


def _outcome(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except BaseException as error:  # the caller's to handle, as if it had run the work itself
        return error


def _deliver_all(pieces: list[_Input], outcomes: list[Any]) -> None:
    """Each outcome to its caller: one wake-up of each loop for the whole batch, not one per input."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
    for piece, outcome in zip(pieces, outcomes, strict=True):
        if piece.future is None or piece.loop is None:
            if isinstance(outcome, BaseException):
                log.error("store work failed", exc_info=outcome)
        else:
            by_loop.setdefault(piece.loop, []).append((piece.future, outcome))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(_answer, answers)


def _answer(answers: list[tuple[asyncio.Future, Any]]) -> None:
    for future, outcome in answers:
        if future.cancelled():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
