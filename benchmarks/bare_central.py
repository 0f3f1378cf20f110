"""A minimal OCPP 1.6J central system on the bare ``ocpp`` package, with no chain behind it.

It is the baseline of the load benchmark (what OCPP over websockets costs without the Core Client's
work) and the peer of the simulator's tests. It accepts any charge point that sends HTTP Basic
credentials naming itself (any password), answers every charge-point CALL at once, and records what
it received. ``remote_start`` and ``remote_stop`` drive sessions on a connected charge point.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, ClassVar

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

log = logging.getLogger("benchmarks.bare_central")
ACCEPTED = {"status": AuthorizationStatus.accepted}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BareChargePoint(ChargePoint):
    """The central system's side of one charge point's connection."""

    def __init__(self, cp_id: str, connection: ServerConnection, central: BareCentral):
        super().__init__(cp_id, connection)
        self.central = central
        self.received: list[tuple[str, dict[str, Any]]] = []  # (action, snake_case payload)

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        if self.central.record:
            self.received.append((action, payload))

    @on(Action.boot_notification)
    def on_boot(self, **payload: Any):
        self._record(Action.boot_notification, payload)
        return call_result.BootNotification(current_time=_now(), interval=300, status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self, **payload: Any):
        self._record(Action.heartbeat, payload)
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, **payload: Any):
        self._record(Action.status_notification, payload)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, **payload: Any):
        self._record(Action.authorize, payload)
        return call_result.Authorize(id_tag_info=ACCEPTED)

    @on(Action.start_transaction)
    def on_start_transaction(self, **payload: Any):
        self._record(Action.start_transaction, payload)
        return call_result.StartTransaction(transaction_id=next(self.central.transaction_ids), id_tag_info=ACCEPTED)

    @on(Action.meter_values)
    def on_meter_values(self, **payload: Any):
        self._record(Action.meter_values, payload)
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop_transaction(self, **payload: Any):
        self._record(Action.stop_transaction, payload)
        return call_result.StopTransaction(id_tag_info=ACCEPTED)

    def of(self, action: str) -> list[dict[str, Any]]:
        """The payloads received for ``action``, in order."""
        return [payload for name, payload in self.received if name == action]


@dataclass
class BareCentral:
    """The server, its connected charge points and a process-wide transaction id counter."""

    record: bool = True
    charge_point_class: ClassVar[type[BareChargePoint]] = BareChargePoint  # subclasses may swap it
    server: Server | None = None
    charge_points: dict[str, BareChargePoint] = field(default_factory=dict)
    closed_abruptly: dict[str, bool] = field(default_factory=dict)  # cp id -> no close frame received
    transaction_ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return next(iter(self.server.sockets)).getsockname()[1]

    async def remote_start(self, cp_id: str, connector_id: int, id_tag: str) -> str | None:
        """Send RemoteStartTransaction; returns the charge point's status (None after a CALLERROR)."""
        response = await self.charge_points[cp_id].call(
            call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector_id)
        )
        return None if response is None else response.status

    async def remote_stop(self, cp_id: str, transaction_id: int) -> str | None:
        """Send RemoteStopTransaction; returns the charge point's status (None after a CALLERROR)."""
        response = await self.charge_points[cp_id].call(call.RemoteStopTransaction(transaction_id=transaction_id))
        return None if response is None else response.status

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _check_credentials(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the handshake unless HTTP Basic names the charge point of the URL path."""
        cp_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            user = base64.b64decode(token, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = None
        if scheme.lower() != "basic" or user != cp_id:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "HTTP Basic credentials required\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        cp_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
        cp = self.charge_point_class(cp_id, connection, self)
        self.charge_points[cp_id] = cp
        try:
            await cp.start()
        except ConnectionClosed as closed:
            self.closed_abruptly[cp_id] = closed.rcvd is None
        finally:
            if self.charge_points.get(cp_id) is cp:
                del self.charge_points[cp_id]


async def serve_bare(host: str = "127.0.0.1", port: int = 9000, record: bool = True) -> BareCentral:
    """Start the bare central system (port 0 picks a free port, see ``.port``); close with ``.close()``."""
    central = BareCentral(record=record)
    central.server = await websockets.serve(
        central._handle, host, port, subprotocols=["ocpp1.6"], process_request=central._check_credentials
    )
    return central


async def _main(host: str = "127.0.0.1", port: int = 9000) -> None:
    central = await serve_bare(host, port, record=False)
    log.info("bare central system on ws://%s:%s", host, central.port)
    await asyncio.Future()


if __name__ == "__main__":  # python -m benchmarks.bare_central [PORT]
    import sys

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    asyncio.run(_main(port=int(sys.argv[1]) if len(sys.argv) > 1 else 9000))
