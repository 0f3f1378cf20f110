"""Proxy mode: the Core Client in front of the CPO's CSMS (``[upstream]`` in the config).

One :class:`Relay` per charge point connection sits between the charge point's websocket and its
:class:`~core_client.ocpp.link.StationLink`, whose OCPP handling is the same as in standalone
mode. The link talks to a :class:`LocalSide` instead of the websocket; the relay hands it frames and
picks what goes back to the charge point:

- charge point CALL: forwarded to the CSMS first (:meth:`core_client.proxy.upstream.Upstream.forward`: in
  order, queued in the outbox while the CSMS cannot answer), then handed to the link; of the two
  answers :func:`core_client.proxy.policy.reply` picks the one for the charge point. A StartTransaction
  reaches the link with the transaction id already decided (the CSMS's, or an offline id), so the
  chain session, the transaction record and the CSMS name the transaction the same way.
- CSMS CALL: sent to the charge point under a new message id, its answer returned to the CSMS
  (the upstream keeps the id map); the link never sees either.
- the link's own CALLs (RemoteStart/Stop of chain sessions, operator commands) go to the charge
  point as they are; their answers go back to the link, never to the CSMS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ocpp.messages import Call, CallError, CallResult
from ocpp.v16.enums import Action
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import Close

from core_client.config import Settings
from core_client.ocpp.link import StationLink
from core_client.ocpp.wire import FrameError, parse_frame
from core_client.proxy.config import UpstreamSettings
from core_client.proxy.outbox import Outbox
from core_client.proxy.policy import ChainTag, Source, reply, source
from core_client.proxy.upstream import Upstream

log = logging.getLogger("core_client.proxy")
ANSWER = (3, 4)  # CALLRESULT, CALLERROR
LOCAL_ANSWER_TIMEOUT_S = 10.0  # the station link answers at once (it never waits for the chain)


class Proxy:
    """Proxy mode of one Core Client: its upstream settings and outbox; a :class:`Relay` per connection."""

    def __init__(self, settings: UpstreamSettings, outbox: Outbox) -> None:
        self.settings, self.outbox = settings, outbox
        self.upstreams: dict[str, Upstream] = {}

    def relay(self, cp_id: str, connection: Any, password: str | None) -> Relay:
        return Relay(self, cp_id, connection, password)

    def health(self) -> dict[str, Any]:
        """Proxy mode in /health: charge points connected to the CSMS, CALLs waiting for it."""
        return {
            "csms_connected": sorted(cp for cp, u in self.upstreams.items() if u.connected),
            "outbox": len(self.outbox.pending()),
        }


def proxy_for(settings: Settings) -> Proxy | None:
    """Proxy mode when ``[upstream]`` is set (its outbox opened), else None: standalone."""
    if settings.upstream is None:
        return None
    log.info("proxy mode: in front of the CSMS at %s", settings.upstream.url)
    return Proxy(settings.upstream, Outbox(settings.upstream.outbox))


class LocalSide:
    """What the station link reads from and writes to in proxy mode, in place of the websocket."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._answering: dict[str, asyncio.Future[str]] = {}  # CALL id -> the link's answer
        self._answered: dict[str, asyncio.Event] = {}  # set once the chosen answer is out
        self._decided: dict[str, int] = {}  # StartTransaction CALL id -> the transaction id decided upstream

    async def recv(self) -> str | bytes:
        frame = await self._inbox.get()
        if frame is None:
            raise ConnectionClosedOK(Close(1000, "closed"), None)
        return frame

    async def send(self, message: str) -> None:
        """The link's answer to a CALL the relay is handling is held for the relay (and returns once the
        chosen answer is out, so the link's ``@after`` follow-ups come after it); anything else (its own
        CALLs, answers to frames the relay did not parse) goes to the charge point."""
        frame = json.loads(message)
        future = self._answering.get(frame[1]) if frame[0] in ANSWER else None
        if future is None:
            await self.connection.send(message)
            return
        future.set_result(message)
        await self._answered[frame[1]].wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)

    def put(self, frame: str | bytes | None) -> None:
        self._inbox.put_nowait(frame)

    async def handle(
        self, call: Call, raw: str | bytes, decided_transaction_id: int | None = None
    ) -> CallResult | CallError:
        """The link's answer to the charge point's ``call`` (a StartTransaction: with the transaction id
        decided upstream, which the link asks for by the CALL's id)."""
        future = self._answering[call.unique_id] = asyncio.get_running_loop().create_future()
        self._answered[call.unique_id] = asyncio.Event()
        if decided_transaction_id is not None:
            self._decided[call.unique_id] = decided_transaction_id
        self.put(raw)
        try:
            return parse_frame(await future)  # type: ignore[return-value]
        finally:
            del self._answering[call.unique_id]
            self._decided.pop(call.unique_id, None)

    def decided_transaction_id(self, unique_id: str) -> int | None:
        """The transaction id decided upstream for the StartTransaction with message id ``unique_id``."""
        return self._decided.get(unique_id)

    def answered(self, call: Call) -> None:
        answered = self._answered.pop(call.unique_id, None)
        if answered is not None:
            answered.set()


