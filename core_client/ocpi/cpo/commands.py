"""Our Commands module as the CPO (RECEIVER): START_SESSION / STOP_SESSION from a registered eMSP.

A session for an eMSP's token is paid through that eMSP's payment mandate (issue 20: it settles per
session on chain, :mod:`.roaming`); an eMSP without a mandate with us has its START_SESSION refused
(CommandResponse REJECTED, the reason in ``message``); STOP_SESSION of no session of its: UNKNOWN_SESSION.
RESERVE_NOW, CANCEL_RESERVATION, UNLOCK_CONNECTOR: NOT_SUPPORTED. Bodies are validated against 2.2.1."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from core_client.ocpi.cpo.catalog import OurStation, evse_uid, location_id
from core_client.ocpi.cpo.handling import caller, registered_only
from core_client.ocpi.cpo.modules import Catalog
from core_client.ocpi.cpo.roaming import Roaming
from core_client.ocpi.handling import Call, Reply, not_found
from core_client.ocpi.models import CommandResponse, DisplayText, StartSession, StopSession
from core_client.ocpi.models.enums import CommandResponseType, CommandType

RESULT_TIMEOUT_S = 30


def response(result: CommandResponseType, message: str | None = None) -> Reply:
    text = None if message is None else [DisplayText(language="en", text=message[:512])]
    return Reply(CommandResponse(result=result, timeout=RESULT_TIMEOUT_S, message=text).to_json())


class CommandReceiver:
    """POST {commands}/{command}; the sessions themselves are ``roaming``'s (None: this Core Client starts
    none, e.g. without a session service)."""

    def __init__(self, catalog: Catalog, roaming: Roaming | None = None) -> None:
        self.catalog = catalog
        self.roaming = roaming

    def routes(self, wrap: Any, prefix: str) -> list[Route]:
        return [Route(f"{prefix}/commands/{{command}}", wrap(registered_only(self.command)), methods=["POST"])]

    async def command(self, call: Call) -> Reply:
        try:
            command = CommandType(call.segment("command"))
        except ValueError:
            raise not_found(f"command {call.segment('command')}") from None
        if command is CommandType.START_SESSION:
            return self.start(call, call.model(StartSession))
        if command is CommandType.STOP_SESSION:
            return self.stop(call, call.model(StopSession))
        return response(CommandResponseType.NOT_SUPPORTED, f"{command.value} is not supported")

    def start(self, call: Call, start: StartSession) -> Reply:
        peer = caller(call).peer
        found = self.evse(start)
        if isinstance(found, str):
            return response(CommandResponseType.REJECTED, found)
        if peer.mandate_id is None:
            return response(
                CommandResponseType.REJECTED,
                f"eMSP {peer.name} has no payment mandate with this operator: its customers' sessions are paid "
                "per session on chain through one (docs/operations.md, roaming eMSPs)",
            )
        if self.roaming is None:
            return response(CommandResponseType.REJECTED, "this Core Client starts no sessions")
        why = self.roaming.start(peer, start, *found)
        return response(CommandResponseType.ACCEPTED if why is None else CommandResponseType.REJECTED, why)

    def stop(self, call: Call, stop: StopSession) -> Reply:
        peer = caller(call).peer
        session = None if self.roaming is None else self.roaming.session(peer.name, stop.session_id)
        if self.roaming is None or session is None:
            return response(CommandResponseType.UNKNOWN_SESSION, f"no session {stop.session_id} of yours here")
        why = self.roaming.stop(peer, session, str(stop.response_url))
        return response(CommandResponseType.ACCEPTED if why is None else CommandResponseType.REJECTED, why)

    def evse(self, start: StartSession) -> tuple[OurStation, int] | str:
        """The station and connector START_SESSION names, or why none."""
        where = start.location_id + ("" if start.evse_uid is None else f"/{start.evse_uid}")
        unknown = f"unknown location or EVSE {where}"
        station = next(
            (s for s in self.catalog.published() if location_id(s.station_id).upper() == start.location_id.upper()),
            None,
        )
        if station is None or start.connector_id not in (None, "1"):
            return unknown
        connectors = sorted(station.connectors)
        if start.evse_uid is None:
            return (station, connectors[0]) if len(connectors) == 1 else f"name the EVSE of location {where}"
        wanted = start.evse_uid.upper()
        return next(
            ((station, n) for n in connectors if evse_uid(station.charge_point_id, n).upper() == wanted), unknown
        )
