"""Chain reads the sessions side asks for one at a time (a session's state before its RemoteStart, a station's
meter key when its charge point connects), sent to the node together: the reads asked for while a batch is on
its way go out as the next batch, one JSON-RPC batch request (:meth:`Escrow.get_sessions`), so a thousand
charge points asking at once cost a few requests, not a thousand, and when only one asks it goes at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
BATCH_MAX = 200  # reads per JSON-RPC batch request


class BatchedReads(Generic[Key, Value]):
    """``await reads.get(key)``: ``read_many(keys)`` (blocking; run by ``run_blocking``) answers a batch, a
    read that failed as its exception (raised to whoever asked for that key). An exception raised by
    ``read_many`` itself (the chain is down) goes to every read of the batch."""

    def __init__(
        self,
        read_many: Callable[[list[Key]], list[Value | Exception]],
        run_blocking: Callable[..., asyncio.Future] | None = None,
    ) -> None:
        self.read_many = read_many
        self.run_blocking = run_blocking or asyncio.to_thread
        self._asked: dict[Key, list[asyncio.Future[Value]]] = {}
        self._sending: asyncio.Task | None = None

    async def get(self, key: Key) -> Value:
        future: asyncio.Future[Value] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(key, []).append(future)
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send())
        return await future

    async def _send(self) -> None:
        """Send what was asked for, batch after batch, until nothing is left."""
        batch: dict[Key, list[asyncio.Future[Value]]] = {}
        try:
            while self._asked:
                keys = list(self._asked)[:BATCH_MAX]
                batch = {key: self._asked.pop(key) for key in keys}
                try:
                    answers = await self.run_blocking(self.read_many, keys)
                except Exception as error:  # handed to every reader of the batch
                    answers = [error] * len(keys)
                for key, answer in zip(keys, answers, strict=True):
                    for future in batch[key]:
                        if future.done():  # its reader was cancelled
                            continue
                        if isinstance(answer, Exception):
                            future.set_exception(answer)
                        else:
                            future.set_result(answer)
        except asyncio.CancelledError:  # shutting down: nobody is left waiting for an answer
            for future in [f for futures in (*batch.values(), *self._asked.values()) for f in futures]:
                future.cancel()
            self._asked.clear()
            raise
        finally:
            self._sending = None
