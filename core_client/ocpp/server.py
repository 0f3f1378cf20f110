"""The network side of the daemon: the OCPP 1.6J websocket server and the control HTTP endpoint.

OCPP: ``ws(s)://<listen_host>:<listen_port>/<cp_id>``, subprotocol ``ocpp1.6``, HTTP Basic auth
(security profile 1: user = charge point id, password from the config; TLS = profile 2). Checked
during the handshake: unknown id or wrong password -> 401, no ``ocpp1.6`` subprotocol -> 400.
One :class:`StationLink` per connection; a new connection of the same charge point replaces the old.

Control (operators and ``core-client`` commands), on ``control_host:control_port``:
``GET /health`` -> JSON status; ``POST /command`` with a form body ``cp=ID&action=reset|
change_availability|trigger_message&...`` and ``Authorization: Bearer <control token>`` -> JSON
answer of the charge point; ``action=held`` (the held sessions and their evidence) and
``action=settle_held|reject_held&session=0x...`` (the operator's decision on one, see
:mod:`core_client.sessions.held`). Every request must name the endpoint by IP address or ``localhost`` in
``Host`` (no DNS rebinding) and carry no foreign ``Origin`` (no cross-site browser request);
/health needs no token (read-only, for monitoring probes), state changes need the token and POST.

Everything a peer sent goes into log lines through :func:`core_client.ocpp.wire.wire_text`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ocpp.v16.enums import AvailabilityType, MessageTrigger, ResetType
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core_client.config import ConfigError, Settings, control_token
from core_client.ocpp.link import CommandFailed, Recorder, StationLink
from core_client.ocpp.wire import wire_text
from core_client.sessions import held
from core_client.sessions.decisions import INT32
from core_client.sessions.held_desk import HeldDesk
from core_client.sessions.service import SessionService

if TYPE_CHECKING:
    from core_client.proxy.relay import Proxy

log = logging.getLogger("core_client.server")
SUBPROTOCOL = "ocpp1.6"
MAX_HEADERS = 64
SESSION = re.compile(r"0x[0-9a-fA-F]{64}")
HELD_ACTIONS = ("held", "settle_held", "reject_held")  # the operator's decisions on held sessions
CONNECT_LOOKUP_S = 0.5  # a connecting charge point's registration lookup: then Pending, and the lookup goes on
CONNECTOR = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() takes "²", which int() refuses


def charge_point_id(path: str) -> str:
    """The charge point id: the last segment of the request path (``/ocpp/CP-1`` -> ``CP-1``)."""
    return unquote(urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1])


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class Throttle:
    """At most one log line every ``interval`` seconds for a kind of event that can come in floods
    (refused requests, failed handshakes, failed accepts); the next line counts the ones held back."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock, self.held_back, self.last = interval, clock, 0, float("-inf")

    def admit(self) -> str | None:
        """None: hold this one back; else what to append to its line ("" or "; N more in the last Xs")."""
        now = self.clock()
        if now - self.last < self.interval:
            self.held_back += 1
            return None
        more = f"; {self.held_back} more in the last {now - self.last:.0f}s" if self.held_back else ""
        self.last, self.held_back = now, 0
        return more


class HandshakeFailures(logging.Filter):
    """Turns the ``websockets`` traceback of each failed opening handshake (half-open sockets, port
    scanners) into one line, at most one every ``interval`` seconds, counting the ones it held back."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.throttle = Throttle(interval)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "opening handshake failed":
            return True
        more = self.throttle.admit()
        if more is None:
            return False
        error = record.exc_info[1] if record.exc_info else None
        cause = error.__cause__ or error if error is not None else None
        why = f"{type(cause).__name__}: {cause}" if cause is not None else "unknown"
        record.msg, record.args = "opening handshake failed (%s)%s", (wire_text(why), more)
        record.exc_info = record.exc_text = None
        return True


class AcceptFailures:
    """The event loop's exception handler: a failed ``accept()`` (out of file descriptors) is one line
    without traceback, at most one every ``interval`` seconds with the count held back (asyncio wrote a
    traceback for each); everything else goes to the loop's default handler."""

    def __init__(self, interval: float = 10.0) -> None:
        self.throttle = Throttle(interval)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "accept" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        more = self.throttle.admit()
        if more is not None:
            error = context.get("exception")
            log.error("cannot accept connections: %s%s", getattr(error, "strerror", None) or error, more)


