"""The charge-point simulator against the bare OCPP central system, over real websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
import websockets
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from benchmarks.bare_central import BareCentral, BareChargePoint, serve_bare
from simulator.charge_point import Behaviour, SimChargePoint
from simulator.fleet import close_all, fleet_ids, run_fleet
from tools.harness.simulator import FAST, eventually

CONNECTOR_1_START = 1_000_000 + 1000


@pytest.fixture
async def central() -> AsyncIterator[BareCentral]:
    server = await serve_bare("127.0.0.1", 0)  # port 0: the OS picks a free port
    yield server
    await server.close()


@pytest.fixture
def url(central: BareCentral) -> str:
    return f"ws://127.0.0.1:{central.port}"


def statuses(peer: BareChargePoint, connector: int) -> list[str]:
    return [p["status"] for p in peer.of("StatusNotification") if p["connector_id"] == connector]


def samples(peer: BareChargePoint, transaction_id: int) -> list[dict]:
    """Every sampled value the central system received in MeterValues of ``transaction_id``."""
    return [
        sample
        for payload in peer.of("MeterValues")
        if payload.get("transaction_id") == transaction_id
        for reading in payload["meter_value"]
        for sample in reading["sampled_value"]
    ]


def energy_readings(peer: BareChargePoint, transaction_id: int) -> list[int]:
    return [int(s["value"]) for s in samples(peer, transaction_id) if s["measurand"] == "Energy.Active.Import.Register"]


async def test_boot_reports_every_connector_available(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-BOOT", "any-password", connectors=2)
    peer = central.charge_points["CP-BOOT"]
    [boot] = peer.of("BootNotification")
    assert (boot["charge_point_vendor"], boot["charge_point_model"]) == ("EVNetwork", "SimCP")
    assert [(p["connector_id"], p["status"]) for p in peer.of("StatusNotification")] == [
        (0, "Available"),
        (1, "Available"),
        (2, "Available"),
    ]
    assert cp.boot_status == "Accepted" and cp.configuration["HeartbeatInterval"] == "300"
    assert len(cp.reply_latencies) == 4 and all(0 < t < 1 for t in cp.reply_latencies)
    await cp.close()
    assert cp.closed.is_set()


@pytest.mark.parametrize("authorization", [None, "Basic " + base64.b64encode(b"CP-OTHER:pw").decode()])
async def test_bare_central_refuses_missing_or_foreign_credentials(url: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{url}/CP-Y", subprotocols=["ocpp1.6"], additional_headers=headers)
    assert refused.value.response.status_code == 401


async def test_remote_start_meters_then_remote_stop(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-RS", "pw", behaviour=FAST)
    peer = central.charge_points["CP-RS"]

    assert await central.remote_start("CP-RS", 1, "SESSION-7") == "Accepted"
    transaction_id = await cp.wait_for_transaction(1, timeout=2)
    [start] = peer.of("StartTransaction")
    assert (start["connector_id"], start["id_tag"], start["meter_start"]) == (1, "SESSION-7", CONNECTOR_1_START)
    assert await central.remote_start("CP-RS", 1, "SESSION-8") == "Rejected"  # connector busy
    await eventually(lambda: len(energy_readings(peer, transaction_id)) >= 3)
    assert await central.remote_stop("CP-RS", transaction_id + 100) == "Rejected"  # unknown transaction
    assert await central.remote_stop("CP-RS", transaction_id) == "Accepted"
    record = await cp.wait_for_stop(1, timeout=2)

    readings = energy_readings(peer, transaction_id)
    assert readings == [CONNECTOR_1_START + 100 * (n + 1) for n in range(len(readings))]
    power = [
        (s["value"], s["unit"], s["context"])
        for s in samples(peer, transaction_id)
        if s["measurand"] == "Power.Active.Import"
    ]
    assert power == [("36000", "W", "Sample.Periodic")] * len(readings)
    [stop] = peer.of("StopTransaction")
    assert stop["transaction_id"] == record.transaction_id == transaction_id
    assert stop["reason"] == record.reason == "Remote"
    assert stop["meter_stop"] == record.meter_stop == readings[-1] == cp.connector(1).meter_wh
    assert record.energy_wh == 100 * len(readings)
    assert [(r["sampled_value"][0]["value"], r["sampled_value"][0]["context"]) for r in stop["transaction_data"]] == [
        (str(CONNECTOR_1_START), "Transaction.Begin"),
        (str(stop["meter_stop"]), "Transaction.End"),
    ]
    await eventually(lambda: statuses(peer, 1)[-1] == "Available")
    assert statuses(peer, 1) == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    assert cp.connector(1).transaction_id is None and not cp.connector(1).busy
    await cp.close()


async def test_rejecting_charge_point_starts_nothing(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-NO", "pw", behaviour=Behaviour(accept_remote_start=False))
    assert await central.remote_start("CP-NO", 1, "SESSION-1") == "Rejected"
    # one more round trip on the same link: what the charge point did after its answer has gone out before
    assert (await cp._call(call.Heartbeat())).current_time
    peer = central.charge_points["CP-NO"]
    assert peer.of("StartTransaction") == [] and peer.of("Authorize") == []
    assert statuses(peer, 1) == ["Available"] and not cp.connector(1).busy
    with pytest.raises(asyncio.TimeoutError):
        await cp.wait_for_transaction(1, timeout=0.1)
    await cp.close()


async def test_remote_start_on_unknown_connector_is_rejected(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-UNK", "pw", connectors=1)
    assert await central.remote_start("CP-UNK", 2, "SESSION-1") == "Rejected"
    assert await central.remote_start("CP-UNK", 0, "SESSION-1") == "Rejected"
    await cp.close()


async def test_unplug_after_energy_stops_with_ev_disconnected(central: BareCentral, url: str) -> None:
    behaviour = Behaviour(power_w=11_000, meter_interval_s=10, time_accel=200, unplug_after_wh=100)
    cp = await SimChargePoint.connect(url, "CP-UNPLUG", "pw", behaviour=behaviour)
    assert await central.remote_start("CP-UNPLUG", 1, "SESSION-2") == "Accepted"
    record = await cp.wait_for_stop(1, timeout=2)
    tick_wh = 11_000 * 10 / 3600
    assert record.reason == "EVDisconnected"
    assert 100 <= record.energy_wh < 100 + tick_wh
    [stop] = central.charge_points["CP-UNPLUG"].of("StopTransaction")
    assert (stop["reason"], stop["meter_stop"]) == ("EVDisconnected", record.meter_stop)
    assert stop["meter_stop"] == energy_readings(central.charge_points["CP-UNPLUG"], record.transaction_id)[-1]
    await cp.close()


async def test_authorize_before_remote_start_when_configured(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-AUTH", "pw", behaviour=Behaviour(authorize_remote=True))
    assert await central.remote_start("CP-AUTH", 2, "SESSION-3") == "Accepted"
    await cp.wait_for_transaction(2, timeout=2)
    actions = [a for a, _ in central.charge_points["CP-AUTH"].received]
    assert actions.index("Authorize") < actions.index("StartTransaction")
    assert (await cp.unplug(2)).reason == "EVDisconnected"
    await cp.close()


async def test_local_start_and_stop(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-LOCAL", "pw", behaviour=FAST)
    transaction_id = await cp.start_local(2, "RFID-42")
    assert transaction_id is not None and cp.connector(2).transaction_id == transaction_id
    assert await cp.start_local(2, "RFID-43") is None  # busy
    peer = central.charge_points["CP-LOCAL"]
    assert peer.of("Authorize") == [{"id_tag": "RFID-42"}]
    [start] = peer.of("StartTransaction")
    assert (start["connector_id"], start["meter_start"]) == (2, 1_002_000)
    await eventually(lambda: len(energy_readings(peer, transaction_id)) >= 2)
    record = await cp.stop(2)
    assert record is not None and record.reason == "Local" and record.energy_wh >= 200
    assert await cp.wait_for_transaction(2, timeout=0.1) == transaction_id
    assert await cp.wait_for_stop(2, timeout=0.1) is record
    assert await cp.stop(2) is None  # nothing left to stop
    await cp.close()


async def test_drop_closes_without_handshake_and_close_with_it(central: BareCentral, url: str) -> None:
    dropped = await SimChargePoint.connect(url, "CP-DROP", "pw", behaviour=FAST)
    closed = await SimChargePoint.connect(url, "CP-CLOSE", "pw")
    await dropped.start_local(1, "RFID-1")
    await dropped.drop()
    await closed.close()
    await eventually(lambda: {"CP-DROP", "CP-CLOSE"} <= central.closed_abruptly.keys())
    assert central.closed_abruptly == {"CP-DROP": True, "CP-CLOSE": False}
    assert central.charge_points == {}
    await eventually(lambda: dropped.connector(1).session.cancelled())


async def test_call_error_from_central_is_survived(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-ERR", "pw")
    calls = len(cp.reply_latencies)
    assert await cp._call(call.DataTransfer(vendor_id="Nobody")) is None  # bare central: NotImplemented
    assert (await cp._call(call.Heartbeat())).current_time
    assert len(cp.reply_latencies) == calls + 1
    await cp.close()


async def test_central_commands(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-CMD", "pw")
    peer = central.charge_points["CP-CMD"]
    result = await peer.call(call.ChangeAvailability(connector_id=2, type="Inoperative"))
    assert result.status == "Accepted"
    await eventually(lambda: statuses(peer, 2)[-1] == "Unavailable")
    assert await central.remote_start("CP-CMD", 2, "SESSION-4") == "Rejected"
    assert (await peer.call(call.TriggerMessage(requested_message="Heartbeat"))).status == "Accepted"
    await eventually(lambda: len(peer.of("Heartbeat")) == 1)
    config = await peer.call(call.GetConfiguration(key=["NumberOfConnectors", "Nope"]))
    assert config.configuration_key == [{"key": "NumberOfConnectors", "readonly": True, "value": "2"}]
    assert config.unknown_key == ["Nope"]
    assert (await peer.call(call.ChangeConfiguration(key="NumberOfConnectors", value="3"))).status == "Rejected"
    assert (await peer.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="5"))).status == ("Accepted")
    assert cp.behaviour.meter_interval_s == 5
    assert (await peer.call(call.DataTransfer(vendor_id="Acme"))).status == "UnknownVendorId"
    await cp.close()


async def test_fleet_connects_many_and_closes_them(central: BareCentral, url: str) -> None:
    ids = fleet_ids(12, prefix="FLEET-")
    assert ids[0] == "FLEET-0001" and ids[-1] == "FLEET-0012"
    fleet = await run_fleet(url, [(i, f"secret-{i}") for i in ids], connectors=1, max_concurrent_connects=5)
    assert [cp.id for cp in fleet] == ids and set(central.charge_points) == set(ids)
    await close_all(fleet)
    assert all(cp.closed.is_set() for cp in fleet)


async def test_unlock_and_reset_stop_running_transactions(central: BareCentral, url: str) -> None:
    cp = await SimChargePoint.connect(url, "CP-RESET", "pw", behaviour=FAST)
    peer = central.charge_points["CP-RESET"]
    first = await cp.start_local(1, "RFID-1")
    second = await cp.start_local(2, "RFID-2")
    assert (await peer.call(call.UnlockConnector(connector_id=1))).status == "Unlocked"
    assert (await cp.wait_for_stop(1, timeout=2)).reason == "UnlockCommand"
    assert (await peer.call(call.TriggerMessage(requested_message="MeterValues", connector_id=2))).status == (
        "Accepted"
    )
    await eventually(lambda: any(s["context"] == "Trigger" for s in samples(peer, second)))
    assert (await peer.call(call.Reset(type="Soft"))).status == "Accepted"
    record = await cp.wait_for_stop(2, timeout=2)
    assert (record.transaction_id, record.reason) == (second, "SoftReset")
    await eventually(lambda: len(peer.of("BootNotification")) == 2)
    assert [s["transaction_id"] for s in peer.of("StopTransaction")] == [first, second]
    await cp.close()
