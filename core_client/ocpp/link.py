"""One charge point's OCPP 1.6J connection, central-system side: OCPP in and out, nothing else.

One short ``@on`` handler per action hands its input to the sessions (:class:`Sessions`, implemented
by :class:`core_client.sessions.service.SessionService`) and answers with what they decide, at once: they never
wait for the chain. The one wait: Authorize / StartTransaction of a roaming eMSP's token first awaits
``Sessions.vouch`` (the eMSP asked in real time, bounded by ``[ocpi_cpo] authorize_timeout_s``). The link is the sessions' port to its charge point
(:class:`core_client.sessions.registry.ChargePoint`); whether the charge point is one of our stations
and has booted is the sessions' business (:class:`core_client.sessions.registry.Registration`). Calls that must follow an answer (the RemoteStop of a refused transaction) are
queued with :meth:`StationLink.after_reply` and sent by the ``@after`` handler, once the answer is out.
Framing, validation with 1.6's error codes and unsolicited results: :mod:`core_client.ocpp.adapter`.
Methods for the calls the central system starts (RemoteStart/Stop, Reset, ChangeAvailability,
TriggerMessage) raise :class:`CommandFailed` when the charge point answers with a CALLERROR, times
out or is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar

from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.exceptions import ValidationError as OCPPValidationError
from ocpp.routing import after
from ocpp.v16 import call, call_result, datatypes
from ocpp.v16.enums import Action, DataTransferStatus
from websockets.exceptions import ConnectionClosed

from core_client.ocpp.adapter import NotSent, OcppLink, on
from core_client.ocpp.wire import signed_meter_data, utc_now, wire_text
from core_client.sessions.actions import OutOfRange
from core_client.sessions.registry import AfterReply, ChargePoint, CommandFailed
from ev_network.errors import EVNetworkError

T = TypeVar("T")
log = logging.getLogger("core_client.ocpp")
wire_log = logging.getLogger("core_client.ocpp.wire")


class Sessions(Protocol):
    """What a link hands its charge point's messages to (:class:`core_client.sessions.service.SessionService`),
    each run by :meth:`handle` on the store's thread (the loop serves the other charge points meanwhile)."""

    async def handle(self, work: Callable[..., T], *args: Any) -> T: ...

    def on_boot(self, link: ChargePoint, vendor: str, model: str) -> tuple[str, int]: ...
    def on_status(self, link: ChargePoint, connector: int, status: str, error_code: str) -> None: ...
    def resumed(self, link: ChargePoint) -> None: ...
    async def vouch(self, link: ChargePoint, id_tag: str, connector: int | None = None) -> str | None: ...
    def authorize(self, link: ChargePoint, id_tag: str) -> str: ...
    def chain_tag(self, id_tag: str | None) -> bool: ...
    def start_transaction(
        self, link: ChargePoint, connector: int, id_tag: str, meter_start: int, decided_id: int | None = None
    ) -> tuple[int, str]: ...
    def meter_values(self, link: ChargePoint, connector: int, transaction_id: int | None, values: list) -> None: ...
    def stop_transaction(
        self, link: ChargePoint, transaction_id: int, meter_stop: int, reason: str | None, transaction_data: list | None
    ) -> str: ...


class Recorder(Protocol):
    """Where a link reports every OCPP transaction (:class:`core_client.records.log.TransactionLog`)."""

    def record_start(
        self, charge_point_id: str, connector: int, transaction_id: int, id_tag: str, meter_start: int, timestamp: str
    ) -> None: ...
    def record_stop(
        self,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        timestamp: str,
        signed_meter_data: str | None = None,
        charge_point_id: str | None = None,
    ) -> Any: ...


