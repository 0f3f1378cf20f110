"""Proxy mode: one charge point's connection to the CPO's CSMS, opened and closed with the charge
point's own connection to the Core Client.

- Identity: the CSMS's URL for the charge point (``UpstreamSettings.url_for``), subprotocol ``ocpp1.6``,
  HTTP Basic with the configured or passed-through password. Refused, dropped or unreachable: it
  retries with exponential backoff (``reconnect_min_s`` doubling up to ``reconnect_max_s``, jittered)
  for as long as the charge point stays connected. The charge point is never cut off for it.
- Charge point -> CSMS (:meth:`Upstream.forward`): one CALL at a time, in the charge point's order.
  Sent at once when the CSMS is connected and nothing is queued; its answer is returned. When the
  CSMS is down, or already has a backlog, or does not answer within ``response_timeout_s``, the CALL
  goes into the :class:`~core_client.proxy.outbox.Outbox` and ``forward`` returns no answer: the caller
  answers locally (:func:`core_client.proxy.policy.reply`). Queued CALLs are delivered in order when
  the CSMS is back, each once; one already sent is not sent again on the same connection, its late
  answer is awaited (up to ``resend_after_s``, then the connection is renewed and the CALL resent
  with its original message id).
- CSMS -> charge point: each CALL gets a new message id towards the charge point (:attr:`relaying`
  maps it to the CSMS's), goes to ``to_charge_point`` and its answer returns under the CSMS's id.
  The Core Client's own CALLs never pass here, so their answers never reach the CSMS.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ocpp.messages import Call, CallError, CallResult
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from core_client.ocpp.wire import FrameError, parse_frame
from core_client.proxy.config import UpstreamSettings
from core_client.proxy.outbox import Entry, Outbox
from core_client.proxy.policy import NOT_QUEUED, to_charge_point, to_csms

log = logging.getLogger("core_client.upstream")
SUBPROTOCOL = Subprotocol("ocpp1.6")
#: Sends a CSMS's CALL (already under a new message id) to the charge point; returns its answer.
ToChargePoint = Callable[[Call], Awaitable[CallResult | CallError]]


class UpstreamGone(ConnectionError):
    """The connection to the CSMS closed before it answered."""


@dataclass(frozen=True)
class Forwarded:
    """What became of a charge point's CALL sent towards the CSMS."""

    answer: CallResult | CallError | None  # the CSMS's answer; None: not in time, the CALL is queued
    offline_transaction_id: int | None = None  # a StartTransaction without the CSMS's transactionId


