"""Sessions when the charge point misbehaves, against a real daemon and Anvil with hand-made frames:
repeated Start/StopTransaction settle once, no StartTransaction in time refunds, an implausible meterStop
holds the session, an implausible MeterValues reading is not trusted, a RemoteStart lost with its connection or sent before the boot's answer."""

from __future__ import annotations

import asyncio

import pytest

from core_client.sessions.jobs import JobKind
from core_client.sessions.machine import State
from core_client.web.dashboard_source import ServiceDashboardSource
from core_client.web.live import ReadingsSource
from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import price
from ev_network.session_ids import hex_session_id
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    Core,
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    running_core,
    start_payload,
    stop_payload,
    until,
    wait_chain,
)

DEPOSIT = 20 * TOKEN


async def test_duplicated_start_and_stop_transaction_are_idempotent_and_settle_once(core: Core):
    net = core.net
    driver = await funded_driver(net, 0)
    raw = await core.raw(core.a)
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    remote_start = await raw.next_call("RemoteStartTransaction")
    tag = core.local(session_id).id_tag
    assert remote_start[3] == {"idTag": tag, "connectorId": 1}
    assert (await raw.call("Authorize", {"idTag": tag}))[2]["idTagInfo"]["status"] == "Accepted"

    first = (await raw.call("StartTransaction", start_payload(1, tag, 10_000)))[2]
    again = (await raw.call("StartTransaction", start_payload(1, tag, 10_000)))[2]
    assert first == again and first["idTagInfo"]["status"] == "Accepted"
    transaction_id = first["transactionId"]
    await wait_chain(net, session_id, SessionState.ACTIVE)
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "10.25", "unit": "kWh"}]}],
    }
    assert (await raw.call("MeterValues", meter))[2] == {}
    assert core.local(session_id).meter_last == 10_250

    stop = stop_payload(transaction_id, 10_700, tag)
    answers = [(await raw.call("StopTransaction", stop))[2] for _ in range(3)]
    assert answers == [{"idTagInfo": {"status": "Accepted"}}] * 3
    await wait_chain(net, session_id, SessionState.SETTLED)
    await core.wait_idle()  # a (wrong) second settle would be on the queue until it reached the chain
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["cost"] == price(TARIFF, 700)
    assert len(chain_events(net, "SessionStarted", session_id)) == 1
    assert (await raw.call("StopTransaction", stop))[2] == {"idTagInfo": {"status": "Accepted"}}
    assert [j.kind for j in core.daemon.store.jobs("done")] == ["start", "settle"]


@pytest.mark.core_settings(start_timeout_s=1.5)
async def test_no_start_transaction_within_the_timeout_rejects_and_refunds(core: Core):
    net = core.net
    driver = await funded_driver(net, 2)
    raw = await core.raw(core.a)  # accepts RemoteStart, never starts
    session_id = await open_session(net, driver, core.stations[core.a], 2, DEPOSIT)
    await raw.next_call("RemoteStartTransaction")
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=10)
    [cancelled] = chain_events(net, "SessionCancelled", session_id)
    assert CancelReason(cancelled.args["reason"]) is CancelReason.OTHER
    # the car shows up too late: refused, and told to stop
    late = (await raw.call("StartTransaction", start_payload(2, core.local(session_id).id_tag, 0)))[2]
    assert late["idTagInfo"]["status"] == "Invalid"
    stop = await raw.next_call("RemoteStopTransaction")
    assert stop[3] == {"transactionId": late["transactionId"]}


async def _charging(core: Core, raw: RawCP, driver_index: int, meter_start: int = 1_000) -> tuple[int, int, str]:
    """A session started by ``raw`` on connector 1 and active on chain: (session id, transaction, idTag)."""
    driver = await funded_driver(core.net, driver_index)
    session_id = await open_session(core.net, driver, core.stations[raw_id(raw)], 1, DEPOSIT)
    remote_start = await raw.next_call("RemoteStartTransaction")
    tag = remote_start[3]["idTag"]
    payload = {"connectorId": 1, "idTag": tag, "meterStart": meter_start, "timestamp": now_iso()}
    transaction_id = (await raw.call("StartTransaction", payload))[2]["transactionId"]
    await wait_chain(core.net, session_id, SessionState.ACTIVE)
    return session_id, transaction_id, tag


