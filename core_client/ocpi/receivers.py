"""Our 2.2.1 module interfaces as the eMSP: what the CSMS pushes (Locations, Tariffs, Sessions, CDRs,
CommandResults) and what it asks of us (our Tokens, real-time authorization).

Each handler validates the request against 2.2.1 (URL owner = the object's owner and a party of the
CSMS, URL id = the object's id, PATCH with ``last_updated``), hands the parsed object to the
:class:`~core_client.ocpi.inbox.OcpiInbox` first and stores it only when the inbox took it: a refusal
leaves nothing behind. Writes are serialized (read, merge, hand over, store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.routing import Route

from core_client.ocpi.handling import Call, Fault, Handler, Reply, invalid, not_found, page_reply
from core_client.ocpi.inbox import OcpiInbox, authorize
from core_client.ocpi.mirror import Mirror
from core_client.ocpi.models import CDR, EVSE, CommandResult, Connector, Location, LocationReferences, Session
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import OcpiModel, ci
from core_client.ocpi.models.enums import CommandType, ModuleID, TokenType
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.transport import VERSION, Header, Party, StatusCode

M = TypeVar("M", bound=OcpiModel)


class Receivers:
    """The module handlers: validated objects to ``inbox``, then into ``mirror``."""

    def __init__(self, settings: OcpiSettings, mirror: Mirror, inbox: OcpiInbox) -> None:
        self.settings = settings
        self.mirror = mirror
        self.inbox = inbox
        self.writing = asyncio.Lock()

    def routes(self, wrap: Callable[[Handler], Any], prefix: str) -> list[Route]:
        """The module routes under ``prefix`` (``{public path}/2.2.1``), each handler wrapped by ``wrap``."""
        owner = "{country_code}/{party_id}"
        location = f"{prefix}/locations/{owner}/{{location_id}}"
        parts = ["GET", "PUT", "PATCH"]
        return [
            Route(location, wrap(self.location), methods=parts),
            Route(f"{location}/{{evse_uid}}", wrap(self.location), methods=parts),
            Route(f"{location}/{{evse_uid}}/{{connector_id}}", wrap(self.location), methods=parts),
            Route(f"{prefix}/tariffs/{owner}/{{tariff_id}}", wrap(self.tariff), methods=["GET", "PUT", "DELETE"]),
            Route(f"{prefix}/sessions/{owner}/{{session_id}}", wrap(self.session), methods=parts),
            Route(f"{prefix}/cdrs", wrap(self.post_cdr), methods=["POST"]),
            Route(f"{prefix}/cdrs/{owner}/{{cdr_id}}", wrap(self.get_cdr), methods=["GET"]),
            Route(f"{prefix}/commands/{{command}}/{{uid}}", wrap(self.command_result), methods=["POST"]),
            Route(f"{prefix}/tokens", wrap(self.tokens), methods=["GET"]),
            Route(f"{prefix}/tokens/{{token_uid}}/authorize", wrap(self.authorize), methods=["POST"]),
        ]

    # ------------------------------------------------------------------------------ locations

    async def location(self, call: Call) -> Reply:
        party = call.party()
        location_id = call.segment("location_id")
        evse_uid = call.request.path_params.get("evse_uid")
        connector_id = call.request.path_params.get("connector_id")
        if call.method == "GET":
            return Reply(self._location_part(party, location_id, evse_uid, connector_id))
        async with self.writing:
            stored = self.mirror.get(ModuleID.LOCATIONS, party, location_id)
            before = None if stored is None else Location.model_validate(stored)
            if evse_uid is None:
                what = f"Location {party}/{location_id}"
                location = new_part(call, Location, before, "id", location_id, what, StatusCode.UNKNOWN_LOCATION)
                same_owner(location.country_code, location.party_id, party)
            elif before is None:
                raise not_found(f"Location {party}/{location_id}", StatusCode.UNKNOWN_LOCATION)
            else:
                location = self._location_with_part(call, before, evse_uid, connector_id)
            await self.inbox.on_location(location)
            for evse in location.evses or []:
                old = before.evse(evse.uid) if before else None
                if old is None or old.status != evse.status:
                    await self.inbox.on_evse_status(party, location.id, evse.uid, evse.status)
            data = location.to_json()
            created = self.mirror.put(ModuleID.LOCATIONS, party, location_id, data, data["last_updated"])
        return Reply(http_status=201 if created and call.method == "PUT" else 200)

    def _location_part(self, party: Party, location_id: str, evse_uid: str | None, connector_id: str | None) -> Any:
        stored = self.mirror.get(ModuleID.LOCATIONS, party, location_id)
        if stored is None:
            raise not_found(f"Location {party}/{location_id}", StatusCode.UNKNOWN_LOCATION)
        if evse_uid is None:
            return stored
        evse = next((e for e in stored.get("evses") or [] if ci(e["uid"]) == ci(evse_uid)), None)
        if evse is None:
            raise not_found(f"EVSE {evse_uid} of Location {party}/{location_id}")
        if connector_id is None:
            return evse
        connector = next((c for c in evse["connectors"] if ci(c["id"]) == ci(connector_id)), None)
        if connector is None:
            raise not_found(f"Connector {connector_id} of EVSE {evse_uid}")
        return connector

    def _location_with_part(self, call: Call, location: Location, evse_uid: str, connector_id: str | None) -> Location:
        """``location`` with the EVSE or Connector of the URL replaced (PUT) or patched (PATCH); the parents'
        ``last_updated`` follows the part's, as the text requires."""
        evses = list(location.evses or [])
        index = next((i for i, e in enumerate(evses) if ci(e.uid) == ci(evse_uid)), None)
        if connector_id is None:
            existing = None if index is None else evses[index]
            evse = new_part(call, EVSE, existing, "uid", evse_uid, f"EVSE {evse_uid} of Location {location.id}")
        else:
            if index is None:
                raise not_found(f"EVSE {evse_uid} of Location {location.id}")
            evse = evses[index]
            connectors = list(evse.connectors)
            at = next((i for i, c in enumerate(connectors) if ci(c.id) == ci(connector_id)), None)
            existing = None if at is None else connectors[at]
            connector = new_part(
                call, Connector, existing, "id", connector_id, f"Connector {connector_id} of EVSE {evse_uid}"
            )
            put_at(connectors, at, connector)
            evse = evse.model_copy(update={"connectors": connectors, "last_updated": connector.last_updated})
        put_at(evses, index, evse)
        return location.model_copy(update={"evses": evses, "last_updated": evse.last_updated})

    # ------------------------------------------------------------------------------ tariffs

    async def tariff(self, call: Call) -> Reply:
        party, tariff_id = call.party(), call.segment("tariff_id")
        method = call.method
        if method == "GET":
            return Reply(self._stored(ModuleID.TARIFFS, party, tariff_id, "Tariff"))
        async with self.writing:
            if method == "DELETE":
                self._stored(ModuleID.TARIFFS, party, tariff_id, "Tariff")
                await self.inbox.on_tariff_deleted(party, tariff_id)
                self.mirror.delete(ModuleID.TARIFFS, party, tariff_id)
                return Reply()
            tariff = call.model(OcpiTariff, "Tariff")
            same_owner(tariff.country_code, tariff.party_id, party)
            same_id("id", tariff.id, tariff_id)
            await self.inbox.on_tariff(tariff)
            data = tariff.to_json()
            created = self.mirror.put(ModuleID.TARIFFS, party, tariff_id, data, data["last_updated"])
        return Reply(http_status=201 if created else 200)

    # ------------------------------------------------------------------------------ sessions

    async def session(self, call: Call) -> Reply:
        party, session_id = call.party(), call.segment("session_id")
        method = call.method
        if method == "GET":
            return Reply(self._stored(ModuleID.SESSIONS, party, session_id, "Session"))
        async with self.writing:
            stored = self.mirror.get(ModuleID.SESSIONS, party, session_id)
            if method == "PUT":
                session = call.model(Session)
            elif stored is None:
                raise not_found(f"Session {party}/{session_id} (PUT it first)")
            else:
                merged = patched(stored, call.body, {"id": session_id})
                if call.body.get("charging_periods"):  # a PATCH adds ChargingPeriods
                    merged["charging_periods"] = (stored.get("charging_periods") or []) + call.body["charging_periods"]
                else:
                    merged["charging_periods"] = stored.get("charging_periods")
                session = Session.model_validate(merged)
            same_owner(session.country_code, session.party_id, party)
            same_id("id", session.id, session_id)
            await self.inbox.on_session(session)
            data = session.to_json()
            created = self.mirror.put(ModuleID.SESSIONS, party, session_id, data, data["last_updated"])
        return Reply(http_status=201 if created and method == "PUT" else 200)

    # ------------------------------------------------------------------------------ CDRs

    async def post_cdr(self, call: Call) -> Reply:
        cdr = call.model(CDR)
        party = Party(cdr.country_code, cdr.party_id)
        if not call.registration.is_cpo(party.country_code, party.party_id):
            raise invalid(f"CDR of party {party}, which is not one of the CSMS's")
        if not await self.take_cdr(cdr):
            raise Fault(
                200, StatusCode.CLIENT_ERROR, f"CDR {party}/{cdr.id} was received before: a CDR is never replaced"
            )
        where = self.settings.url(VERSION, "cdrs", party.country_code, party.party_id, cdr.id)
        return Reply(http_status=201, headers={Header.LOCATION.value: where})

    async def take_cdr(self, cdr: CDR) -> bool:
        """Hand a new CDR (POSTed or pulled) to the inbox, then keep it; False, and nothing done, when we
        hold one with its id already. An inbox's Refusal propagates (nothing kept)."""
        party = Party(cdr.country_code, cdr.party_id)
        async with self.writing:
            if self.mirror.get(ModuleID.CDRS, party, cdr.id) is not None:
                return False
            await self.inbox.on_cdr(cdr)
            data = cdr.to_json()
            self.mirror.add(ModuleID.CDRS, party, cdr.id, data, data["last_updated"])
        return True

    async def get_cdr(self, call: Call) -> Reply:
        party = call.party()
        return Reply(self._stored(ModuleID.CDRS, party, call.segment("cdr_id"), "CDR"))

    # ------------------------------------------------------------------------------ commands

    async def command_result(self, call: Call) -> Reply:
        try:
            command = CommandType(call.segment("command"))
        except ValueError:
            raise not_found(f"command {call.segment('command')}") from None
        result = call.model(CommandResult)
        await self.inbox.on_command_result(command, call.segment("uid"), result)
        return Reply()

    # ------------------------------------------------------------------------------ tokens

    async def tokens(self, call: Call) -> Reply:
        return page_reply(call, await self.inbox.tokens(), self.settings, "tokens")

    async def authorize(self, call: Call) -> Reply:
        uid = call.segment("token_uid")
        try:
            token_type = TokenType(call.request.query_params.get("type", TokenType.RFID.value))
        except ValueError:
            raise invalid(f"type={call.request.query_params['type']!r} is not a TokenType") from None
        issued = await self.inbox.token(uid, token_type)
        if issued is None:
            raise Fault(404, StatusCode.UNKNOWN_TOKEN, f"unknown token {uid} ({token_type.value})")
        if call.body is None:
            raise Fault(200, StatusCode.NOT_ENOUGH_INFORMATION, "LocationReferences are needed to authorize a token")
        return Reply(authorize(issued, call.model(LocationReferences)).to_json())

    # ------------------------------------------------------------------------------ shared

    def _stored(self, module: ModuleID, party: Party, object_id: str, what: str) -> dict[str, Any]:
        stored = self.mirror.get(module, party, object_id)
        if stored is None:
            raise not_found(f"{what} {party}/{object_id}")
        return stored


