"""A simulated OCPP 1.6J charge point (the client side of the websocket), for tests, demo and load runs.

Usage::

    cp = await SimChargePoint.connect("ws://127.0.0.1:9000", "CP-0001", "secret", behaviour=Behaviour(time_accel=60))
    cp = await SimChargePoint.connect(..., reconnect=Reconnect())  # comes back after a lost connection
    tx = await cp.wait_for_transaction(1, timeout=30)   # after the central system's RemoteStartTransaction
    record = await cp.wait_for_stop(1, timeout=60)      # after RemoteStopTransaction, unplug, ...
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl as ssl_module
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import websockets
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, Reason, RegistrationStatus
from websockets.exceptions import ConnectionClosed

from simulator.commands import CentralSystemCommands
from simulator.link import Reconnect, ReconnectingLink
from simulator.meter import SigningMeter
from simulator.ocpp_adapter import OcppChargePoint
from simulator.session import TransactionFlow
from simulator.state import Behaviour, Connector, StopRecord, meter_value, utc_now

__all__ = ["Behaviour", "BootRejected", "Connector", "Reconnect", "SimChargePoint", "StopRecord"]

log = logging.getLogger("simulator")


class BootRejected(Exception):
    """The central system answered BootNotification with Rejected."""


class SimChargePoint(CentralSystemCommands, TransactionFlow, ReconnectingLink, OcppChargePoint):
    """An OCPP 1.6J charge point with ``connectors`` connectors and a simulated meter per connector."""

    def __init__(self, cp_id: str, connection: Any, connectors: int = 2, behaviour: Behaviour | None = None):
        super().__init__(cp_id, connection)
        self.behaviour = replace(behaviour) if behaviour else Behaviour()
        mode = self.behaviour.signing_meter
        self.meter = SigningMeter.for_charge_point(cp_id, mode) if mode else None
        start = self.behaviour.initial_meter_wh
        self.connectors = {n: Connector(n, float(start + n * 1000)) for n in range(connectors + 1)}
        self.configuration = {
            "HeartbeatInterval": "0",
            "MeterValueSampleInterval": f"{self.behaviour.meter_interval_s:g}",
            "AuthorizeRemoteTxRequests": str(self.behaviour.authorize_remote).lower(),
            "NumberOfConnectors": str(connectors),
            "SupportedFeatureProfiles": "Core,RemoteTrigger",
        }
        self.reply_latencies: list[float] = []
        self.boot_status: str | None = None
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._heartbeat: asyncio.Task | None = None
        self._pending_remote_start: int | None = None
        self._init_link(None, None)

    # Connection lifecycle

    @classmethod
    async def connect(
        cls,
        url_base: str,
        cp_id: str,
        password: str,
        connectors: int = 2,
        behaviour: Behaviour | None = None,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10,
        reconnect: Reconnect | None = None,
    ) -> SimChargePoint:
        """Open ``{url_base}/{cp_id}`` with HTTP Basic auth (security profile 1), boot and report status.

        Raises websockets' InvalidStatus if the central system refuses the handshake and
        BootRejected if it rejects the BootNotification. With ``reconnect``, a connection lost later
        is made again with that backoff, and unanswered transaction messages are sent again.
        """
        token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
        options: dict[str, Any] = {"ssl": ssl} if ssl is not None else {}

        def dial():
            return websockets.connect(
                f"{url_base.rstrip('/')}/{cp_id}",
                subprotocols=["ocpp1.6"],
                additional_headers={"Authorization": f"Basic {token}"},
                open_timeout=open_timeout,
                **options,
            )

        cp = cls(cp_id, await dial(), connectors, behaviour)
        cp._dial, cp.reconnect = dial, reconnect
        cp.spawn(cp._serve())
        try:
            await cp.boot()
        except BaseException:
            await cp.close()
            raise
        return cp

    async def boot(self) -> None:
        """BootNotification (retried while Pending), a StatusNotification per connector, heartbeats."""
        while True:
            response = await self._call(
                call.BootNotification(charge_point_model="SimCP", charge_point_vendor="EVNetwork")
            )
            if response is None:
                raise ConnectionError(f"{self.id}: no answer to BootNotification")
            self.boot_status = response.status
            if response.status == RegistrationStatus.accepted:
                break
            if response.status == RegistrationStatus.rejected:
                raise BootRejected(f"{self.id}: BootNotification rejected")
            await asyncio.sleep(response.interval or 10)
        interval = self.behaviour.heartbeat_s if self.behaviour.heartbeat_s is not None else response.interval
        self.configuration["HeartbeatInterval"] = f"{interval:g}"
        self._restart_heartbeat()
        for connector in self.connectors.values():
            await self._send_status(connector)
        self.online.set()

    async def _serve(self) -> None:
        """Read and route incoming messages until the connection ends; then reconnect, or stop everything."""
        try:
            await self.start()
        except ConnectionClosed as closed:
            log.info("%s: connection closed (%s)", self.id, closed)
        finally:
            self.online.clear()
            self.link_lost.set()
            if self.reconnecting:  # sessions go on charging; their messages wait in the queue
                if self._heartbeat is not None:
                    self._heartbeat.cancel()
                self.spawn(self._redial())
            else:
                self._shut_down()

    def _shut_down(self) -> None:
        self.closed.set()
        for task in [self._heartbeat, *(c.session for c in self.connectors.values())]:
            if task is not None:
                task.cancel()

    async def close(self, stop_reason: str | None = None) -> None:
        """Close the websocket cleanly; with ``stop_reason``, first stop running transactions."""
        if stop_reason is not None:
            await asyncio.gather(*(self.stop(n, stop_reason) for n in self.connectors if n))
        self._closing = True
        if self.link_lost.is_set() and not self.closed.is_set():  # between two connections
            self._shut_down()
        await self.connection.close()
        await self.closed.wait()
        for task in list(self._tasks):
            task.cancel()

    async def drop(self) -> None:
        """Lose the connection abruptly: abort the TCP transport, no websocket close handshake.
        Returns once the charge point noticed (and, with ``reconnect``, started to reconnect)."""
        self.connection.transport.abort()
        await (self.link_lost if self.reconnecting else self.closed).wait()

    # Public API for tests, the demo and benchmarks

    def connector(self, n: int) -> Connector:
        """Connector ``n`` (0 is the main controller)."""
        return self.connectors[n]

    async def start_local(self, connector: int, id_tag: str) -> int | None:
        """A driver starts at the charge point: Authorize, then StartTransaction.

        Returns the transaction id, or None if the connector is busy or the id tag is refused.
        """
        c = self.connector(connector)
        if connector == 0 or c.busy or not c.available:
            return None
        c.busy = True
        return await self._begin(c, id_tag, authorize=True)

    async def stop(self, connector: int, reason: str = Reason.local) -> StopRecord | None:
        """Stop the running transaction (StopTransaction, Finishing, Available); None if there is none."""
        c = self.connector(connector)
        task = c.session
        if task is None or task.done():
            return None
        c.stop_reason = c.stop_reason or reason
        c.stop_requested.set()
        await asyncio.wait({task})
        return None if task.cancelled() or task.exception() else task.result()

    async def unplug(self, connector: int) -> StopRecord | None:
        """The car is unplugged: stop with reason EVDisconnected."""
        return await self.stop(connector, Reason.ev_disconnected)

    async def wait_for_transaction(self, connector: int, timeout: float = 10) -> int:
        """The id of the next transaction started on ``connector`` (each one returned once, in order)."""
        c = self.connector(connector)
        await c.wait(lambda: len(c.transactions) > c.tx_cursor, timeout)
        c.tx_cursor += 1
        return c.transactions[c.tx_cursor - 1]

    async def wait_for_stop(self, connector: int, timeout: float = 10) -> StopRecord:
        """The next StopTransaction sent for ``connector`` (after its answer, a CALLERROR or a timeout;
        each one returned once, in order)."""
        c = self.connector(connector)
        await c.wait(lambda: len(c.stops) > c.stop_cursor, timeout)
        c.stop_cursor += 1
        return c.stops[c.stop_cursor - 1]

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coroutine`` as a task that is kept referenced and whose failure is logged."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.id, exc_info=task.exception())

    # Sending CALLs

    async def _send_status(self, c: Connector, status: str | None = None) -> None:
        if status is not None:
            c.status = status
        await self._call(
            call.StatusNotification(
                connector_id=c.connector_id,
                error_code=ChargePointErrorCode.no_error,
                status=c.status,
                timestamp=utc_now(),
            )
        )

    async def _send_meter_values(self, c: Connector, context: str) -> None:
        power = self.behaviour.power_w if c.charging else 0.0
        sample = meter_value(c.meter_wh, context, power)
        await self._call(
            call.MeterValues(connector_id=c.connector_id, meter_value=[sample], transaction_id=c.transaction_id),
            queued=c.transaction_id is not None,
        )

    def _restart_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        interval = float(self.configuration["HeartbeatInterval"])
        self._heartbeat = self.spawn(self._heartbeats(interval)) if interval > 0 else None

    async def _heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._call(call.Heartbeat())
