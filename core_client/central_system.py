"""One charge point's OCPP 1.6J connection, central-system side: one short handler per action.

Handlers answer at once and hand the work to the session service (:mod:`core_client.service`);
they never wait for the chain. Frames are parsed and validated by :mod:`core_client.protocol`, so
bad input gets the CALLERROR OCPP 1.6 names and the connection stays up. Methods for the calls the
central system starts (RemoteStart/Stop, Reset, ChangeAvailability, TriggerMessage) raise
:class:`CommandFailed` when the charge point answers with a CALLERROR, times out or is gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.exceptions import ValidationError as OCPPValidationError
from ocpp.messages import Call
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result, datatypes
from ocpp.v16.enums import Action, DataTransferStatus
from websockets.exceptions import ConnectionClosed

from core_client.protocol import FrameError, check_action, parse_frame, utc_now, validate_call

if TYPE_CHECKING:
    from core_client.service import SessionService

log = logging.getLogger("core_client.ocpp")
wire_log = logging.getLogger("core_client.ocpp.wire")


class CommandFailed(Exception):
    """A central-system call got no usable answer (CALLERROR, timeout, connection lost)."""


class StationLink(ChargePoint):
    """The central system's side of one connected charge point."""

    def __init__(self, cp_id: str, connection: Any, service: SessionService, response_timeout: float = 20) -> None:
        super().__init__(cp_id, connection, response_timeout=response_timeout, logger=wire_log)
        self.service = service
        self.station_id: int | None = None
        self.connectors = 0
        self.boot_accepted = False
        self.lookup_failed = False
        self._handled = {action for action, hooks in self.route_map.items() if "_on_action" in hooks}

    @property
    def online(self) -> bool:
        """Booted and registered on chain for this operator: sessions may be started here."""
        return self.station_id is not None and self.boot_accepted

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Route one frame; errors get 1.6's CALLERROR instead of being dropped or crashing the link."""
        try:
            msg = parse_frame(raw_msg)
            if isinstance(msg, Call):
                check_action(msg, self._handled)
                validate_call(msg)
        except FrameError as error:
            log.warning("%s: %s (frame %.200r)", self.id, error, raw_msg)
            if error.reply:
                await self._send(error.call_error())
            return
        if not isinstance(msg, Call):
            self._response_queue.put_nowait(msg)
            return
        try:
            await self._handle_call(msg)
        except OCPPError as error:
            await self._send(msg.create_call_error(error).to_json())

    # ------------------------------------------------- charge point -> central system

    @on(Action.boot_notification, skip_schema_validation=True)
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **_: Any):
        status, interval = self.service.on_boot(self, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(current_time=utc_now(), interval=interval, status=status)

    @on(Action.heartbeat, skip_schema_validation=True)
    def on_heartbeat(self, **_: Any):
        return call_result.Heartbeat(current_time=utc_now())

    @on(Action.status_notification, skip_schema_validation=True)
    def on_status_notification(self, connector_id: int, error_code: str, status: str, **_: Any):
        self.service.on_status(self, connector_id, status, error_code)
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    def on_authorize(self, id_tag: str, **_: Any):
        return call_result.Authorize(id_tag_info=datatypes.IdTagInfo(status=self.service.authorize(self, id_tag)))

    @on(Action.start_transaction, skip_schema_validation=True)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any):
        tx_id, status = self.service.start_transaction(self, connector_id, id_tag, meter_start)
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info=datatypes.IdTagInfo(status=status))

    @on(Action.meter_values, skip_schema_validation=True)
    def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None, **_: Any):
        self.service.meter_values(self, connector_id, transaction_id, meter_value)
        return call_result.MeterValues()

    @on(Action.stop_transaction, skip_schema_validation=True)
    def on_stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        timestamp: str,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list | None = None,
        **_: Any,
    ):
        status = self.service.stop_transaction(self, transaction_id, meter_stop, reason, id_tag, transaction_data)
        info = datatypes.IdTagInfo(status=status) if id_tag is not None else None
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.data_transfer, skip_schema_validation=True)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, **_: Any):
        log.info("%s: DataTransfer from vendor %r (message %r): unknown vendor", self.id, vendor_id, message_id)
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification, skip_schema_validation=True)
    def on_diagnostics_status(self, status: str, **_: Any):
        log.info("%s: diagnostics upload %s", self.id, status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification, skip_schema_validation=True)
    def on_firmware_status(self, status: str, **_: Any):
        log.info("%s: firmware update %s", self.id, status)
        return call_result.FirmwareStatusNotification()

    # ------------------------------------------------- central system -> charge point

    async def remote_start(self, connector: int, id_tag: str) -> str:
        """RemoteStartTransaction; returns the status (Accepted or Rejected)."""
        result = await self._command(call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector))
        return result.status

    async def remote_stop(self, transaction_id: int) -> str:
        """RemoteStopTransaction; returns the status (Accepted or Rejected)."""
        return (await self._command(call.RemoteStopTransaction(transaction_id=transaction_id))).status

    async def reset(self, type: str) -> str:
        """Reset (Soft or Hard)."""
        return (await self._command(call.Reset(type=type))).status

    async def change_availability(self, connector: int, type: str) -> str:
        """ChangeAvailability (Operative or Inoperative; connector 0 is the whole charge point)."""
        return (await self._command(call.ChangeAvailability(connector_id=connector, type=type))).status

    async def trigger_message(self, requested_message: str, connector: int | None = None) -> str:
        """TriggerMessage (BootNotification, Heartbeat, StatusNotification, MeterValues, ...)."""
        payload = call.TriggerMessage(requested_message=requested_message, connector_id=connector)
        return (await self._command(payload)).status

    async def _command(self, payload: Any) -> Any:
        name = type(payload).__name__
        try:
            return await self.call(payload, suppress=False)
        except OCPPError as error:
            raise CommandFailed(
                f"{self.id}: {name} answered with CALLERROR {error.code}: {error.description}"
            ) from None
        except asyncio.TimeoutError:
            raise CommandFailed(f"{self.id}: no answer to {name} within {self._response_timeout}s") from None
        except ConnectionClosed:
            raise CommandFailed(f"{self.id}: connection closed before {name} was answered") from None
        except OCPPValidationError as error:
            raise CommandFailed(f"{self.id}: invalid {name}: {error}") from None
