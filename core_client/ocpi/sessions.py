"""Wallet sessions at OCPI stations, through the CSMS: each imported station is, to the session service,
one more charge point (:class:`OcpiStationLink`), so the one session state machine and its decisions
(:mod:`core_client.sessions.machine`) run them exactly as over OCPP:

- the reconcile loop's RemoteStart -> START_SESSION with a Token for this session (APP_USER, uid = the
  session's idTag ``EVN<n>``) at the station's EVSE and connector, answered Accepted only once the CSMS's
  CommandResult says ACCEPTED (REJECTED, FAILED, ... -> Rejected: the session is refused and refunded;
  no result within the command's timeout -> no answer: the start timeout refuses and refunds);
- the CSMS's Session (PUT) -> StartTransaction (the OCPI session id kept as our transaction), its kWh
  (PATCHes) -> meter readings (live data, the budget rule);
- RemoteStop (budget, the driver's stop on chain) -> STOP_SESSION;
- the CDR (POSTed or pulled) -> StopTransaction with its energy and its end time: settled once (a CDR id is
  taken once, the service ignores a repeated stop), with the time fee counted until the CDR's
  ``end_date_time`` (settleAt), not until the CDR came. A CDR of a session that is not ours is recorded,
  not settled;
- each transaction goes into the anchored transaction record, as OCPP ones do.

:class:`SessionBridge` is the daemon's :class:`~core_client.ocpi.inbox.OcpiInbox`; the tokens it issued
(kept in the mirror, :mod:`core_client.ocpi.issued_tokens`) answer the CSMS's real-time authorization."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from core_client.ocpi.cdr_readings import transaction_data, wh
from core_client.ocpi.csms import Csms
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.inbox import IssuedToken
from core_client.ocpi.issued_tokens import IssuedTokens
from core_client.ocpi.mirror import ImportedStation, Mirror
from core_client.ocpi.models import CDR, CommandResult, Session, Token
from core_client.ocpi.models.base import ci, format_datetime
from core_client.ocpi.models.enums import (
    CommandResponseType,
    CommandResultType,
    CommandType,
    ModuleID,
    SessionStatus,
    TokenType,
)
from core_client.ocpi.service import StationInbox, StatusSink
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.sync import pull_sessions
from core_client.ocpi.tariff_pushes import TariffPushes
from core_client.ocpi.transport import Party
from core_client.ocpp.link import Recorder
from core_client.ocpp.wire import signed_meter_data
from core_client.sessions.machine import SessionRecord, cost_so_far
from core_client.sessions.registry import AfterReply, CommandFailed, Registration
from ev_network.errors import EVNetworkError

T = TypeVar("T")
log = logging.getLogger("core_client.ocpi")
ACCEPTED, REJECTED = "Accepted", "Rejected"  # OCPP RemoteStartStopStatus, as the reconcile loop reads it


class Sessions(Protocol):
    """What the bridge needs of :class:`core_client.sessions.service.SessionService`."""

    def start_transaction(self, link: Any, connector: int, id_tag: str, meter_start: int) -> tuple[int, str]: ...
    def meter_values(self, link: Any, connector: int, transaction_id: int | None, values: list) -> None: ...
    def stop_transaction(
        self,
        link: Any,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        transaction_data: list | None = None,
        ended_at: int | None = None,
    ) -> str: ...
    def session_of_transaction(self, transaction_id: int) -> SessionRecord | None: ...
    async def handle(self, work: Callable[..., T], *args: Any) -> T: ...


class OcpiStationLink:
    """An imported OCPI station as a charge point of the session service (the calls of the
    :class:`core_client.sessions.registry.ChargePoint` port that sessions make)."""

    def __init__(self, station: ImportedStation, bridge: SessionBridge) -> None:
        self.station = station
        self.bridge = bridge
        self.id = station.charge_point_id
        self.replies = AfterReply()  # sent once the bridge has taken in what the CSMS said

    def registration(self) -> Registration:
        """Its registration for the session service: no boot (the CSMS runs the charge point); sessions
        may start here while we are registered with the CSMS."""
        station = self.station
        return Registration(station.station_id, len(station.connector_ids), True, reachable=self.bridge.registered)

    def after_reply(self, send: Callable[[], Awaitable[Any]]) -> None:
        """Send ``send()`` once the bridge has taken in the CSMS's Session or CDR: a RemoteStop of a refused
        start needs the OCPI session linked to its transaction first."""
        self.replies.add(send)

    async def remote_start(self, connector: int, id_tag: str) -> str:
        return await self.bridge.start(self, connector, id_tag)

    async def remote_stop(self, transaction_id: int) -> str:
        return await self.bridge.stop(transaction_id)


class SessionBridge(StationInbox):
    """The daemon's inbox in OCPI mode: availability (as :class:`StationInbox`), and wallet sessions."""

    def __init__(
        self,
        mirror: Mirror,
        set_status: StatusSink,
        settings: OcpiSettings,
        sessions: Sessions,
        csms: Csms,
        records: Recorder | None = None,
        decimals: int | None = None,
        tariff_pushes: TariffPushes | None = None,
    ) -> None:
        super().__init__(mirror, set_status, tariff_pushes)
        self.settings = settings
        self.sessions = sessions
        self.csms = csms
        self.records = records  # the anchored transaction record, as the OCPP links write it
        self.decimals = decimals  # the chain token's, to compare a CDR's total_cost with the chain's price
        self.cost_differences: list[dict[str, Any]] = []  # the latest CDRs whose cost is not the chain's
        self.links: dict[str, OcpiStationLink] = {}  # charge point id -> link
        self.issued = IssuedTokens(mirror, settings)  # the Tokens of our sessions
        self._results: dict[str, asyncio.Future[CommandResult]] = {}  # command uid -> its CommandResult
        self._sessions_due: dict[str, asyncio.Event] = {}  # token uid of an accepted start -> its Session came
        self._tasks: set[asyncio.Task] = set()
        self._commands = 0
        try:  # the loop its tasks run on (a follow-up of an answer is handed over from the store's thread)
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def registered(self) -> bool:
        try:
            registration = self.csms.store.load()
        except OcpiError:
            return False
        return registration is not None and registration.registered

    def refresh_links(self) -> list[OcpiStationLink]:
        """A link for each imported station not linked yet (the new ones)."""
        new = [OcpiStationLink(s, self) for s in self.mirror.stations() if s.charge_point_id not in self.links]
        self.links.update({link.id: link for link in new})
        return new

    def spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` as a task of the loop (soon, when called from another thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                raise
            self._loop.call_soon_threadsafe(self.spawn, coroutine)
            return
        task = loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------ commands out

    def _command_uid(self, kind: str, key: str) -> str:
        self._commands += 1
        return f"{kind}-{key}-{self._commands}"

    async def start(self, link: OcpiStationLink, connector: int, id_tag: str) -> str:
        """START_SESSION for the session of ``id_tag`` at connector ``connector`` of the station."""
        station = link.station
        if not 1 <= connector <= len(station.connector_ids):
            return REJECTED
        token = self.issued.issue(id_tag, station)
        uid = self._command_uid("start", id_tag)
        waiting = self._results[uid] = asyncio.get_running_loop().create_future()
        sent_at = datetime.now(timezone.utc)
        arrived = self._sessions_due[id_tag] = asyncio.Event()
        accepted = False
        try:
            try:
                response = await self.csms.start_session(
                    uid, token, station.location_id, station.evse_uid, station.connector_ids[connector - 1]
                )
            except OcpiError as error:
                raise CommandFailed(f"START_SESSION: {error}") from None
            if response.result != CommandResponseType.ACCEPTED:
                log.info("%s: START_SESSION %s by the CSMS", link.id, response.result.value)
                return REJECTED
            timeout = min(float(response.timeout), self.settings.request_timeout_s * 10)
            try:
                result = await asyncio.wait_for(waiting, timeout)
            except asyncio.TimeoutError:
                raise CommandFailed(f"no CommandResult within {timeout:g}s") from None
            log.info("%s: START_SESSION for %s: %s", link.id, id_tag, result.result.value)
            accepted = result.result == CommandResultType.ACCEPTED
            if accepted:
                self.spawn(self._session_or_pull(id_tag, arrived, sent_at))
            return ACCEPTED if accepted else REJECTED
        finally:
            self._results.pop(uid, None)
            if not accepted:
                self._sessions_due.pop(id_tag, None)

    async def _session_or_pull(self, id_tag: str, arrived: asyncio.Event, since: datetime) -> None:
        """After an accepted START_SESSION: when its Session is not pushed within ``session_pull_after_s``
        (a CSMS that does not push, or a lost push), GET the CSMS's Sessions since the command and take
        the one of this token as a pushed one, before the start times out."""
        try:
            await asyncio.wait_for(arrived.wait(), self.settings.session_pull_after_s)
            return
        except asyncio.TimeoutError:
            pass
        finally:
            self._sessions_due.pop(id_tag, None)
        try:
            pulled = await pull_sessions(self.csms, id_tag, since)
        except OcpiError as error:
            log.warning("OCPI: no Session pushed for %s, and the pull failed: %s", id_tag, error)
            return
        for session in pulled:
            party = Party(session.country_code, session.party_id)
            log.info("OCPI: Session %s of %s was not pushed: pulled", session.id, id_tag)
            await self.on_session(session)
            if self.mirror.get(ModuleID.SESSIONS, party, session.id) is None:
                data = session.to_json()
                self.mirror.put(ModuleID.SESSIONS, party, session.id, data, data["last_updated"])

    async def stop(self, transaction_id: int) -> str:
        """STOP_SESSION for the CSMS's Session that is our transaction (Accepted once the CSMS accepts the
        command; the session ends with its CDR)."""
        found = self.mirror.session_of(transaction_id)
        if found is None:
            return REJECTED
        uid = self._command_uid("stop", str(transaction_id))
        waiting = self._results[uid] = asyncio.get_running_loop().create_future()
        try:
            response = await self.csms.stop_session(uid, found[1])
        except OcpiError as error:
            self._results.pop(uid, None)
            raise CommandFailed(f"STOP_SESSION: {error}") from None
        if response.result != CommandResponseType.ACCEPTED:
            self._results.pop(uid, None)
            return REJECTED
        self.spawn(self._stop_result(uid, waiting, transaction_id, float(response.timeout)))
        return ACCEPTED

    async def _stop_result(
        self, uid: str, waiting: asyncio.Future[CommandResult], transaction_id: int, timeout: float
    ) -> None:
        """The CommandResult of an accepted STOP_SESSION: logged (the session ends with its CDR; one that
        does not stop is the budget rule's and the CDR pull's to catch)."""
        timeout = min(timeout, self.settings.request_timeout_s * 10)
        try:
            result = await asyncio.wait_for(waiting, timeout)
        except asyncio.TimeoutError:
            log.warning("STOP_SESSION for transaction %d: no CommandResult within %gs", transaction_id, timeout)
            return
        finally:
            self._results.pop(uid, None)
        level = logging.INFO if result.result == CommandResultType.ACCEPTED else logging.WARNING
        log.log(level, "STOP_SESSION for transaction %d: %s", transaction_id, result.result.value)

    # ------------------------------------------------------------------------------ what the CSMS says

    async def on_command_result(self, command: CommandType, uid: str, result: CommandResult) -> None:
        waiting = self._results.get(uid)
        if waiting is not None and not waiting.done():
            waiting.set_result(result)
        else:
            log.info(
                "OCPI %s result %s for %s: nobody waits for it (late or unknown)",
                command.value,
                result.result.value,
                uid,
            )

    async def on_session(self, session: Session) -> None:
        party = Party(session.country_code, session.party_id)
        link, connector = self._where(session.location_id, session.evse_uid, session.connector_id, party)
        if link is None:
            return await super().on_session(session)
        transaction = self.mirror.transaction_of(party, session.id)
        if transaction is None and session.status in (SessionStatus.ACTIVE, SessionStatus.COMPLETED):
            start = self.sessions.start_transaction
            transaction, status = await self.sessions.handle(start, link, connector, session.cdr_token.uid, 0)
            self.mirror.link_transaction(party, session.id, transaction)
            if session.cdr_token.uid in self._sessions_due:
                self._sessions_due[session.cdr_token.uid].set()
            when = format_datetime(session.start_date_time)
            self._record("record_start", link.id, connector, transaction, session.cdr_token.uid, 0, when)
            log.info("%s: OCPI session %s is transaction %d (%s)", link.id, session.id, transaction, status)
        if transaction is not None and session.kwh > 0:
            stamp = session.last_updated.isoformat()
            values = [{"timestamp": stamp, "sampled_value": [{"value": str(wh(session.kwh)), "unit": "Wh"}]}]
            await self.sessions.handle(self.sessions.meter_values, link, connector, transaction, values)
        link.replies.send()

    def _stop(self, link: OcpiStationLink, transaction: int, cdr: CDR, signed: list) -> str:
        """The CDR's stop of ``transaction``, billed to its end (run on the store's thread)."""
        session = self.sessions.session_of_transaction(transaction)
        ended_at = billed_end(cdr.end_date_time, session.started_at if session else None, time.time())
        return self.sessions.stop_transaction(link, transaction, wh(cdr.total_energy), "Remote", signed, ended_at)

    async def on_cdr(self, cdr: CDR) -> None:
        party = Party(cdr.country_code, cdr.party_id)
        place = cdr.cdr_location
        link, _ = self._where(place.id, place.evse_uid, place.connector_id, party)
        transaction = self.mirror.transaction_of(party, cdr.session_id) if cdr.session_id else None
        if link is None or transaction is None:
            return await super().on_cdr(cdr)  # not a session of ours: recorded, not settled
        signed = transaction_data(cdr)
        result = await self.sessions.handle(self._stop, link, transaction, cdr, signed)
        link.replies.send()
        when = format_datetime(cdr.end_date_time)
        self._record(
            "record_stop", transaction, wh(cdr.total_energy), "Remote", when, signed_meter_data(signed), link.id
        )
        self.issued.end(cdr.cdr_token.uid)
        log.info("%s: CDR %s settles transaction %d (%s)", link.id, cdr.id, transaction, result)
        self._compare_cost(cdr, transaction)

    def _compare_cost(self, cdr: CDR, transaction: int) -> None:
        """Record a CDR whose total cost (incl. VAT) is not what the chain bills for its energy and time at
        the session's tariff: the chain's is billed; the difference is logged and shown in /health."""
        session = self.sessions.session_of_transaction(transaction)
        if session is None or self.decimals is None:
            return
        duration = int((cdr.end_date_time - cdr.start_date_time).total_seconds())
        chain = cost_so_far(session.tariff, wh(cdr.total_energy), duration)
        billed = cdr.total_cost.incl_vat if cdr.total_cost.incl_vat is not None else cdr.total_cost.excl_vat
        theirs = billed.scaleb(self.decimals)
        if theirs == chain:
            return
        difference = {"cdr": cdr.id, "cdr_total_cost": str(billed), "currency": cdr.currency, "chain_cost_units": chain}
        log.warning(
            "OCPI CDR %s costs %s %s; the chain bills %d units (the chain's is billed)",
            cdr.id,
            billed,
            cdr.currency,
            chain,
        )
        self.cost_differences = [*self.cost_differences[-19:], difference]

    def health(self) -> dict[str, Any]:
        """The bridge's part of /health: what waits, and CDR costs the chain does not bill."""
        return {
            "stations_linked": len(self.links),
            "commands_waiting": len(self._results),
            "cost_differences": self.cost_differences,
        }

    def _record(self, what: str, *args: Any) -> None:
        """A write to the transaction record (values it cannot hold are logged; the session goes on)."""
        if self.records is None:
            return
        try:
            getattr(self.records, what)(*args)
        except EVNetworkError as error:
            log.warning("OCPI transaction not recorded: %s", error)

    async def tokens(self) -> list[Token]:
        return self.issued.all()

    async def token(self, uid: str, token_type: TokenType) -> IssuedToken | None:
        return self.issued.get(uid, token_type)

    def _where(
        self, location_id: str, evse_uid: str, connector_id: str, party: Party
    ) -> tuple[OcpiStationLink | None, int]:
        """Our link for the station of that EVSE, and the connector's number on chain (1-based)."""
        station = self.mirror.station_of(party, location_id, evse_uid)
        link = None if station is None else self.links.get(station.charge_point_id)
        if link is None:
            return None, 0
        ids = [ci(c) for c in link.station.connector_ids]
        return link, ids.index(ci(connector_id)) + 1 if ci(connector_id) in ids else 1


def billed_end(end: datetime, started_at: float | None, now: float) -> int:
    """The end time a CDR's session is billed until (unix seconds): its ``end_date_time``, not before the session
    started here nor after now (a CSMS's clock may run ahead or behind ours)."""
    ended = end.timestamp()
    if started_at is not None:
        ended = max(ended, started_at)
    return int(min(ended, now))
