"""The simulated charge point's link to the central system: reconnecting with backoff, and the
transaction messages that are queued and re-sent until answered (a mixin of SimChargePoint).

OCPP 1.6 (section 4.7, "Transaction-related messages"): a charge point queues StartTransaction,
StopTransaction and transaction MeterValues while it is offline, delivers them in order when the
connection is back, and re-sends one that got no answer. With a :class:`Reconnect` policy the
simulator does the same; without one (the default) a lost connection ends the charge point.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ocpp.exceptions import OCPPError, ValidationError
from websockets.exceptions import ConnectionClosed, InvalidHandshake

log = logging.getLogger("simulator")
LOST = object()  # a CALL that got no answer because the link went down or the reply timed out


@dataclass(frozen=True)
class Reconnect:
    """Backoff between reconnection attempts: ``initial_s``, times ``factor`` after each failure, up to
    ``max_s``, each with up to ``jitter`` (a fraction) added so a fleet does not come back in lockstep."""

    initial_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delays(self, rng: random.Random | None = None):
        """The delay before each attempt, forever."""
        rng = rng or random.Random()
        delay = self.initial_s
        while True:
            yield delay * (1 + self.jitter * rng.random())
            delay = min(delay * self.factor, self.max_s)


class ReconnectingLink:
    """Reconnect and the queue of transaction messages, for SimChargePoint (an ``ocpp`` ChargePoint)."""

    reconnect: Reconnect | None = None
    id: str
    use_connection: Callable[[Any], None]  # of simulator.ocpp_adapter.OcppChargePoint

    def _init_link(self, dial: Callable[[], Awaitable[Any]] | None, reconnect: Reconnect | None) -> None:
        self._dial, self.reconnect = dial, reconnect
        self.online = asyncio.Event()  # connected and booted: queued messages may go out
        self.link_lost = asyncio.Event()  # the current connection is gone (set until the next one is up)
        self.reconnects = 0  # connections made after the first
        self.resent = 0  # transaction messages sent again because the first try got no answer
        self._closing = False
        self._queue = asyncio.Lock()  # FIFO: queued transaction messages go out in order, one at a time

    @property
    def reconnecting(self) -> bool:
        return self.reconnect is not None and self._dial is not None and not self._closing

    async def _call(self, payload: Any, *, queued: bool = False) -> Any | None:
        """Send a CALL; returns the CALLRESULT payload, or None after a CALLERROR, timeout or lost link.

        A ``queued`` (transaction) message of a reconnecting charge point waits for the link instead,
        and is sent again until the central system answers it."""
        if not (queued and self.reconnect is not None):
            outcome = await self._try_call(payload)
            return None if outcome is LOST else outcome
        async with self._queue:
            while True:
                await self.online.wait()
                outcome = await self._try_call(payload)
                if outcome is not LOST or not self.reconnecting:
                    return None if outcome is LOST else outcome
                self.resent += 1
                log.info("%s: %s not answered, queued to send again", self.id, type(payload).__name__)

    async def _try_call(self, payload: Any) -> Any:
        """One attempt: the answer, None for a CALLERROR or invalid answer, LOST for no answer."""
        sent = time.perf_counter()
        lost = asyncio.ensure_future(self.link_lost.wait())
        attempt = asyncio.ensure_future(self.call(payload, suppress=False))
        try:
            await asyncio.wait({attempt, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not attempt.done():  # the link went down while waiting for the answer
            attempt.cancel()
            log.debug("%s: %s lost with the connection", self.id, type(payload).__name__)
            return LOST
        try:
            response = attempt.result()
        except OCPPError as error:
            log.warning("%s: %s got CALLERROR %s", self.id, type(payload).__name__, error)
            return None
        except ValidationError as error:
            log.warning("%s: %s failed: %s", self.id, type(payload).__name__, error)
            return None
        except (asyncio.TimeoutError, ConnectionClosed) as error:
            log.debug("%s: %s got no answer: %s", self.id, type(payload).__name__, error)
            return LOST
        self.reply_latencies.append(time.perf_counter() - sent)
        return response

    async def _redial(self) -> None:
        """Connect again with backoff, then boot; the queued messages follow once booted."""
        for delay in self.reconnect.delays():
            await asyncio.sleep(delay)
            if self._closing:
                return
            try:
                connection = await self._dial()
            except (OSError, InvalidHandshake, asyncio.TimeoutError) as error:
                log.info("%s: reconnect failed (%s), next try in up to %.1f s", self.id, error, delay)
                continue
            self.use_connection(connection)
            self.reconnects += 1
            self.link_lost.clear()
            self.spawn(self._serve())
            log.info("%s: reconnected (%d)", self.id, self.reconnects)
            try:
                await self.boot()
            except ConnectionError as error:  # lost again while booting: _serve redials
                log.info("%s: %s", self.id, error)
            return
