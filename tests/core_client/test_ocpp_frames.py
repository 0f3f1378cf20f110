"""What a charge point sends over its OCPP link, against a real daemon (real Anvil, websockets): frames the
spec refuses get the CALLERROR it names and the link stays up, numbers beyond 64 bits or SQLite, a meter
value that would take seconds to read, stale results, and a charge point acting for another."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time

import pytest
from ocpp import messages
from ocpp.messages import Call
from ocpp.v16.enums import Action

from core_client.ocpp.adapter import load_schemas
from core_client.ocpp.link import CommandFailed
from core_client.sessions.jobs import JobKind
from core_client.sessions.machine import State
from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    QUICK_CHARGE,
    Core,
    chain_events,
    funded_driver,
    now_iso,
    open_session,
    start_payload,
    stop_payload,
    wait_chain,
)

DEPOSIT = 20 * TOKEN


def test_the_ocpp_internals_the_adapter_relies_on_are_there():
    """Fails loudly when a new ocpp version changes what core_client.ocpp.adapter uses."""
    from core_client.ocpp import adapter as ocpp_adapter

    assert ocpp_adapter.problems() == []


BAD_FRAMES = [
    ("this is not json", "-1", "FormationViolation"),
    ('{"not": "an array"}', "-1", "FormationViolation"),
    ("[2]", "-1", "FormationViolation"),
    ('[2, "f1", "Heartbeat"]', "f1", "FormationViolation"),
    ('[2, "f2", "Heartbeat", []]', "f2", "FormationViolation"),
    ('[7, "f3", "Heartbeat", {}]', "f3", "FormationViolation"),
    ('[2, "f4", "BrewCoffee", {}]', "f4", "NotImplemented"),
    ('[2, "f5", "RemoteStartTransaction", {"idTag": "X"}]', "f5", "NotSupported"),
    (
        '[2, "f6", "StartTransaction", {"connectorId": "one", "idTag": "X", "meterStart": 0, "timestamp": "t"}]',
        "f6",
        "TypeConstraintViolation",
    ),
    ('[2, "f7", "StartTransaction", {"connectorId": 1}]', "f7", "ProtocolError"),
    ('[2, "f8", "Heartbeat", {"surprise": 1}]', "f8", "FormationViolation"),
    (
        '[2, "f9", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]',
        "f9",
        "PropertyConstraintViolation",
    ),
    ('[2, "f10", "Authorize", {"idTag": "' + "X" * 21 + '"}]', "f10", "TypeConstraintViolation"),
    (
        '[2, "f11", "StopTransaction", {"transactionId": 1.5, "meterStop": 1, "timestamp": "t"}]',
        "f11",
        "TypeConstraintViolation",
    ),
]


async def test_bad_frames_get_the_callerror_the_spec_names_and_the_link_survives(core: Core):
    raw = await core.raw(core.a)
    for frame, unique_id, code in BAD_FRAMES:
        answer = await raw.send_raw(frame)
        assert answer[:3] == [4, unique_id, code], (frame, answer)
    answer = await raw.send_raw(b"\x00\x01binary")
    assert answer[:3] == [4, "-1", "FormationViolation"]

    assert (await raw.call("DataTransfer", {"vendorId": "com.example"}))[2] == {"status": "UnknownVendorId"}
    assert (await raw.call("Authorize", {"idTag": "RFID-123"}))[2] == {"idTagInfo": {"status": "Invalid"}}
    assert (await raw.call("Authorize", {"idTag": "EVN999999"}))[2] == {"idTagInfo": {"status": "Invalid"}}
    assert (await raw.call("FirmwareStatusNotification", {"status": "Idle"}))[2] == {}
    assert (await raw.call("DiagnosticsStatusNotification", {"status": "Idle"}))[2] == {}
    assert "currentTime" in (await raw.call("Heartbeat", {}))[2]  # same connection, still served
    assert core.daemon.service.online(core.a)
    # a transaction with a local tag, or with an EVN tag that names no session, gets an id but is
    # refused (Invalid), and no chain job
    for id_tag in ("RFID-123", "EVN999999", "EVN" + "9" * 17):
        answer = await raw.call("StartTransaction", start_payload(1, id_tag, 500))
        assert answer[2]["idTagInfo"] == {"status": "Invalid"} and answer[2]["transactionId"] >= 1
    assert core.daemon.store.jobs("pending", "sent", "done") == []


FREEZER = (
    '[2,"f1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z",'
    '"sampledValue":[{"value":"1e999999"}]}]}]'
)


@pytest.mark.issue(9, item=1)
async def test_a_huge_meter_value_is_answered_at_once_and_blocks_no_one(core: Core):
    a, b = await core.raw(core.a), await core.raw(core.b)
    started = time.monotonic()
    answer, beat = await asyncio.gather(a.send_raw(FREEZER, timeout=10), b.call("Heartbeat", {}, timeout=10))
    assert answer == [3, "f1", {}] and beat[0] == 3
    assert time.monotonic() - started < 1.0  # was 24 s for both charge points
    await a.close()
    await b.close()


@pytest.mark.issue(9, item=7)
async def test_integers_beyond_64_bits_get_formation_violation_and_the_link_stays_up(core: Core, caplog):
    cp = await core.raw(core.a)
    frame = f'[2,"big-1","StopTransaction",{{"transactionId":1,"meterStop":{"9" * 5000},"timestamp":"{now_iso()}"}}]'
    with caplog.at_level(logging.WARNING, logger="core_client"):
        answer = await cp.send_raw(frame)
    assert answer[:3] == [4, "big-1", "PropertyConstraintViolation"] and "64 bits" in answer[3]
    assert (await cp.call("Heartbeat", {}))[0] == 3  # the connection was not closed (was 1011)
    assert caplog.records and max(len(r.getMessage()) for r in caplog.records) < 1000
    await cp.close()


@pytest.mark.issue(9, item=7)
async def test_numbers_sqlite_cannot_hold_get_property_constraint_violation_and_a_short_log(core: Core, caplog):
    raw = await core.raw(core.a)
    huge = 2**64
    long_values = [{"value": str(i), "measurand": "Voltage"} for i in range(3_000)]  # a ~100 KB payload
    frames = [
        ("StartTransaction", {"connectorId": huge, "idTag": "RFID-1", "meterStart": 0, "timestamp": now_iso()}),
        ("StartTransaction", {"connectorId": 1, "idTag": "RFID-1", "meterStart": huge, "timestamp": now_iso()}),
        ("StatusNotification", {"connectorId": huge, "errorCode": "NoError", "status": "Available"}),
        (
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": huge,
                "meterValue": [{"timestamp": now_iso(), "sampledValue": long_values}],
            },
        ),
        ("StopTransaction", {"transactionId": huge, "meterStop": 5, "timestamp": now_iso()}),
        ("StopTransaction", {"transactionId": 1, "meterStop": -huge, "timestamp": now_iso()}),
    ]
    with caplog.at_level(logging.INFO):
        for action, payload in frames:
            answer = await raw.call(action, payload)
            assert answer[:3] == [4, answer[1], "PropertyConstraintViolation"], (action, answer)
    assert "currentTime" in (await raw.call("Heartbeat", {}))[2]
    longest = max(len(r.getMessage()) for r in caplog.records)
    assert longest < 2_000, longest
    assert core.daemon.store.jobs("pending", "sent", "done") == []


@pytest.mark.issue(9, item=2)
async def test_unsolicited_results_are_dropped_and_commands_still_work(core: Core):
    raw = await core.raw(core.a, answers={"Reset": {"status": "Accepted"}})
    junk = json.dumps({"blob": "x" * 1_000})
    for i in range(3_000):
        await raw.connection.send(f'[3, "stale-{i}", {junk}]' if i % 2 else f'[4, "e{i}", "GenericError", "", {{}}]')
    assert "currentTime" in (await raw.call("Heartbeat", {}))[2]  # handled in order: every stale one was routed
    link = core.daemon.service.links[core.a]
    assert link._response_queue.qsize() == 0 and link.dropped_results == 3_000
    assert await link.reset("Soft") == "Accepted"  # no RecursionError, no stale answer taken for this one
    assert link._response_queue.qsize() == 0


@pytest.mark.issue(9, item=2)
async def test_the_remote_stop_of_a_refused_transaction_follows_its_answer(core: Core):
    raw = await core.raw(core.a)
    answer = await raw.call(
        "StartTransaction", {"connectorId": 1, "idTag": "RFID-9", "meterStart": 0, "timestamp": now_iso()}
    )
    assert answer[2]["idTagInfo"] == {"status": "Invalid"}
    stop = await raw.next_call("RemoteStopTransaction", timeout=5)
    assert stop[3] == {"transactionId": answer[2]["transactionId"]}
    assert raw.received.index(answer) < raw.received.index(stop)


async def test_a_charge_point_cannot_act_for_another(core: Core):
    net = core.net
    driver = await funded_driver(net, 1)
    sim = await core.connect(core.a, QUICK_CHARGE)
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    transaction_id = await sim.wait_for_transaction(1, timeout=10)
    await wait_chain(net, session_id, SessionState.ACTIVE)

    impostor = await core.raw(core.b)
    tag = core.local(session_id).id_tag
    assert (await impostor.call("Authorize", {"idTag": tag}))[2]["idTagInfo"]["status"] == "Invalid"
    assert (await impostor.call("StartTransaction", start_payload(1, tag, 0)))[2]["idTagInfo"]["status"] == "Invalid"
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "99999999"}]}],
    }
    assert (await impostor.call("MeterValues", meter))[2] == {}
    answer = (await impostor.call("StopTransaction", stop_payload(transaction_id, 2_000_000, tag)))[2]
    assert answer == {"idTagInfo": {"status": "Invalid"}}
    await core.wait_idle()  # a (wrong) settle of the impostor's stop would be on the queue
    assert core.daemon.store.job(JobKind.SETTLE, session_id) is None
    local = core.local(session_id)
    assert local.state is State.CHARGING and local.meter_last < 2_000_000
    assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.ACTIVE

    record = await sim.stop(1)
    await wait_chain(net, session_id, SessionState.SETTLED)
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["meterStop"] == record.meter_stop
    assert settled.args["cost"] == price(TARIFF, record.energy_wh)


# ------------------------------------------------- issue 17 #5: schemas and frames not sent


@pytest.mark.issue(17, item=5)
def test_every_schema_is_in_memory_so_no_frame_needs_a_descriptor():
    """``ocpp`` read each schema on first use and turned "too many open files" into NotImplemented
    (a RemoteStart then never went out). Loaded at start, they validate with no descriptor left."""
    messages._validators.clear()  # as in a new process
    assert load_schemas() == 2 * len(Action)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        with pytest.raises(OSError):
            while True:
                opened.append(open(os.devnull))  # noqa: SIM115 - until the process has no descriptor left
        remote_start = Call("1", "RemoteStartTransaction", {"idTag": "EVN1", "connectorId": 1})
        messages._validate_payload(remote_start, "1.6")  # what ocpp does before sending: no NotImplemented
        for action in Action:
            assert messages.get_validator(2, action.value, "1.6").schema
            assert messages.get_validator(3, action.value, "1.6").schema
    finally:
        for f in opened:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.issue(17, item=5)
async def test_a_command_ocpp_refuses_to_send_is_not_reported_as_the_charge_points_answer(core: Core):
    raw = await core.raw(core.a)
    link = core.daemon.service.links[core.a]
    with pytest.raises(CommandFailed) as failed:
        await link.remote_start(1, "X" * 21)  # idTag beyond OCPP's 20 characters: ocpp refuses to send it
    assert not failed.value.sent and "not sent" in str(failed.value) and "answered" not in str(failed.value)
    assert (await raw.call("Heartbeat", {}))[2]["currentTime"]  # the link is fine
    assert not [f for f in raw.received if f[0] == 2 and f[2] == "RemoteStartTransaction"]
    assert await link.remote_start(1, "EVN999") == "Accepted"  # and the next one goes out
