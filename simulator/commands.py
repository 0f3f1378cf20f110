"""Handlers of the CALLs a central system sends to the simulated charge point (one ``@on`` per action).

``CentralSystemCommands`` is a mixin of :class:`simulator.charge_point.SimChargePoint`: the ``@on``
handlers answer at once, the ``@after`` handlers do the work (sending CALLs) in tracked tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call, call_result, datatypes
from ocpp.v16.enums import (
    Action,
    AvailabilityStatus,
    AvailabilityType,
    ConfigurationStatus,
    DataTransferStatus,
    MessageTrigger,
    Reason,
    RemoteStartStopStatus,
    ResetStatus,
    ResetType,
    TriggerMessageStatus,
    UnlockStatus,
)
from ocpp.v16.enums import ChargePointStatus as Status

from simulator.state import Connector

READONLY_KEYS = frozenset({"NumberOfConnectors", "SupportedFeatureProfiles"})
TRIGGERABLE = frozenset(
    {
        MessageTrigger.boot_notification,
        MessageTrigger.heartbeat,
        MessageTrigger.status_notification,
        MessageTrigger.meter_values,
    }
)


class CentralSystemCommands:
    """RemoteStart/Stop, Reset, ChangeAvailability, TriggerMessage, UnlockConnector,
    Get/ChangeConfiguration and DataTransfer, as a charge point answers them."""

    # RemoteStartTransaction / RemoteStopTransaction

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any):
        connector = self._free_connector(connector_id)
        if connector is None or not self.behaviour.accept_remote_start:
            return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)
        connector.busy = True  # reserved now, so a second RemoteStart is rejected
        self._pending_remote_start = connector.connector_id
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @after(Action.remote_start_transaction)
    def after_remote_start(self, id_tag: str, **_: Any) -> None:
        connector_id, self._pending_remote_start = self._pending_remote_start, None
        if connector_id is not None:
            self.spawn(self._begin(self.connector(connector_id), id_tag, self.behaviour.authorize_remote))

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any):
        running = self._connector_of(transaction_id) is not None
        status = RemoteStartStopStatus.accepted if running else RemoteStartStopStatus.rejected
        return call_result.RemoteStopTransaction(status=status)

    @after(Action.remote_stop_transaction)
    def after_remote_stop(self, transaction_id: int, **_: Any) -> None:
        connector = self._connector_of(transaction_id)
        if connector is not None:
            self.spawn(self.stop(connector.connector_id, Reason.remote))

    # Reset, availability, unlock

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any):
        return call_result.Reset(status=ResetStatus.accepted)

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        reason = Reason.hard_reset if type == ResetType.hard else Reason.soft_reset
        self.spawn(self._reset(reason))

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any):
        if connector_id not in self.connectors:
            return call_result.ChangeAvailability(status=AvailabilityStatus.rejected)
        targets = self._targets(connector_id)
        if type == AvailabilityType.inoperative and any(c.busy for c in targets):
            for connector in targets:
                connector.unavailable_scheduled = connector.busy
            return call_result.ChangeAvailability(status=AvailabilityStatus.scheduled)
        return call_result.ChangeAvailability(status=AvailabilityStatus.accepted)

    @after(Action.change_availability)
    def after_change_availability(self, connector_id: int, type: str, **_: Any) -> None:
        if connector_id in self.connectors:
            operative = type == AvailabilityType.operative
            self.spawn(self._set_availability(self._targets(connector_id), operative))

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **_: Any):
        if connector_id == 0 or connector_id not in self.connectors:
            return call_result.UnlockConnector(status=UnlockStatus.not_supported)
        return call_result.UnlockConnector(status=UnlockStatus.unlocked)

    @after(Action.unlock_connector)
    def after_unlock_connector(self, connector_id: int, **_: Any) -> None:
        if connector_id in self.connectors and self.connector(connector_id).charging:
            self.spawn(self.stop(connector_id, Reason.unlock_command))

    # TriggerMessage

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any):
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status=TriggerMessageStatus.not_implemented)
        if connector_id is not None and connector_id not in self.connectors:
            return call_result.TriggerMessage(status=TriggerMessageStatus.rejected)
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any):
        if requested_message in TRIGGERABLE and (connector_id is None or connector_id in self.connectors):
            self.spawn(self._triggered(requested_message, connector_id))

    # Configuration and data transfer

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any):
        wanted = key if key else list(self.configuration)
        known = [
            datatypes.KeyValue(key=k, readonly=k in READONLY_KEYS, value=self.configuration[k])
            for k in wanted
            if k in self.configuration
        ]
        unknown = [k for k in wanted if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any):
        if key not in self.configuration:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.not_supported)
        if key in READONLY_KEYS or not self._apply_configuration(key, value):
            return call_result.ChangeConfiguration(status=ConfigurationStatus.rejected)
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any):
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    # Helpers of the handlers

    def _free_connector(self, connector_id: int | None) -> Connector | None:
        candidates = [connector_id] if connector_id is not None else [n for n in self.connectors if n]
        for n in candidates:
            c = self.connectors.get(n)
            if n and c is not None and c.available and not c.busy:
                return c
        return None

    def _connector_of(self, transaction_id: int) -> Connector | None:
        return next((c for c in self.connectors.values() if c.transaction_id == transaction_id and c.charging), None)

    def _targets(self, connector_id: int) -> list[Connector]:
        return list(self.connectors.values()) if connector_id == 0 else [self.connector(connector_id)]

    async def _set_availability(self, targets: Iterable[Connector], operative: bool) -> None:
        for c in targets:
            if c.busy:
                c.unavailable_scheduled = not operative
                continue
            c.available = operative
            await self._send_status(c, Status.available if operative else Status.unavailable)

    async def _reset(self, reason: str) -> None:
        await asyncio.gather(*(self.stop(n, reason) for n in self.connectors if n))
        await self.boot()

    async def _triggered(self, message: str, connector_id: int | None) -> None:
        if message == MessageTrigger.boot_notification:
            await self._call(call.BootNotification(charge_point_model="SimCP", charge_point_vendor="EVNetwork"))
        elif message == MessageTrigger.heartbeat:
            await self._call(call.Heartbeat())
        else:
            targets = self._targets(connector_id) if connector_id is not None else list(self.connectors.values())
            for c in targets:
                if message == MessageTrigger.status_notification:
                    await self._send_status(c)
                elif c.connector_id:
                    await self._send_meter_values(c, "Trigger")

    def _apply_configuration(self, key: str, value: str) -> bool:
        """Apply a ChangeConfiguration; False if the value is invalid."""
        try:
            if key in ("HeartbeatInterval", "MeterValueSampleInterval") and float(value) < 0:
                return False
            if key == "AuthorizeRemoteTxRequests" and value.lower() not in ("true", "false"):
                return False
        except ValueError:
            return False
        self.configuration[key] = value
        if key == "HeartbeatInterval":
            self._restart_heartbeat()
        elif key == "MeterValueSampleInterval" and float(value) > 0:
            self.behaviour.meter_interval_s = float(value)
        elif key == "AuthorizeRemoteTxRequests":
            self.behaviour.authorize_remote = value.lower() == "true"
        return True