def raw_id(raw: RawCP) -> str:
    return raw.connection.request.path.rsplit("/", 1)[-1]


@pytest.mark.issue(9, item=3)
async def test_an_implausible_meter_stop_holds_the_session_and_a_low_one_settles_with_the_last_reading(core: Core):
    net = core.net
    raw = await core.raw(core.a)
    session_id, transaction_id, tag = await _charging(core, raw, 0)
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "1850"}]}],
    }
    assert (await raw.call("MeterValues", meter))[2] == {}
    assert (await raw.call("StopTransaction", stop_payload(transaction_id, 2**40 + 5, tag)))[2]["idTagInfo"][
        "status"
    ] == "Accepted"
    await until(lambda: core.local(session_id).state is State.HELD, 5, "held")
    [held] = core.daemon.health()["held_sessions"]
    assert held["id_tag"] == tag and str(2**40 + 5) in held["error"]
    await core.wait_idle()
    assert core.daemon.store.job(JobKind.SETTLE, session_id) is None
    assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.ACTIVE

    raw_b = await core.raw(core.b)
    low_id, low_tx, low_tag = await _charging(core, raw_b, 1, meter_start=10_000)
    meter = {
        "connectorId": 1,
        "transactionId": low_tx,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "10800"}]}],
    }
    assert (await raw_b.call("MeterValues", meter))[2] == {}
    assert (await raw_b.call("StopTransaction", stop_payload(low_tx, 9_000, low_tag)))[2]["idTagInfo"][
        "status"
    ] == "Accepted"
    await wait_chain(net, low_id, SessionState.SETTLED)
    [settled] = chain_events(net, "SessionSettled", low_id)
    assert settled.args["meterStop"] == 10_800  # the 800 Wh of MeterValues are billed


