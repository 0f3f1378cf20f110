"""Our Commands module as the CPO (RECEIVER): START_SESSION / STOP_SESSION from a registered eMSP.

A session for an eMSP's token is paid through that eMSP's payment mandate (issue 20: it settles per
session on chain); an eMSP without a mandate with us has its START_SESSION refused (CommandResponse
REJECTED, the reason in ``message``), and it has no session of ours to stop (UNKNOWN_SESSION).
RESERVE_NOW, CANCEL_RESERVATION, UNLOCK_CONNECTOR: NOT_SUPPORTED. Bodies are validated against 2.2.1."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from core_client.ocpi.cpo.handling import caller, registered_only
from core_client.ocpi.cpo.modules import Catalog
from core_client.ocpi.handling import Call, Reply, not_found
from core_client.ocpi.models import CommandResponse, DisplayText, StartSession, StopSession
from core_client.ocpi.models.enums import CommandResponseType, CommandType

RESULT_TIMEOUT_S = 30


def response(result: CommandResponseType, message: str | None = None) -> Reply:
    text = None if message is None else [DisplayText(language="en", text=message[:512])]
    return Reply(CommandResponse(result=result, timeout=RESULT_TIMEOUT_S, message=text).to_json())


class CommandReceiver:
    """POST {commands}/{command}."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

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
            stop = call.model(StopSession)
            return response(CommandResponseType.UNKNOWN_SESSION, f"no session {stop.session_id} of yours here")
        return response(CommandResponseType.NOT_SUPPORTED, f"{command.value} is not supported")

    def start(self, call: Call, start: StartSession) -> Reply:
        peer = caller(call).peer
        location = next((o for o in self.catalog.locations() if o.id.upper() == start.location_id.upper()), None)
        if location is None or (start.evse_uid is not None and location.evse(start.evse_uid) is None):
            where = start.location_id + ("" if start.evse_uid is None else f"/{start.evse_uid}")
            return response(CommandResponseType.REJECTED, f"unknown location or EVSE {where}")
        if peer.mandate_id is None:
            return response(
                CommandResponseType.REJECTED,
                f"eMSP {peer.name} has no payment mandate with this operator: its customers' sessions are paid "
                "per session on chain through one (docs/operations.md, roaming eMSPs)",
            )
        return response(CommandResponseType.REJECTED, "sessions under an eMSP mandate are not started yet")
