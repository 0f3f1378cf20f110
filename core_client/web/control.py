"""The control endpoint: health and operator commands, for operators and ``core-client`` commands.

On ``control_host:control_port`` (Starlette, served by the daemon like the other front ends):
``GET /health`` -> JSON status; ``POST /command`` with a form body ``cp=ID&action=reset|
change_availability|trigger_message&...`` and ``Authorization: Bearer <control token>`` -> JSON
answer of the charge point. Every request must name the endpoint by IP address or ``localhost`` in
``Host`` (no DNS rebinding) and carry no foreign ``Origin`` (no cross-site browser request);
/health needs no token (read-only, for monitoring probes), state changes need the token and POST.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from ocpp.v16.enums import AvailabilityType, MessageTrigger, ResetType
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core_client.config import Settings, control_token
from core_client.ocpp.server import CONNECTOR, Throttle
from core_client.ocpp.wire import wire_text
from core_client.sessions import held
from core_client.sessions.decisions import INT32
from core_client.sessions.held_desk import HeldDesk
from core_client.sessions.registry import CommandFailed
from core_client.sessions.service import SessionService
from ev_network.web.server import HttpServer

log = logging.getLogger("core_client.server")
MAX_BODY = 65536  # bytes of a command's form that are read
ALLOWED = {"/health": "GET", "/command": "POST"}
SESSION = re.compile(r"0x[0-9a-fA-F]{64}")
HELD_ACTIONS = ("held", "settle_held", "reject_held")  # the operator's decisions on held sessions


def answer(status: HTTPStatus, body: Any) -> Response:
    """A JSON answer, as the endpoint has always written it (indented, one newline at the end)."""
    return Response(json.dumps(body, indent=1) + "\n", status.value, media_type="application/json")


class ControlServer:
    """Health and operator commands over HTTP (JSON out)."""

    def __init__(
        self,
        settings: Settings,
        service: SessionService,
        health: Callable[[], Awaitable[dict]],
        held: HeldDesk | None = None,
    ) -> None:
        self.settings, self.service, self.health = settings, service, health
        self.held = held if held is not None else HeldDesk(service)
        self.server: HttpServer | None = None
        self.token = ""
        self._refusals = Throttle()  # a flood of refused requests is one line every 10 s, with its count

    async def start(self) -> None:
        self.token = control_token(self.settings, create=True) or ""
        self.server = HttpServer(self.app(), self.settings.control_host, self.settings.control_port)
        await self.server.start()
        log.info("control endpoint on http://%s:%d (/health, /command)", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return self.server.address

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def app(self) -> Starlette:
        async def health(_: Request) -> Response:
            return answer(HTTPStatus.OK, await self.health())

        async def command(request: Request) -> Response:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
            try:
                params = dict(parse_qsl(body[:MAX_BODY].decode()))
            except ValueError:
                return answer(HTTPStatus.BAD_REQUEST, {"error": "bad request"})
            return answer(*await self.command(params))

        async def not_served(request: Request, error: Exception) -> Response:
            path, method = request.url.path, wire_text(request.method)
            if isinstance(error, HTTPException) and error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
                return answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{path} takes {ALLOWED[path]}, not {method}"})
            return answer(HTTPStatus.NOT_FOUND, {"error": f"no {wire_text(path)}; try GET /health or POST /command"})

        app = Starlette(
            routes=[Route("/health", health, methods=["GET"]), Route("/command", command, methods=["POST"])],
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._guard)],
            exception_handlers={
                HTTPStatus.NOT_FOUND.value: not_served,
                HTTPStatus.METHOD_NOT_ALLOWED.value: not_served,
            },
        )
        app.router.redirect_slashes = False  # /health/ is not /health
        return app

    async def _guard(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Every request passes :meth:`_refuse` before it is routed."""
        refused = self._refuse(request.headers, request.url.path)
        if refused is not None:
            more = self._refusals.admit()
            if more is not None:
                what = (wire_text(request.method), wire_text(request.url.path), refused[1]["error"], more)
                log.warning("control: refused %s %s (%s)%s", *what)
            return answer(*refused)
        return await call_next(request)

    def _refuse(self, headers: Any, path: str) -> tuple[HTTPStatus, dict] | None:
        """Why a request is refused (DNS rebinding, a cross-site browser request, no token), or None."""
        host = headers.get("host", "")
        if not _local_host(host, self.address[1], self.settings.control_host):
            return HTTPStatus.FORBIDDEN, {"error": f"Host {wire_text(host)} is not this endpoint's address"}
        origin = headers.get("origin")
        if (origin is not None and origin != f"http://{host}") or headers.get("sec-fetch-site", "none") not in (
            "none",
            "same-origin",
        ):
            return HTTPStatus.FORBIDDEN, {"error": "cross-origin requests are refused"}
        if path == "/command":
            given = headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
                return HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong control token (Authorization: Bearer)"}
        return None

    async def command(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        """Send an operator command to a connected charge point, or decide a held session."""
        cp_id, action = params.get("cp", ""), params.get("action", "")
        if action in HELD_ACTIONS:
            return await self.service.handle(self.decide_held, action, params.get("session", ""))
        link = self.service.links.get(cp_id)
        if link is None:
            return HTTPStatus.NOT_FOUND, {"error": f"charge point {wire_text(cp_id)!r} is not connected"}
        actions: dict[str, Callable[[], Awaitable[str]]] = {
            "reset": lambda: link.reset(params.get("type", ResetType.soft)),
            "change_availability": lambda: link.change_availability(
                int(params.get("connector", 0)), params.get("type", AvailabilityType.operative)
            ),
            "trigger_message": lambda: link.trigger_message(
                params.get("message", MessageTrigger.status_notification),
                int(params["connector"]) if params.get("connector") else None,
            ),
        }
        if action not in actions:
            return HTTPStatus.BAD_REQUEST, {"error": f"action must be one of {sorted(actions)}"}
        problem = _check_command(action, params)
        if problem:
            return HTTPStatus.BAD_REQUEST, {"error": problem}
        try:
            status = await actions[action]()
        except ValueError as error:
            return HTTPStatus.BAD_REQUEST, {"error": str(error)}
        except CommandFailed as error:
            return HTTPStatus.BAD_GATEWAY, {"error": str(error)}
        log.info("%s: operator command %s -> %s", wire_text(cp_id), action, wire_text(status))
        return HTTPStatus.OK, {"cp": cp_id, "action": action, "status": str(status)}

    def decide_held(self, action: str, session: str) -> tuple[HTTPStatus, Any]:
        """``held``: the held sessions with their evidence; ``settle_held`` / ``reject_held``: the operator's
        decision on one (``session``: 0x and 64 hex digits), applied by the session service (run it on the
        store's thread: :meth:`SessionService.handle`)."""
        if action == "held":
            return HTTPStatus.OK, {"held": self.held.sessions()}
        if not SESSION.fullmatch(session):
            return HTTPStatus.BAD_REQUEST, {"error": "session must be a session id: 0x and 64 hex digits"}
        try:
            return HTTPStatus.OK, self.held.decide(int(session, 16), settle=action == "settle_held")
        except held.Refused as error:
            log.warning("control: %s refused: %s", action, error)
            return HTTPStatus.CONFLICT, {"error": str(error)}


def _check_command(action: str, params: dict[str, str]) -> str | None:
    """What is wrong with a command's parameters, or None."""
    allowed = {
        "reset": ("type", [t.value for t in ResetType]),
        "change_availability": ("type", [t.value for t in AvailabilityType]),
        "trigger_message": ("message", [t.value for t in MessageTrigger]),
    }
    name, values = allowed[action]
    if name in params and params[name] not in values:
        return f"{name} must be one of {values}"
    connector = params.get("connector")
    if connector is not None and connector != "" and not (CONNECTOR.fullmatch(connector) and int(connector) < INT32):
        return f"connector must be a number from 0 to {INT32 - 1} in digits 0-9 (0: the whole charge point)"
    return None


def _local_host(host: str, port: int, control_host: str) -> bool:
    """Whether a ``Host`` header names this endpoint: an IP address, ``localhost`` or the configured
    ``control_host``, with the bound port. A DNS name that merely resolves here (rebinding) is refused."""
    name, sep, given_port = host.rpartition(":")
    if not sep or given_port != str(port):
        return False
    name = name.removeprefix("[").removesuffix("]")
    if name in ("localhost", control_host):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
