"""The CSMS's 2.2.1 interfaces as we call them, the eMSP: pull Locations, Tariffs, Sessions and CDRs
(all pages), send START_SESSION / STOP_SESSION. Every call uses token C and the routing headers to the
CSMS's CPO party; a 401 is recorded in the registration (``/health`` shows that our token was refused).

A pulled list keeps the objects that are valid and reports the others (2.2.1: "the client should at
least process the correct OCPI objects")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from core_client.ocpi.client import Answer, OcpiClient, parse
from core_client.ocpi.errors import OcpiError, OcpiUnauthorized
from core_client.ocpi.models import CDR, CommandResponse, Location, Session, StartSession, StopSession, Token
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import explain, format_datetime
from core_client.ocpi.models.enums import CommandType, InterfaceRole, ModuleID
from core_client.ocpi.registration import Registration, RegistrationStore
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.transport import VERSION, Party

M = TypeVar("M", bound=BaseModel)


@dataclass
class Pulled(Generic[M]):
    """The valid objects of a pulled list, and one line for each invalid one."""

    objects: list[M] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Csms:
    """The registered CSMS, called through an open :class:`OcpiClient`."""

    def __init__(self, client: OcpiClient, store: RegistrationStore, settings: OcpiSettings) -> None:
        self.client = client
        self.store = store
        self.settings = settings

    @property
    def registration(self) -> Registration:
        return self.store.require()

    def response_url(self, command: CommandType, uid: str) -> str:
        """Where the CSMS POSTs the CommandResult of our command ``uid``."""
        return self.settings.url(VERSION, "commands", command.value, uid)

    async def locations(self) -> Pulled[Location]:
        return await self._pull(ModuleID.LOCATIONS, Location, {})

    async def tariffs(self) -> Pulled[OcpiTariff]:
        return await self._pull(ModuleID.TARIFFS, OcpiTariff, {})

    async def sessions(self, since: datetime) -> Pulled[Session]:
        return await self._pull(ModuleID.SESSIONS, Session, {"date_from": format_datetime(since)})

    async def cdrs(self, since: datetime | None = None) -> Pulled[CDR]:
        """CDRs last updated at or after ``since`` (all without it): those that were not pushed to us."""
        return await self._pull(ModuleID.CDRS, CDR, {} if since is None else {"date_from": format_datetime(since)})

    async def start_session(
        self, uid: str, token: Token, location_id: str, evse_uid: str | None, connector_id: str | None = None
    ) -> CommandResponse:
        """START_SESSION for ``token`` at the location (EVSE, connector); the CommandResult will come to
        :meth:`response_url` (START_SESSION, ``uid``)."""
        body = StartSession(
            response_url=self.response_url(CommandType.START_SESSION, uid),
            token=token,
            location_id=location_id,
            evse_uid=evse_uid,
            connector_id=connector_id,
        )
        return await self._command(CommandType.START_SESSION, body)

    async def stop_session(self, uid: str, session_id: str) -> CommandResponse:
        body = StopSession(response_url=self.response_url(CommandType.STOP_SESSION, uid), session_id=session_id)
        return await self._command(CommandType.STOP_SESSION, body)

    async def _command(self, command: CommandType, body: StartSession | StopSession) -> CommandResponse:
        url = join(self.registration.endpoint(ModuleID.COMMANDS, InterfaceRole.RECEIVER), command.value)
        answer = await self._call("POST", url, body.to_json())
        return parse(CommandResponse, answer.data, f"POST {url}")

    async def _pull(self, module: ModuleID, model: type[M], params: dict[str, str]) -> Pulled[M]:
        registration = self.registration
        url = registration.endpoint(module, InterfaceRole.SENDER)
        pulled: Pulled[M] = Pulled()
        try:
            async for page in self.client.get_all(
                url, registration.their_token(), params=params, receiver=self._receiver(registration)
            ):
                for raw in page:
                    try:
                        pulled.objects.append(model.model_validate(raw))
                    except ValidationError as error:
                        name = raw.get("id", raw.get("uid", "?")) if isinstance(raw, dict) else "?"
                        pulled.problems.append(f"{model.__name__} {name}: {explain(error)}")
        except OcpiUnauthorized:
            self._refused(registration)
            raise
        return pulled

    async def _call(self, method: str, url: str, body: object) -> Answer:
        registration = self.registration
        try:
            return await self.client.request(
                method, url, registration.their_token(), body=body, receiver=self._receiver(registration)
            )
        except OcpiUnauthorized:
            self._refused(registration)
            raise

    def _receiver(self, registration: Registration) -> Party:
        parties = registration.cpo_parties()
        if not parties:
            raise OcpiError("the CSMS gave no CPO role in the credentials handshake")
        return parties[0]

    def _refused(self, registration: Registration) -> None:
        registration.refused = (
            f"the CSMS refused our token at {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC "
            "(revoked?): ask its operator, then `core-client ocpi update` or a new `register`"
        )
        self.store.save(registration)


def join(url: str, *segments: str) -> str:
    """``url`` and ``segments`` with one ``/`` between each (endpoint URLs may or may not end in ``/``)."""
    return "/".join([url.rstrip("/"), *segments])