class StationLink(OcppLink):
    """The central system's side of one connected charge point."""

    error_codes: ClassVar[dict[type[Exception], type[OCPPError]]] = {OutOfRange: PropertyConstraintViolationError}

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        service: Sessions,
        response_timeout: float = 20,
        records: Recorder | None = None,
        decided_ids: Callable[[str], int | None] | None = None,
    ) -> None:
        """``decided_ids``: in proxy mode (:mod:`core_client.proxy.relay`), the transaction id decided
        upstream for the StartTransaction with a given message id."""
        super().__init__(cp_id, connection, response_timeout, wire_log)
        self.service = service
        self.records = records
        self.decided_ids = decided_ids
        self.replies = AfterReply()

    def after_reply(self, send: Callable[[], Awaitable[Any]]) -> None:
        """Send ``send()`` once the answer to the message being handled is out (see ``@after``)."""
        self.replies.add(send)

    # ------------------------------------------------- charge point -> central system

    def heard(self, action: str) -> None:
        if action != Action.boot_notification:  # a charge point back on a new connection need not boot again
            self.service.resumed(self)

    @on(Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **_: Any):
        status, interval = await self.service.handle(
            self.service.on_boot, self, charge_point_vendor, charge_point_model
        )
        return call_result.BootNotification(current_time=utc_now(), interval=interval, status=status)

    @after(Action.boot_notification)
    def after_boot_notification(self, **_: Any) -> None:
        self.replies.send()

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any):
        return call_result.Heartbeat(current_time=utc_now())

    @on(Action.status_notification)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str, **_: Any):
        await self.service.handle(self.service.on_status, self, connector_id, status, error_code)
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **_: Any):
        status = await self.service.vouch(self, id_tag) or await self.service.handle(
            self.service.authorize, self, id_tag
        )
        return call_result.Authorize(id_tag_info=datatypes.IdTagInfo(status=status))

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, call_unique_id: str, **_: Any
    ):
        decided = self.decided_ids(call_unique_id) if self.decided_ids is not None else None
        refused = await self.service.vouch(self, id_tag, connector_id)
        start = self.service.start_transaction
        tx_id, status = await self.service.handle(start, self, connector_id, id_tag, meter_start, decided)
        status = refused or status
        if self.records is not None:  # every transaction, paid on chain or not, where its id is decided
            record = (self.records.record_start, self.id, connector_id, tx_id, id_tag, meter_start, timestamp)
            await self.service.handle(self._record, *record)
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info=datatypes.IdTagInfo(status=status))

    @after(Action.start_transaction)
    def after_start_transaction(self, **_: Any) -> None:
        self.replies.send()

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None, **_: Any):
        await self.service.handle(self.service.meter_values, self, connector_id, transaction_id, meter_value)
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        timestamp: str,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list | None = None,
        **_: Any,
    ):
        stop = self.service.stop_transaction
        status = await self.service.handle(stop, self, transaction_id, meter_stop, reason, transaction_data)
        info = datatypes.IdTagInfo(status=status) if id_tag is not None else None
        return call_result.StopTransaction(id_tag_info=info)

    @after(Action.stop_transaction)
    async def after_stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        timestamp: str,
        reason: str | None = None,
        transaction_data: list | None = None,
        **_: Any,
    ) -> None:
        if self.records is not None:
            data = signed_meter_data(transaction_data)
            record = (self.records.record_stop, transaction_id, meter_stop, reason, timestamp, data, self.id)
            await self.service.handle(self._record, *record)

    def _record(self, write: Callable[..., Any], *args: Any) -> None:
        """A write to the transaction record; values it cannot hold are logged, the answer goes out anyway."""
        try:
            write(*args)
        except EVNetworkError as error:  # RecordError: a value a record cannot hold
            log.warning("%s: transaction not recorded: %s", self.id, wire_text(str(error)))

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, **_: Any):
        log.info(
            "%s: DataTransfer from vendor %s (message %s): unknown vendor",
            self.id,
            wire_text(vendor_id),
            wire_text(message_id),
        )
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str, **_: Any):
        log.info("%s: diagnostics upload %s", self.id, status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **_: Any):
        log.info("%s: firmware update %s", self.id, status)
        return call_result.FirmwareStatusNotification()

    # ------------------------------------------------- central system -> charge point

    async def remote_start(self, connector: int, id_tag: str) -> str:
        """RemoteStartTransaction; returns the status (Accepted or Rejected)."""
        return (await self._command(call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector))).status

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

    async def get_local_list_version(self) -> int:
        """GetLocalListVersion: the version of the charge point's local list (0: empty, -1: not supported)."""
        return (await self._command(call.GetLocalListVersion())).list_version

    async def send_local_list(self, version: int, update_type: str, entries: dict[str, tuple[str, str] | None]) -> str:
        """SendLocalList (Full or Differential): idTag -> (status, expiry date), None removes it; the status."""
        items = [
            datatypes.AuthorizationData(tag, None if e is None else datatypes.IdTagInfo(e[0], expiry_date=e[1]))
            for tag, e in entries.items()
        ]
        payload = call.SendLocalList(list_version=version, update_type=update_type, local_authorization_list=items)
        return (await self._command(payload)).status

    async def _command(self, payload: Any) -> Any:
        name = type(payload).__name__
        try:
            return await self.call(payload, suppress=False)
        except NotSent as error:
            raise CommandFailed(f"{self.id}: {error}", sent=False) from None
        except OCPPError as error:
            raise CommandFailed(
                f"{self.id}: {name} answered with CALLERROR {error.code}: {error.description}"
            ) from None
        except asyncio.TimeoutError:
            raise CommandFailed(f"{self.id}: no answer to {name} within {self.response_timeout}s") from None
        except ConnectionClosed:
            raise CommandFailed(f"{self.id}: connection closed before {name} was answered") from None
        except OCPPValidationError as error:
            raise CommandFailed(f"{self.id}: invalid {name}: {error}") from None
