"""The OCPP 1.6J websocket server of the daemon (the control endpoint: :mod:`core_client.web.control`).

OCPP: ``ws(s)://<listen_host>:<listen_port>/<cp_id>``, subprotocol ``ocpp1.6``, HTTP Basic auth
(security profile 1: user = charge point id, password from the config; TLS = profile 2). Checked
during the handshake: unknown id or wrong password -> 401, no ``ocpp1.6`` subprotocol -> 400.
One :class:`StationLink` per connection; a new connection of the same charge point replaces the old.

Everything a peer sent goes into log lines through :func:`core_client.ocpp.wire.wire_text`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import ssl
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core_client.config import ConfigError, Settings
from core_client.ocpp.link import Recorder, StationLink
from core_client.ocpp.wire import wire_text
from core_client.sessions.service import SessionService

if TYPE_CHECKING:
    from core_client.proxy.relay import Proxy

log = logging.getLogger("core_client.server")
SUBPROTOCOL = "ocpp1.6"
MAX_HEADERS = 64
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
            compression="deflate" if self.settings.ocpp_compression else None,
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
            relay.local.decided_transaction_id if relay is not None else None,
        )
        registration = await self.service.resolve(cp_id, CONNECT_LOOKUP_S)
        await self.service.handle(self.service.claim, cp_id)  # several instances: the charge point is this one's now
        old = await self.service.handle(self.service.attach, link, registration)
        if old is not None:
            log.warning("%s: new connection replaces the old one", wire_text(cp_id))
            asyncio.get_running_loop().create_task(old.close("replaced by a new connection"))
        log.info("%s: connected from %s", wire_text(cp_id), connection.remote_address)
        try:
            await (link.start() if relay is None else relay.run(link))
        except ConnectionClosed:
            pass
        finally:
            await self.service.handle(self.service.detach, link)  # may write what it reported

    async def close(self) -> None:
        """Stop accepting and close every charge point connection."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