class OcppServer:
    """Accepts charge points and runs one StationLink per connection."""

    def __init__(
        self, settings: Settings, service: SessionService, records: Recorder | None = None, proxy: Proxy | None = None
    ) -> None:
        self.settings, self.service, self.records, self.proxy = settings, service, records, proxy
        self.server: Server | None = None

    async def start(self) -> None:
        context = None
        if self.settings.tls_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"tls_cert {self.settings.tls_cert} / tls_key {self.settings.tls_key}: cannot load "
                    f"({getattr(error, 'strerror', None) or error})"
                ) from None
        ws_log = logging.getLogger("core_client.websockets")
        for old in [f for f in ws_log.filters if isinstance(f, HandshakeFailures)]:
            ws_log.removeFilter(old)
        ws_log.addFilter(HandshakeFailures())
        self.server = await serve(
            self.handle,
            self.settings.listen_host,
            self.settings.listen_port,
            subprotocols=[SUBPROTOCOL],
            process_request=self.authenticate,
            ssl=context,
            logger=ws_log,
        )
        scheme = "wss" if context else "ws"
        log.info("OCPP 1.6J central system on %s://%s:%d/<charge point id>", scheme, *self.address)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    def authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the handshake of unknown or unauthenticated charge points, and non-OCPP clients."""
        cp_id = charge_point_id(request.path)
        offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
        if SUBPROTOCOL not in [p.strip() for p in offered.split(",")]:
            log.warning(
                "%s: refused: no %s subprotocol offered (%s)", wire_text(cp_id), SUBPROTOCOL, wire_text(offered)
            )
            return connection.respond(HTTPStatus.BAD_REQUEST, f"subprotocol {SUBPROTOCOL} required\n")
        credentials = basic_credentials(request.headers.get("Authorization"))
        if credentials is None or credentials[0] != cp_id or not self.settings.check_password(cp_id, credentials[1]):
            why = "no credentials" if credentials is None else "unknown charge point or wrong password"
            log.warning("%s: refused at the handshake (%s)", wire_text(cp_id), why)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "unknown charge point or wrong password\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="EV Network Core Client"'
            return response
        return None

    async def handle(self, connection: ServerConnection) -> None:
        cp_id = charge_point_id(connection.request.path)
        relay = None
        if self.proxy is not None:  # proxy mode: a relay to the CSMS between the websocket and the link
            credentials = basic_credentials(connection.request.headers.get("Authorization"))
            relay = self.proxy.relay(cp_id, connection, credentials and credentials[1])
        link = StationLink(
            cp_id,
            connection if relay is None else relay.local,
            self.service,
            self.settings.ocpp_response_timeout_s,
            self.records,
        )
        await self.service.resolve(link, CONNECT_LOOKUP_S)
        old = self.service.attach(link)
        if old is not None:
            log.warning("%s: new connection replaces the old one", wire_text(cp_id))
            asyncio.get_running_loop().create_task(old._connection.close(1000, "replaced by a new connection"))
        log.info("%s: connected from %s", wire_text(cp_id), connection.remote_address)
        try:
            await (link.start() if relay is None else relay.run(link))
        except ConnectionClosed:
            pass
        finally:
            self.service.detach(link)

    async def close(self) -> None:
        """Stop accepting and close every charge point connection."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class ControlServer:
    """A tiny HTTP/1.1 endpoint: health and operator commands (JSON in, JSON out)."""

    def __init__(
        self, settings: Settings, service: SessionService, health: Callable[[], dict], held: HeldDesk | None = None
    ) -> None:
        self.settings, self.service, self.health = settings, service, health
        self.held = held if held is not None else HeldDesk(service)
        self.server: asyncio.Server | None = None
        self.token = ""
        self._refusals = Throttle()  # a flood of refused requests is one line every 10 s, with its count

    async def start(self) -> None:
        self.token = control_token(self.settings, create=True) or ""
        self.server = await asyncio.start_server(self._serve, self.settings.control_host, self.settings.control_port)
        log.info("control endpoint on http://%s:%d (/health, /command)", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._respond(reader), timeout=60)
        except (asyncio.TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            status, body = HTTPStatus.BAD_REQUEST, {"error": "bad request"}
        data = json.dumps(body, indent=1).encode() + b"\n"
        head = f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        try:
            writer.write(head.encode() + data)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except ConnectionError:
            pass

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, Any]:
        method, target, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := (await reader.readline()).decode("latin-1").strip()) != "":
            if len(headers) == MAX_HEADERS:
                raise ValueError("too many headers")
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        refused = self._refuse(headers, url.path)
        if refused is not None:
            more = self._refusals.admit()
            if more is not None:
                what = (wire_text(method), wire_text(url.path), refused[1]["error"], more)
                log.warning("control: refused %s %s (%s)%s", *what)
            return refused
        if url.path == "/health" and method == "GET":
            return HTTPStatus.OK, self.health()
        if url.path == "/command" and method == "POST":
            length = min(int(headers.get("content-length", "0")), 65536)
            return await self.command(dict(parse_qsl((await reader.readexactly(length)).decode())))
        if url.path in ("/health", "/command"):
            allowed = "GET" if url.path == "/health" else "POST"
            return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{url.path} takes {allowed}, not {wire_text(method)}"}
        return HTTPStatus.NOT_FOUND, {"error": f"no {wire_text(url.path)}; try GET /health or POST /command"}

    def _refuse(self, headers: dict[str, str], path: str) -> tuple[HTTPStatus, dict] | None:
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
            return self.decide_held(action, params.get("session", ""))
        link = self.service.links.get(cp_id)
        if link is None:
            return HTTPStatus.NOT_FOUND, {"error": f"charge point {wire_text(cp_id)!r} is not connected"}
        actions: dict[str, Callable[[], Awaitable[str]]] = {
            "reset": lambda: link.reset(params.get("type", "Soft")),
            "change_availability": lambda: link.change_availability(
                int(params.get("connector", 0)), params.get("type", "Operative")
            ),
            "trigger_message": lambda: link.trigger_message(
                params.get("message", "StatusNotification"),
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
        decision on one (``session``: 0x and 64 hex digits), applied by the session service."""
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