def patched(stored: dict[str, Any], patch: Any, identity: dict[str, str]) -> dict[str, Any]:
    """``stored`` with the PATCH's properties replacing its own; 2001 without ``last_updated`` or when the
    PATCH changes the object's identity."""
    if not isinstance(patch, dict):
        raise invalid("a PATCH body is a JSON object of the properties to change")
    if "last_updated" not in patch:
        raise invalid("a PATCH must contain last_updated")
    for name, value in identity.items():
        if name in patch and (not isinstance(patch[name], str) or ci(patch[name]) != ci(value)):
            raise invalid(f"{name} {patch[name]!r} differs from the URL's {value!r}")
    return {**stored, **patch}


def new_part(
    call: Call,
    model: type[M],
    existing: M | None,
    key: str,
    in_url: str,
    what: str,
    unknown: int = StatusCode.INVALID_PARAMETERS,
) -> M:
    """The object a PUT sends, or ``existing`` with a PATCH merged in (404 when there is none); its id
    (``key``) must be the URL's."""
    if call.method == "PUT":
        part = call.model(model)
    elif existing is None:
        raise not_found(f"{what} (PUT it first)", unknown)
    else:
        part = model.model_validate(patched(existing.to_json(), call.body, {key: in_url}))
    same_id(key, getattr(part, key), in_url)
    return part


def put_at(items: list[Any], index: int | None, item: Any) -> None:
    """Replace ``items[index]`` with ``item``, or append it when ``index`` is None."""
    if index is None:
        items.append(item)
    else:
        items[index] = item


def same_owner(country_code: str, party_id: str, party: Party) -> None:
    if Party(country_code, party_id).key() != party.key():
        raise invalid(f"the object belongs to {country_code}/{party_id}, the URL names {party}")


def same_id(name: str, value: str, in_url: str) -> None:
    if ci(value) != ci(in_url):
        raise invalid(f"{name} {value!r} differs from the URL's {in_url!r}")