class Relay:
    """One charge point's connection in proxy mode (see the module's docstring)."""

    def __init__(self, proxy: Proxy, cp_id: str, connection: Any, password: str | None) -> None:
        self.proxy, self.cp_id, self.connection = proxy, cp_id, connection
        self.local = LocalSide(connection)
        self.upstream = Upstream(cp_id, proxy.settings, proxy.outbox, self._to_charge_point, password)
        self._waiting: dict[str, asyncio.Future] = {}  # CSMS CALLs relayed to the charge point, by our id
        self._calls: asyncio.Queue[tuple[Call, str | bytes]] = asyncio.Queue()

    async def run(self, link: StationLink) -> None:
        """Serve the charge point until its connection closes (raises ConnectionClosed then)."""
        self.proxy.upstreams[self.cp_id] = self.upstream
        await self.upstream.open()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(link.start()), loop.create_task(self._answer_calls(link))]
        try:
            async for raw in self.connection:
                self._receive(raw)
        finally:
            self.local.put(None)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.proxy.upstreams.get(self.cp_id) is self.upstream:
                del self.proxy.upstreams[self.cp_id]
            await self.upstream.close()

    def _receive(self, raw: str | bytes) -> None:
        try:
            message = parse_frame(raw)
        except FrameError:
            self.local.put(raw)  # the link answers it with the CALLERROR 1.6 names; the CSMS never sees it
            return
        if isinstance(message, Call):
            self._calls.put_nowait((message, raw))
            return
        future = self._waiting.get(message.unique_id)
        if future is not None:  # the answer to a CSMS's CALL
            if not future.done():
                future.set_result(message)
            return
        self.local.put(raw)  # the answer to one of the link's own CALLs

    async def _answer_calls(self, link: StationLink) -> None:
        """The charge point's CALLs, one at a time in its order: to the CSMS, to the link, answered."""
        while True:
            call, raw = await self._calls.get()
            forwarded = await self.upstream.forward(call)
            csms = forwarded.answer
            decided = None
            if call.action == Action.start_transaction:
                given = csms.payload.get("transactionId") if isinstance(csms, CallResult) else None
                decided = given if given is not None else forwarded.offline_transaction_id
            try:
                local = await asyncio.wait_for(self.local.handle(call, raw, decided), LOCAL_ANSWER_TIMEOUT_S)
            except asyncio.TimeoutError:  # a bug, not the charge point's fault: the CSMS's answer, if any
                log.error("%s: no local answer to %s within %ss", self.cp_id, call.action, LOCAL_ANSWER_TIMEOUT_S)
                local = CallError(call.unique_id, "InternalError", "no answer from the Core Client", {})
            # whether the call's idTag is the chain's, asked on the store's thread (a card's is in the database)
            paid = await link.service.handle(link.service.chain_tag, call.payload.get("idTag"))
            answer = self._answer(call, csms, local, forwarded.offline_transaction_id, lambda _, paid=paid: paid)
            try:
                await self.connection.send(answer.to_json())
            except ConnectionClosed:
                return
            finally:
                self.local.answered(call)

    def _answer(
        self,
        call: Call,
        csms: CallResult | CallError | None,
        local: CallResult | CallError,
        offline_id: int | None,
        chain_tag: ChainTag,
    ) -> CallResult | CallError:
        """The answer for the charge point: the policy's choice; the Core Client's CALLERROR (values it
        refuses) stands wherever its own answer would be used, and so does the transaction id of a chain
        session started before."""
        if isinstance(local, CallError):
            if csms is None or source(call.action, call.payload, chain_tag) is not Source.CSMS:
                return local
            return reply(call, csms, {}, offline_id, self.proxy.settings.offline_id_tags, chain_tag)
        answer = reply(call, csms, local.payload, offline_id, self.proxy.settings.offline_id_tags, chain_tag)
        known = local.payload.get("transactionId")
        if (
            source(call.action, call.payload, chain_tag) is Source.MERGED
            and answer.payload.get("transactionId") != known
        ):
            # a repeated StartTransaction of a chain session (the charge point missed the first answer):
            # its transaction keeps the id it was started under on chain, not the CSMS's new one
            log.warning(
                "%s: StartTransaction repeated: transaction %s (the CSMS's new id is not used)", self.cp_id, known
            )
            return CallResult(call.unique_id, {**answer.payload, "transactionId": known})
        return answer

    async def _to_charge_point(self, call: Call) -> CallResult | CallError:
        """A CSMS's CALL (under our message id) to the charge point; its answer."""
        future = self._waiting[call.unique_id] = asyncio.get_running_loop().create_future()
        try:
            await self.connection.send(call.to_json())
            return await asyncio.wait_for(future, self.proxy.settings.response_timeout_s)
        finally:
            self._waiting.pop(call.unique_id, None)
