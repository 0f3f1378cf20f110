"""The transaction flow of a simulated charge point: start, meter, stop (a mixin of SimChargePoint)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ocpp.v16 import call
from ocpp.v16.enums import AuthorizationStatus, Reason
from ocpp.v16.enums import ChargePointStatus as Status

from simulator.state import Connector, StopRecord, as_sent, meter_value, utc_now

log = logging.getLogger("simulator")


class TransactionFlow:
    """Preparing -> (Authorize) -> StartTransaction -> Charging + MeterValues -> StopTransaction
    -> Finishing -> Available, one session task per connector."""

    async def _begin(self, c: Connector, id_tag: str, authorize: bool) -> int | None:
        """Preparing, optional Authorize, StartTransaction, then the metering session in a task.

        The caller has marked the connector busy.
        """
        await self._send_status(c, Status.preparing)
        if authorize:
            response = await self._call(call.Authorize(id_tag=id_tag))
            if response is None or response.id_tag_info["status"] != AuthorizationStatus.accepted:
                log.info("%s: id tag %s not authorized on connector %s", self.id, id_tag, c.connector_id)
                await self._release(c)
                return None
        c.meter_start, c.started_at = c.meter_wh, utc_now()
        response = await self._call(
            call.StartTransaction(
                connector_id=c.connector_id, id_tag=id_tag, meter_start=c.meter_start, timestamp=c.started_at
            ),
            queued=True,
        )
        if response is None:
            await self._release(c)
            return None
        c.transaction_id, c.id_tag, c.stop_reason = response.transaction_id, id_tag, None
        c.stop_requested.clear()
        accepted = response.id_tag_info["status"] == AuthorizationStatus.accepted
        c.session = self.spawn(self._session(c, None if accepted else Reason.de_authorized))
        c.transactions.append(c.transaction_id)
        await c.notify()
        log.info("%s: transaction %s started on connector %s", self.id, c.transaction_id, c.connector_id)
        return c.transaction_id

    async def _session(self, c: Connector, reason: str | None) -> StopRecord:
        """Charge and meter until a stop is requested (or the car unplugs), then finish the transaction."""
        if reason is None:
            await self._send_status(c, Status.charging)
            if self.meter and (
                begin := self.meter.begin_values(c.connector_id, c.transaction_id, c.meter_start, c.id_tag)
            ):
                await self._call(begin)
            reason = await self._meter_until_stop(c)
        return await self._finish(c, reason)

    async def _meter_until_stop(self, c: Connector) -> str:
        b = self.behaviour
        while not c.stop_requested.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(c.stop_requested.wait(), b.tick_real_s)
                break
            c.register_wh += b.tick_energy_wh
            await self._send_meter_values(c, "Sample.Periodic")
            if b.unplug_after_wh is not None and c.meter_wh - c.meter_start >= b.unplug_after_wh:
                return c.stop_reason or Reason.ev_disconnected
        return c.stop_reason or Reason.local

    async def _finish(self, c: Connector, reason: str) -> StopRecord:
        """StopTransaction with start and stop readings, then Finishing and Available (or Unavailable)."""
        stopped_at = utc_now()
        readings = [
            meter_value(c.meter_start, "Transaction.Begin", timestamp=c.started_at),
            meter_value(c.meter_wh, "Transaction.End", timestamp=stopped_at),
        ]
        if self.meter and (end := self.meter.end_value(c.meter_wh, c.id_tag, stopped_at)):
            readings.append(end)
        record = StopRecord(
            connector_id=c.connector_id,
            transaction_id=c.transaction_id,
            id_tag=c.id_tag,
            meter_start=c.meter_start,
            meter_stop=c.meter_wh,
            reason=str(reason),
            timestamp=stopped_at,
            transaction_data=[as_sent(r) for r in readings],
        )
        await self._call(
            call.StopTransaction(
                meter_stop=record.meter_stop,
                timestamp=stopped_at,
                transaction_id=record.transaction_id,
                reason=reason,
                id_tag=record.id_tag,
                transaction_data=readings,
            ),
            queued=True,
        )
        log.info("%s: transaction %s stopped (%s), %s Wh", self.id, record.transaction_id, reason, record.energy_wh)
        c.transaction_id = c.id_tag = None
        c.stops.append(record)
        await c.notify()
        await self._send_status(c, Status.finishing)
        await self._release(c)
        return record

    async def _release(self, c: Connector) -> None:
        """The connector is free again: Available, or Unavailable if that was scheduled."""
        if c.unavailable_scheduled:
            c.available, c.unavailable_scheduled = False, False
        c.busy = False
        await self._send_status(c, Status.available if c.available else Status.unavailable)