@pytest.mark.issue(17, item=1)
@pytest.mark.core_settings(max_power_kw=350)
async def test_an_absurd_meter_values_reading_neither_stops_nor_bills_the_session(core: Core):
    """The issue's case: meterStart 100,000, MeterValues 120,000 then 10^12 a few seconds later, meterStop
    100,500: no budget stop, 500 Wh billed (0.675 of the deposit), the meter listed in /health."""
    raw = await core.raw(core.a)
    session_id, transaction_id, tag = await _charging(core, raw, 0, meter_start=100_000)
    for absurd in ("120000", "1000000000000"):
        meter = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": absurd}]}],
        }
        assert (await raw.call("MeterValues", meter))[2] == {}
    assert core.local(session_id).meter_last == 100_000 and core.local(session_id).stop_wanted is None
    assert "1000000000000" in core.daemon.health()["meter_problems"][core.a]["error"]
    answer = await raw.call("StopTransaction", stop_payload(transaction_id, 100_500, tag))
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    await wait_chain(core.net, session_id, SessionState.SETTLED)
    [settled] = chain_events(core.net, "SessionSettled", session_id)
    assert (settled.args["meterStop"], settled.args["cost"]) == (100_500, TOKEN // 2 + 35 * TOKEN // 100 // 2)
    assert not [f for f in raw.received if f[0] == 2 and f[2] == "RemoteStopTransaction"]


@pytest.mark.issue(17, item=14)
@pytest.mark.core_settings(max_power_kw=350)
async def test_the_live_power_is_the_reported_power_active_import_when_plausible(core: Core):
    """The driver's live power is the charge point's Power.Active.Import (W or kW) when it reports one
    within max_power_kw; otherwise the power from energy deltas, never beyond max_power_kw (200 Wh a
    second or two apart are several hundred kW)."""
    raw = await core.raw(core.a)
    session_id, transaction_id, _ = await _charging(core, raw, 0)
    live, energy = ReadingsSource(core.daemon.service.live), iter(range(1_100, 2_000, 100))

    async def meter(*samples: dict) -> int:
        payload = {"connectorId": 1, "transactionId": transaction_id}
        payload["meterValue"] = [{"timestamp": now_iso(), "sampledValue": [{"value": str(next(energy))}, *samples]}]
        assert (await raw.call("MeterValues", payload))[2] == {}
        return (await live.session(session_id)).power_w

    assert await meter({"measurand": "Power.Active.Import", "unit": "W", "value": "7400"}) == 7_400
    assert await meter({"measurand": "Power.Active.Import", "unit": "kW", "value": "11.04"}) == 11_040
    assert await meter({"measurand": "Power.Active.Import", "unit": "W", "value": "9e9"}) == 350_000  # derived
    assert await meter({"measurand": "Power.Active.Import", "unit": "W", "value": "-5"}) == 350_000
    assert await meter() == 350_000  # energy only: derived, bounded by what a connector delivers


@pytest.mark.issue(9, item=8)
async def test_a_remote_start_lost_with_its_connection_is_sent_again_on_reconnect(core: Core):
    net = core.net
    driver = await funded_driver(net, 4)
    raw = await RawCP.connect(
        core.url, core.a, core.passwords[core.a], answers={"RemoteStartTransaction": {"status": "Accepted"}}
    )
    assert (await raw.boot())[2]["status"] == "Accepted"
    session_id = await open_session(net, driver, core.stations[core.a], 2, DEPOSIT)
    first = await raw.next_call("RemoteStartTransaction")
    await raw.close()  # gone before it could start the transaction
    again = await core.raw(core.a)
    resent = await again.next_call("RemoteStartTransaction", timeout=5)
    assert resent[3] == first[3]
    payload = {"connectorId": 2, "idTag": first[3]["idTag"], "meterStart": 0, "timestamp": now_iso()}
    assert (await again.call("StartTransaction", payload))[2]["idTagInfo"]["status"] == "Accepted"
    await wait_chain(net, session_id, SessionState.ACTIVE)


@pytest.mark.issue(9, item=8)
async def test_a_waiting_session_is_started_only_after_the_boot_is_answered(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("BOOTFIRST")
    driver = await funded_driver(net, 5)
    async with running_core(net, tmp_path, keyfile, {cp: 2}, reconnect_grace_s=60) as core:
        session_id = await open_session(net, driver, core.stations[cp], 1, DEPOSIT)
        await until(lambda: core.local(session_id), 10, "the session requested")
        raw = await RawCP.connect(core.url, cp, core.passwords[cp])
        boot = await raw.boot()
        assert boot[2]["status"] == "Accepted"
        remote_start = await raw.next_call("RemoteStartTransaction", timeout=5)
        assert raw.received.index(boot) < raw.received.index(remote_start)
        await raw.close()


@pytest.mark.issue(17, item=2)
async def test_a_held_session_is_listed_answers_the_drivers_stop_and_leaves_held_when_reclaimed(core: Core, caplog):
    net = core.net
    raw = await core.raw(core.a)
    session_id, transaction_id, tag = await _charging(core, raw, 0)
    assert (await raw.call("StopTransaction", stop_payload(transaction_id, 2**40 + 5, tag)))[2]["idTagInfo"][
        "status"
    ] == "Accepted"
    await core.wait_local(session_id, State.HELD, timeout=5)
    source = ServiceDashboardSource(core.daemon.service, net.w3, net.deployment, net.operator.address)
    [row] = [r for r in source.problems() if r.session_id == hex_session_id(session_id)]
    assert row.state == "held" and str(2**40 + 5) in row.reason  # the dashboard lists it
    seen = await ReadingsSource(core.daemon.service.live).session(session_id)  # what the driver's live view gets
    assert seen is not None and seen.state == "held" and str(2**40 + 5) in seen.held

    driver = await funded_driver(net, 0)
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)  # accepted on chain
    await until(lambda: core.local(session_id).stop_wanted == "driver", 10, "the driver's stop noted")
    assert any("driver asked to stop" in r.getMessage() and "HELD" in r.getMessage() for r in caplog.records)

    await asyncio.to_thread(net.time_travel, net.deployment.max_duration + net.deployment.reclaim_grace + 1)
    await asyncio.to_thread(net.escrow(driver).reclaim, session_id)
    await core.wait_local(session_id, State.RECLAIMED, timeout=10)
    assert core.daemon.health()["held_sessions"] == []
    assert not [r for r in source.problems() if r.session_id == hex_session_id(session_id) and r.state == "held"]
    assert core.daemon.store.job(JobKind.SETTLE, session_id) is None  # nothing billed, ever
