"""The narrow interface between our OCPI receivers and whoever acts on what the CSMS sends (the session
bridge): :class:`OcpiInbox`. The receivers validate every request against 2.2.1 first and hand over
parsed objects only; they know nothing of sessions, deposits or the chain.

A method may refuse what it is given by raising :class:`Refusal` (an OCPI status code and a message):
the CSMS gets that answer and nothing is stored (a refused CDR can be POSTed again). Anything else an
inbox raises is answered as 3000 (a server error), also without storing. Each call may be repeated
with the same object (a CSMS retries, a Session is PUT again): an inbox must be idempotent (a CDR id
settles once).

:func:`authorize` is the real-time authorization rule of our Tokens module (2.2.1: ALLOWED only for
the token of a live session at that session's location)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from core_client.ocpi.errors import OcpiError
from core_client.ocpi.models import CDR, AuthorizationInfo, CommandResult, Location, LocationReferences, Session, Token
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import AllowedType, CommandType, Status, TokenType
from core_client.ocpi.transport import Party, StatusCode


class Refusal(OcpiError):
    """An inbox's refusal: answered with ``status_code`` (2xxx/3xxx) and this message."""

    def __init__(self, message: str, status_code: int = StatusCode.CLIENT_ERROR) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class IssuedToken:
    """A Token we gave the CSMS for one session (START_SESSION), where that session runs, and whether it
    still runs."""

    token: Token
    location_id: str
    evse_uid: str | None
    live: bool


class OcpiInbox(Protocol):
    """What the CSMS tells us, validated; and the tokens we issued."""

    async def on_location(self, location: Location) -> None:
        """A Location as we now hold it (after a PUT or PATCH of it, or of one of its EVSEs/Connectors); the
        mirror still holds the one before, until this returns."""

    async def on_evse_status(self, party: Party, location_id: str, evse_uid: str, status: Status) -> None:
        """An EVSE's status changed (a PUT or PATCH said so): the station's public availability."""

    async def on_tariff(self, tariff: OcpiTariff) -> None:
        """A Tariff was PUT (new or replaced)."""

    async def on_tariff_deleted(self, party: Party, tariff_id: str) -> None:
        """A Tariff was DELETEd."""

    async def on_session(self, session: Session) -> None:
        """A Session as we now hold it: after its PUT, or after a PATCH merged into it (kwh, status, ...)."""

    async def on_cdr(self, cdr: CDR) -> None:
        """A new CDR (POSTed, or pulled): settle its session once. Raise Refusal to refuse it."""

    async def on_command_result(self, command: CommandType, uid: str, result: CommandResult) -> None:
        """The CommandResult the CSMS POSTed to our response_url for command ``uid``; Refusal if unknown."""

    async def tokens(self) -> list[Token]:
        """Our tokens the CSMS may know (its paginated GET), oldest first."""

    async def token(self, uid: str, token_type: TokenType) -> IssuedToken | None:
        """The token with this uid and type (uid compared case-insensitively), if we issued it."""


def authorize(issued: IssuedToken, where: LocationReferences) -> AuthorizationInfo:
    """Real-time authorization of an issued token at ``where``: ALLOWED only while its session is live
    and only at that session's location (and EVSE, when the request names EVSEs); EXPIRED once the
    session ended or the token is no longer valid; NOT_ALLOWED elsewhere."""
    if not issued.live or not issued.token.valid:
        return AuthorizationInfo(allowed=AllowedType.EXPIRED, token=issued.token)
    if ci(where.location_id) != ci(issued.location_id):
        return AuthorizationInfo(allowed=AllowedType.NOT_ALLOWED, token=issued.token)
    evses = [uid for uid in where.evse_uids or [] if issued.evse_uid is None or ci(uid) == ci(issued.evse_uid)]
    if where.evse_uids and not evses:
        return AuthorizationInfo(allowed=AllowedType.NOT_ALLOWED, token=issued.token)
    location = LocationReferences(location_id=where.location_id, evse_uids=evses or None)
    return AuthorizationInfo(allowed=AllowedType.ALLOWED, token=issued.token, location=location)


@dataclass
class RecordingInbox:
    """An inbox that keeps what it is told, in memory (the daemon's inbox until the session bridge plugs
    in; and tests). Issued tokens are added with :meth:`issue`."""

    locations: list[Location] = field(default_factory=list)
    statuses: list[tuple[Party, str, str, Status]] = field(default_factory=list)
    tariffs: list[OcpiTariff] = field(default_factory=list)
    deleted_tariffs: list[tuple[Party, str]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    cdrs: list[CDR] = field(default_factory=list)
    results: list[tuple[CommandType, str, CommandResult]] = field(default_factory=list)
    issued: list[IssuedToken] = field(default_factory=list)

    def issue(self, issued: IssuedToken) -> None:
        self.issued.append(issued)

    async def on_location(self, location: Location) -> None:
        self.locations.append(location)

    async def on_evse_status(self, party: Party, location_id: str, evse_uid: str, status: Status) -> None:
        self.statuses.append((party, location_id, evse_uid, status))

    async def on_tariff(self, tariff: OcpiTariff) -> None:
        self.tariffs.append(tariff)

    async def on_tariff_deleted(self, party: Party, tariff_id: str) -> None:
        self.deleted_tariffs.append((party, tariff_id))

    async def on_session(self, session: Session) -> None:
        self.sessions.append(session)

    async def on_cdr(self, cdr: CDR) -> None:
        self.cdrs.append(cdr)

    async def on_command_result(self, command: CommandType, uid: str, result: CommandResult) -> None:
        self.results.append((command, uid, result))

    async def tokens(self) -> list[Token]:
        return sorted((i.token for i in self.issued), key=lambda t: t.last_updated)

    async def token(self, uid: str, token_type: TokenType) -> IssuedToken | None:
        return next((i for i in self.issued if ci(i.token.uid) == ci(uid) and i.token.type == token_type), None)
