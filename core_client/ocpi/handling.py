"""How each of our OCPI endpoints handles a request: authentication with our token B, the JSON body,
the OCPI envelope, the status codes of refusals, the message ids and the routing headers.

A handler is ``async (Call) -> Reply`` and refuses by raising :class:`Fault` (or a pydantic
ValidationError: 2001, an inbox's :class:`~core_client.ocpi.inbox.Refusal`: its status code). Wrong
token: HTTP 401 with the envelope; a body that is not JSON: HTTP 400; anything unexpected: HTTP 500
with status 3000 (logged, never a traceback to the peer). Responses echo X-Request-ID and
X-Correlation-ID (new ones when the request had none) and, for functional modules, carry the
OCPI-from/to routing headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from core_client.ocpi.errors import OcpiError
from core_client.ocpi.inbox import Refusal
from core_client.ocpi.models.base import explain
from core_client.ocpi.registration import Registration, RegistrationStore
from core_client.ocpi.settings import PartySettings
from core_client.ocpi.transport import (
    VERSION,
    Header,
    Party,
    StatusCode,
    dumps,
    envelope,
    loads,
    new_id,
    page_request,
    paginate,
    presented_tokens,
)

log = logging.getLogger(__name__)


class Fault(Exception):
    """A refusal of the request: HTTP status, OCPI status code, message."""

    def __init__(self, http_status: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code


def not_found(what: str, status_code: int = StatusCode.INVALID_PARAMETERS) -> Fault:
    return Fault(404, status_code, f"{what} is not known here")


def invalid(message: str) -> Fault:
    return Fault(200, StatusCode.INVALID_PARAMETERS, message)


@dataclass
class Reply:
    """A handler's answer: ``data`` in the envelope (left out when None)."""

    data: Any = None
    http_status: int = 200
    status_code: int = StatusCode.SUCCESS
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One authenticated request, as a handler sees it."""

    request: Request
    registration: Registration
    body: Any  # the parsed JSON body (numbers as Decimal), None without one

    @property
    def method(self) -> str:
        return self.request.method

    def segment(self, name: str) -> str:
        return self.request.path_params[name]

    def party(self) -> Party:
        """The owner named in the URL ({country_code}/{party_id}); 404 unless it is one of the CSMS's."""
        party = Party(self.segment("country_code"), self.segment("party_id"))
        if not self.registration.is_cpo(party.country_code, party.party_id):
            raise not_found(f"party {party}")
        return party

    def model(self, model: type, what: str | None = None) -> Any:
        """The body as ``model``; a ValidationError propagates (answered 2001)."""
        if self.body is None:
            raise invalid(f"a {what or model.__name__} object is required in the body")
        return model.model_validate(self.body)


Handler = Callable[[Call], Awaitable[Reply]]


def page_reply(call: Call, items: list[Any], settings: PartySettings, path: str) -> Reply:
    """One page of ``items`` (objects with ``last_updated``, oldest first) as a paginated GET of our
    ``path`` under /2.2.1 asks (offset, limit, date_from, date_to), with X-Total-Count, X-Limit and Link."""
    try:
        request = page_request(dict(call.request.query_params))
    except ValueError as error:
        raise invalid(str(error)) from None
    selected = [item for item in items if request.matches(item.last_updated)]
    query = call.request.url.query
    url = settings.url(VERSION, path) + (f"?{query}" if query else "")
    page = paginate(selected, request, url, settings.page_limit)
    return Reply([item.to_json() for item in page.items], headers=page.headers)


class Handling:
    """Wraps handlers into Starlette endpoints for the registration in ``store``."""

    def __init__(self, settings: PartySettings, store: RegistrationStore) -> None:
        self.settings = settings
        self.store = store

    def endpoint(self, handler: Handler, *, functional: bool = True) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind authentication, body parsing and the OCPI envelope."""

        async def serve(request: Request) -> Response:
            try:
                registration = self._authenticate(request)
                reply = await handler(Call(request, registration, await _body(request)))
            except Fault as fault:
                reply = Reply(None, fault.http_status, fault.status_code, str(fault))
            except ValidationError as error:
                reply = Reply(None, 200, StatusCode.INVALID_PARAMETERS, explain(error))
            except Refusal as refusal:
                reply = Reply(None, 200, refusal.status_code, str(refusal))
            except OcpiError as error:  # e.g. the CSMS's API unusable during its credentials PUT
                reply = Reply(None, 200, StatusCode.UNABLE_TO_USE_CLIENT_API, str(error))
            except Exception as error:  # a bug of ours or of an inbox: the peer gets 3000, the log the type
                log.error(
                    "OCPI %s %s failed: %s", request.method, request.url.path, type(error).__name__, exc_info=True
                )
                reply = Reply(None, 500, StatusCode.SERVER_ERROR, "internal error")
            return self.respond(request, reply, functional=functional)

        return serve

    def _authenticate(self, request: Request) -> Registration:
        registration = self.store.load()
        presented = presented_tokens(request.headers.get(Header.AUTHORIZATION.value))
        if registration is None or not any(registration.accepts(token) for token in presented):
            raise Fault(401, StatusCode.CLIENT_ERROR, "missing or unknown credentials token (Authorization: Token)")
        return registration

    def respond(self, request: Request, reply: Reply, *, functional: bool) -> Response:
        headers = {
            Header.REQUEST_ID.value: request.headers.get(Header.REQUEST_ID.value) or new_id(),
            Header.CORRELATION_ID.value: request.headers.get(Header.CORRELATION_ID.value) or new_id(),
            **reply.headers,
        }
        if functional:
            headers |= self._routing(request)
        body = dumps(envelope(reply.data, reply.status_code, reply.message))
        return Response(body, reply.http_status, headers, media_type="application/json")

    def _routing(self, request: Request) -> dict[str, str]:
        """The response's OCPI-from (us) and OCPI-to (the requesting party, else the CSMS's first CPO)."""
        to_country = request.headers.get(Header.FROM_COUNTRY_CODE.value)
        to_party = request.headers.get(Header.FROM_PARTY_ID.value)
        if not (to_country and to_party):
            counterpart = self._counterpart(request)
            if counterpart is None:
                return {}
            to_country, to_party = counterpart.country_code, counterpart.party_id
        us = self.settings.party
        return {
            Header.FROM_COUNTRY_CODE.value: us.country_code,
            Header.FROM_PARTY_ID.value: us.party_id,
            Header.TO_COUNTRY_CODE.value: to_country,
            Header.TO_PARTY_ID.value: to_party,
        }

    def _counterpart(self, request: Request) -> Party | None:
        """Whom a response goes to when the request did not say: the CSMS's first CPO party."""
        registration = self.store.load()
        parties = registration.cpo_parties() if registration else []
        return parties[0] if parties else None

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no route, method not allowed) in the OCPI envelope."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: f"no OCPI resource at {request.url.path}", 405: f"{request.method} is not allowed here"}
        reply = Reply(None, status, StatusCode.CLIENT_ERROR, message.get(status, "request refused"))
        return self.respond(request, reply, functional=False)


async def _body(request: Request) -> Any:
    """The JSON body, or None without one; HTTP 400 when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Fault(400, StatusCode.CLIENT_ERROR, "the body is not valid JSON") from None


class NormalizePath:
    """Treat ``a//b`` as ``a/b`` and ignore a trailing ``/``: peers join endpoint URLs differently
    (the text writes ``{tokens_endpoint_url}{token_uid}/authorize``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = "/" + "/".join(part for part in scope["path"].split("/") if part)
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
