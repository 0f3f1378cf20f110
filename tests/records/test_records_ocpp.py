"""The transaction log wired into a real OCPP 1.6J central system (the `ocpp` package on websockets) as
docs/operations.md tells the integrator, with the project's simulator and a raw charge point sending
signed meter data: every transaction is recorded, anchored, exported and verified on a real Anvil."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result, datatypes
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from core_client.records.log import TransactionLog, signed_meter_data
from ev_network.records import RecordAnchor, verify_export
from simulator.charge_point import SimChargePoint
from tools.devchain import free_port
from tools.harness.chain import Net
from tools.harness.core import RawCP, now_iso, until

OCMF = 'OCMF|{"FV":"1.0","RD":[{"TM":"2025-12-01T10:00:00,000+0000 S","RV":1.234,"RU":"kWh"}]}|{"SD":"3045..."}'
ACCEPTED = datatypes.IdTagInfo(status=AuthorizationStatus.accepted)


class RecordingCentralSystem(ChargePoint):
    """A minimal central system: accepts everything and records each transaction in ``records``."""

    records: TransactionLog
    transaction_ids = itertools.count(501)

    @on(Action.boot_notification)
    def on_boot(self, **_: Any):
        return call_result.BootNotification(current_time=now_iso(), interval=300, status=RegistrationStatus.accepted)

    @on(Action.status_notification)
    def on_status(self, **_: Any):
        return call_result.StatusNotification()

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any):
        return call_result.Heartbeat(current_time=now_iso())

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any):
        return call_result.MeterValues()

    @on(Action.authorize)
    def on_authorize(self, **_: Any):
        return call_result.Authorize(id_tag_info=ACCEPTED)

    @on(Action.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any):
        transaction_id = next(self.transaction_ids)  # where the id is decided: record the start here
        self.records.record_start(self.id, connector_id, transaction_id, id_tag, meter_start, timestamp)
        return call_result.StartTransaction(transaction_id=transaction_id, id_tag_info=ACCEPTED)

    @on(Action.stop_transaction)
    def on_stop(self, **_: Any):
        return call_result.StopTransaction()

    @after(Action.stop_transaction)
    def after_stop(self, transaction_id: int, meter_stop: int, timestamp: str, reason: str | None = None, **kw: Any):
        data = signed_meter_data(kw.get("transaction_data"))
        self.records.record_stop(transaction_id, meter_stop, reason, timestamp, data)


@pytest.fixture
async def central(tmp_path: Path, clean_chain: Net) -> AsyncIterator[tuple[str, TransactionLog]]:
    records = TransactionLog(tmp_path / "cc.sqlite", RecordAnchor(clean_chain.w3, clean_chain.deployment.record_anchor))

    async def serve(connection: Any) -> None:
        cs = RecordingCentralSystem(connection.request.path.strip("/"), connection)
        cs.records = records
        with contextlib.suppress(websockets.ConnectionClosed):
            await cs.start()

    port = free_port()
    async with websockets.serve(serve, "127.0.0.1", port, subprotocols=["ocpp1.6"]):
        yield f"ws://127.0.0.1:{port}", records
    records.close()


async def test_ocpp_transactions_are_recorded_anchored_and_verified(central, clean_chain: Net) -> None:
    net = clean_chain
    url, records = central
    sim = await SimChargePoint.connect(url, "CP-REC-SIM", "unused")
    transaction = await sim.start_local(1, "04a2b3c4d5e6f7")
    await sim.stop(1)
    raw = await RawCP.connect(url, "CP-REC-RAW", "unused")
    started = await raw.call(
        "StartTransaction", {"connectorId": 2, "idTag": "MSP-CARD-9", "meterStart": 1000, "timestamp": now_iso()}
    )
    signed = {"timestamp": now_iso(), "sampledValue": [{"value": OCMF, "format": "SignedData"}, {"value": "1234"}]}
    stop = {"transactionId": started[2]["transactionId"], "meterStop": 2234, "timestamp": now_iso()}
    await raw.call("StopTransaction", {**stop, "reason": "EVDisconnected", "transactionData": [signed]})
    await raw.call("StopTransaction", {**stop, "reason": "EVDisconnected"})  # resent: recorded once
    await until(lambda: len(records) == 2, 5, "two records")
    await sim.close()
    await raw.close()

    first, second = records.entries()
    assert (first.record.charge_point_id, first.record.transaction_id, first.record.connector) == (
        "CP-REC-SIM",
        transaction,
        1,
    )
    assert first.record.matches_id_tag("04A2B3C4D5E6F7") and first.record.signed_meter_data == ""
    assert (second.record.meter_start, second.record.meter_stop, second.record.stop_reason) == (
        1000,
        2234,
        "EVDisconnected",
    )
    assert second.record.signed_meter_data == OCMF and second.record.matches_id_tag("msp-card-9")

    records.anchor_interval_s = 0
    anchor = await records.anchor_due(net.sender(net.operator))
    assert (anchor.first_index, anchor.count) == (0, 2)
    for entry in (first, second):
        verified = verify_export(records.export(entry, net.operator.address), records.anchors, net.escrow())
        assert verified.anchor.anchor_id == 0 and verified.operator_name == "Volt Charging GmbH"