class Upstream:
    """The CSMS side of one charge point in proxy mode (see the module's docstring)."""

    def __init__(
        self,
        cp_id: str,
        settings: UpstreamSettings,
        outbox: Outbox,
        to_charge_point: ToChargePoint,
        own_password: str | None = None,
    ) -> None:
        self.cp_id, self.settings, self.outbox = cp_id, settings, outbox
        self.to_charge_point = to_charge_point
        self._password = settings.password_for(cp_id, own_password)  # never logged
        self.relaying: dict[str, str] = {}  # message id towards the charge point -> the CSMS's
        self._ws: ClientConnection | None = None
        self._sent: dict[str, asyncio.Future] = {}  # CALLs sent on the current connection, by message id
        self._lock = asyncio.Lock()  # one CALL towards the CSMS at a time (OCPP-J)
        self._backlog = asyncio.Event()  # set while the outbox holds CALLs of this charge point
        self._attempted = asyncio.Event()
        self._ids: dict[int, int] = {}  # offline transaction id -> the CSMS's
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def csms_transaction_id(self, offline_id: int) -> int | None:
        """The CSMS's id of a transaction the charge point knows by an offline id, once delivered."""
        return self._ids.get(offline_id)

    async def open(self) -> None:
        """Start connecting (and reconnecting); returns after the first attempt, at most connect_timeout_s.
        An Upstream still open for the same charge point (its old connection lingers) is closed first:
        one deliverer per queue, or a CALL could go twice."""
        previous = self.outbox.deliverers.get(self.cp_id)
        if previous is not None and previous is not self:
            await previous.close()
        self.outbox.deliverers[self.cp_id] = self
        self._ids = self.outbox.csms_ids(self.cp_id)
        if self.outbox.first(self.cp_id) is not None:
            self._backlog.set()
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._attempted.wait()

    async def close(self) -> None:
        """Close the connection to the CSMS (the charge point went away); the outbox keeps what is queued."""
        if self.outbox.deliverers.get(self.cp_id) is self:
            del self.outbox.deliverers[self.cp_id]
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()

    async def forward(self, call: Call) -> Forwarded:
        """Send the charge point's ``call`` to the CSMS; see the module's docstring."""
        if self._ws is not None and not self._backlog.is_set():  # else queue at once: never wait for the drain
            async with self._lock:
                ws = self._ws
                if ws is not None and not self._backlog.is_set():
                    try:
                        future = await self._send(ws, call)
                        answer = await asyncio.wait_for(asyncio.shield(future), self.settings.response_timeout_s)
                    except (asyncio.TimeoutError, UpstreamGone, ConnectionClosed):
                        log.warning("%s: CSMS did not answer %s in time: answered locally", self.cp_id, call.action)
                    else:
                        self._sent.pop(call.unique_id, None)
                        rejected = call.action == Action.start_transaction and isinstance(answer, CallError)
                        return Forwarded(answer, self.outbox.new_offline_id(self.cp_id) if rejected else None)
        return self._queue(call)  # no await since the lock was released: nothing can overtake it

    def _queue(self, call: Call) -> Forwarded:
        """Put ``call`` into the outbox (a Heartbeat is only answered); the caller answers locally."""
        offline_id = self.outbox.new_offline_id(self.cp_id) if call.action == Action.start_transaction else None
        if call.action not in NOT_QUEUED:
            self.outbox.append(self.cp_id, call, offline_id)
            deliverer = self.outbox.deliverers.get(self.cp_id)  # this one, or the one that took over
            (deliverer or self)._backlog.set()
        return Forwarded(None, offline_id)

    async def _send(self, ws: ClientConnection, call: Call) -> asyncio.Future:
        """Send ``call`` (its transaction id rewritten for the CSMS); the future gets the CSMS's answer."""
        future = self._sent.get(call.unique_id)
        if future is None:
            future = self._sent[call.unique_id] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
            payload = to_csms(call.action, call.payload, self._ids)
            try:
                await ws.send(Call(call.unique_id, call.action, payload).to_json())
            except ConnectionClosed:
                self._sent.pop(call.unique_id, None)
                raise
        return future

    # ------------------------------------------------------------------ the connection

    async def _run(self) -> None:
        delay = self.settings.reconnect_min_s
        url = self.settings.url_for(self.cp_id)
        headers = {}
        if self._password is not None:
            token = base64.b64encode(f"{self.cp_id}:{self._password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        while True:
            try:
                async with connect(
                    url,
                    subprotocols=[SUBPROTOCOL],
                    additional_headers=headers,
                    open_timeout=self.settings.connect_timeout_s,
                    compression=None,  # OCPP frames are small: deflate would cost CPU and memory per connection
                    logger=logging.getLogger("core_client.upstream.websockets"),
                ) as ws:
                    if ws.subprotocol != SUBPROTOCOL:
                        raise InvalidHandshake(f"the CSMS did not agree to {SUBPROTOCOL}")
                    log.info("%s: connected to the CSMS", self.cp_id)
                    delay = self.settings.reconnect_min_s
                    await self._serve(ws)
                log.warning("%s: connection to the CSMS closed; reconnecting in %.1fs", self.cp_id, delay)
            except ConnectionClosed as error:
                log.warning("%s: connection to the CSMS lost (%s); reconnecting in %.1fs", self.cp_id, error, delay)
            except (OSError, InvalidHandshake, asyncio.TimeoutError) as error:
                log.warning(
                    "%s: CSMS unreachable (%s); retrying in %.1fs", self.cp_id, error or type(error).__name__, delay
                )
            finally:
                self._attempted.set()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _serve(self, ws: ClientConnection) -> None:
        """Read the CSMS's frames and deliver the backlog until the connection closes."""
        self._ws, self._sent = ws, {}
        self._attempted.set()
        drain = asyncio.get_running_loop().create_task(self._drain(ws))
        try:
            async for raw in ws:
                self._receive(ws, raw)
        finally:
            self._ws = None
            drain.cancel()
            sent, self._sent = self._sent, {}
            for future in sent.values():
                if not future.done():
                    future.set_exception(UpstreamGone(f"{self.cp_id}: connection to the CSMS closed"))

    def _receive(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            message = parse_frame(raw)
        except FrameError as error:
            log.warning("%s: bad frame from the CSMS: %s", self.cp_id, error)
            return
        if isinstance(message, Call):
            task = asyncio.get_running_loop().create_task(self._relay(ws, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        future = self._sent.get(message.unique_id)
        if future is not None and not future.done():
            future.set_result(message)

    async def _drain(self, ws: ClientConnection) -> None:
        """Deliver the outbox in order, one CALL at a time, each removed once the CSMS answered it."""
        try:
            while True:
                await self._backlog.wait()
                async with self._lock:
                    entry = self.outbox.first(self.cp_id)
                    if entry is None:
                        self._backlog.clear()
                    elif not await self._deliver(ws, entry):
                        return
        except (UpstreamGone, ConnectionClosed):
            return  # the connection is gone: the next one starts over from the outbox

    async def _deliver(self, ws: ClientConnection, entry: Entry) -> bool:
        """Send one queued CALL (or await the answer to it if already sent); False if the CSMS stays silent."""
        future = await self._send(ws, entry.call)
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), self.settings.resend_after_s)
        except asyncio.TimeoutError:
            log.warning("%s: CSMS silent on queued %s: reconnecting", self.cp_id, entry.call.action)
            await ws.close(1011, "no answer")
            return False
        self._sent.pop(entry.call.unique_id, None)
        csms_id = None
        if entry.call.action == Action.start_transaction and isinstance(answer, CallResult):
            csms_id = answer.payload.get("transactionId")
        self.outbox.delivered(entry, csms_id)
        if csms_id is not None and entry.offline_transaction_id is not None:
            self._ids[entry.offline_transaction_id] = csms_id
        if isinstance(answer, CallError):
            log.warning("%s: CSMS refused queued %s: %s", self.cp_id, entry.call.action, answer.error_code)
        return True

    async def _relay(self, ws: ClientConnection, call: Call) -> None:
        """Forward a CSMS's CALL to the charge point under a new message id; its answer back to the CSMS."""
        local_ids = {csms: offline for offline, csms in self._ids.items()}
        ours = Call(str(uuid.uuid4()), call.action, to_charge_point(call.action, call.payload, local_ids))
        self.relaying[ours.unique_id] = call.unique_id
        try:
            answer = await self.to_charge_point(ours)
        except Exception as error:  # the charge point is gone or silent: the CSMS gets a CALLERROR
            log.warning("%s: %s from the CSMS not answered by the charge point: %s", self.cp_id, call.action, error)
            answer = CallError(ours.unique_id, "GenericError", "the charge point did not answer", {})
        finally:
            self.relaying.pop(ours.unique_id, None)
        if isinstance(answer, CallError):
            frame = CallError(call.unique_id, answer.error_code, answer.error_description, answer.error_details)
        else:
            frame = CallResult(call.unique_id, answer.payload)
        try:
            await ws.send(frame.to_json())
        except ConnectionClosed:
            log.warning("%s: answer to the CSMS's %s lost: connection closed", self.cp_id, call.action)


def _retrieved(future: asyncio.Future) -> None:
    """Mark a future's exception as seen: a CALL whose waiter timed out may fail later, unawaited."""
    if not future.cancelled():
        future.exception()
