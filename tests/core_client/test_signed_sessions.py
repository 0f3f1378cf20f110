"""The Core Client on the signed path (issue 12), end to end: real Anvil, the real daemon, the simulator's
signing meter. A station with a meter key settles exactly the signed energy through settleSigned; records
that fail are caught before any transaction (the session is held, /health names the charge point); a
station without a key settles the plain way."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core_client.sessions.jobs import JobKind
from core_client.sessions.machine import State
from core_client.sessions.metering import BEGIN, END
from ev_network.contracts import SessionState
from ev_network.ocmf import Reason, parse, session_id_tag
from ev_network.pricing import price
from simulator.charge_point import Behaviour
from simulator.meter import SigningMeter
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    Core,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    ocmf_record,
    open_session,
    running_core,
    signed_value,
    wait_chain,
)
from wallet.invoice import build_invoice, render_text

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)
DEPOSIT = 20 * TOKEN


@pytest.fixture
async def core(clean_chain, tmp_path, keyfile) -> AsyncIterator[Core]:
    signing, tampering, plain = cp_ids("CPSIG", "CPTAMPER", "CPPLAIN")
    net = clean_chain
    async with running_core(net, tmp_path, keyfile, {signing: 2, tampering: 2, plain: 2}) as running:
        for cp in (signing, tampering):  # the operator registers the meters' keys (before they connect)
            key = SigningMeter.for_charge_point(cp).public_key_der
            await asyncio.to_thread(net.escrow(net.operator).set_meter_public_key, running.stations[cp], key)
        running.signing, running.tampering, running.plain = signing, tampering, plain  # type: ignore[attr-defined]
        yield running


async def health(core: Core) -> dict:
    def get() -> dict:
        with urllib.request.urlopen(f"{core.control_url}/health", timeout=5) as response:
            return json.loads(response.read())

    return await asyncio.to_thread(get)  # the daemon answers on this event loop


async def charge(core: Core, cp: str, mode: str | None) -> tuple[int, object]:
    """A driver's app-started session at ``cp`` (its meter in ``mode``), charged a little and stopped."""
    driver = await funded_driver(core.net, 0)
    sim = await core.connect(cp, replace(FAST, signing_meter=mode))
    session_id = await open_session(core.net, driver, core.stations[cp], 1, DEPOSIT)
    await sim.wait_for_transaction(1, timeout=10)
    await wait_chain(core.net, session_id, SessionState.ACTIVE)
    await asyncio.sleep(0.5)
    assert sim.connector(1).id_tag == (session_id_tag(session_id) if mode else core.local(session_id).id_tag)
    return session_id, await sim.stop(1)


async def test_signed_session_settles_exactly_the_signed_energy(core: Core):
    session_id, stop = await charge(core, core.signing, "signed")
    await wait_chain(core.net, session_id, SessionState.SETTLED)
    [settled] = chain_events(core.net, "SessionSettled", session_id)
    kept = core.daemon.store.meter_records(session_id)  # the records stay with the session
    begin, end = parse(kept[BEGIN]), parse(kept[END])
    first, last = begin.reading(Reason.BEGIN).wh, end.reading(Reason.END).wh
    assert settled.args["meterStart"] == first and settled.args["meterStop"] == last == stop.meter_stop
    assert last - first > 0 and settled.args["cost"] == price(TARIFF, last - first)
    escrow = core.net.escrow()
    signed = await asyncio.to_thread(escrow.signed_settlement_of, settled.tx_hash, session_id)
    assert signed is not None and [r[0] for r in signed[2]] == [begin.payload, end.payload]
    local = await core.wait_local(session_id, State.SETTLED)
    assert local.meter_start == first and local.energy_wh == last - first
    report = await health(core)
    assert core.stations[core.signing] in report["signing_stations"] and not report["meter_problems"]
    inv = await asyncio.to_thread(build_invoice, core.net.w3, core.net.deployment, session_id)  # the driver's
    assert (
        inv.meter_proof is not None
        and inv.meter_proof.verified
        and parse(inv.meter_proof.end.record).payload == end.payload
    )
    assert "Meter     VERIFIED" in render_text(inv)


async def test_signed_sessions_stopped_together_settle_in_one_signed_batch(core: Core):
    drivers = [await funded_driver(core.net, i) for i in (1, 2)]
    sim = await core.connect(core.signing, replace(FAST, signing_meter="signed"))
    station = core.stations[core.signing]
    sessions = [await open_session(core.net, d, station, n, DEPOSIT) for n, d in enumerate(drivers, 1)]
    for n, session_id in enumerate(sessions, 1):
        await sim.wait_for_transaction(n, timeout=10)
        await wait_chain(core.net, session_id, SessionState.ACTIVE)
    await asyncio.sleep(0.5)
    stops = await asyncio.gather(sim.stop(1), sim.stop(2))
    escrow = core.net.escrow()
    hashes = set()
    for session_id, stop in zip(sessions, stops, strict=True):
        await wait_chain(core.net, session_id, SessionState.SETTLED)
        [settled] = chain_events(core.net, "SessionSettled", session_id)
        assert settled.args["meterStop"] == stop.meter_stop
        assert await asyncio.to_thread(escrow.signed_settlement_of, settled.tx_hash, session_id) is not None
        hashes.add(settled.tx_hash)
    assert len(hashes) == 1  # settleSignedBatch


@pytest.mark.parametrize("mode", ["tampered", "unsigned"])
async def test_bad_records_are_caught_before_any_transaction(core: Core, mode: str):
    session_id, _ = await charge(core, core.tampering, mode)
    local = await core.wait_local(session_id, State.HELD)
    assert local.last_error.startswith("meter records refused")
    await core.wait_idle()
    assert core.daemon.store.job(JobKind.SETTLE, session_id) is None  # nothing queued: no gas spent
    assert (await asyncio.to_thread(core.net.escrow().get_session, session_id)).state is SessionState.ACTIVE
    assert chain_events(core.net, "SessionSettled", session_id) == []
    problems = (await health(core))["meter_problems"]
    assert list(problems) == [core.tampering] and problems[core.tampering]["error"]


async def test_station_without_a_meter_key_settles_the_plain_way(core: Core):
    session_id, stop = await charge(core, core.plain, None)
    await wait_chain(core.net, session_id, SessionState.SETTLED)
    [settled] = chain_events(core.net, "SessionSettled", session_id)
    assert settled.args["meterStop"] == stop.meter_stop
    escrow = core.net.escrow()
    assert await asyncio.to_thread(escrow.signed_settlement_of, settled.tx_hash, session_id) is None
    assert core.daemon.store.meter_records(session_id) == {}
    assert core.stations[core.plain] not in (await health(core))["signing_stations"]


# ----------------------------------------- issue 17 #3: absurd numbers and nesting in signed records


@pytest.mark.issue(17, item=3)
async def test_absurd_signed_records_hold_the_session_at_once_and_deep_nesting_is_a_formation_violation(
    clean_chain, tmp_path, keyfile
):
    """A validly signed End record with RV 1E+999999 Wh (froze the daemon for 75 s, then InternalError)
    or a pagination of 5,000 digits: answered at once, the session held, the meter in /health; JSON
    nested 100,000 deep in a signed value: FormationViolation."""
    [cp] = cp_ids("CPABSURD")
    meter = ec.generate_private_key(ec.SECP256R1())
    der = meter.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    async with running_core(clean_chain, tmp_path, keyfile, {cp: 2}) as core:
        await asyncio.to_thread(core.net.escrow(core.net.operator).set_meter_public_key, core.stations[cp], der)
        raw = await core.raw(cp)
        for connector, (rv, page) in enumerate((("1E+999999", "T8"), ("20", "T" + "9" * 5_000)), 1):
            driver = await funded_driver(core.net, connector)
            session_id = await open_session(core.net, driver, core.stations[cp], connector, DEPOSIT)
            tag = (await raw.next_call("RemoteStartTransaction"))[3]["idTag"]
            assert tag == session_id_tag(session_id)
            start = {"connectorId": connector, "idTag": tag, "meterStart": 10, "timestamp": now_iso()}
            transaction_id = (await raw.call("StartTransaction", start))[2]["transactionId"]
            begin = signed_value(ocmf_record(meter, tag, "B", "10"), BEGIN)
            meter_values = {"connectorId": connector, "transactionId": transaction_id, "meterValue": [begin]}
            assert (await raw.call("MeterValues", meter_values))[2] == {}
            end = signed_value(ocmf_record(meter, tag, "E", rv, page=page), END)
            stop = {"transactionId": transaction_id, "meterStop": 20, "timestamp": now_iso(), "idTag": tag}
            stop["transactionData"] = [end]
            answer = await raw.call("StopTransaction", stop, timeout=3)
            assert answer[2]["idTagInfo"]["status"] == "Accepted", answer
            held = await core.wait_local(session_id, State.HELD, timeout=3)
            assert held.last_error.startswith("meter records refused") and len(held.last_error) < 300
            assert core.daemon.store.job(JobKind.SETTLE, session_id) is None
            assert cp in (await health(core))["meter_problems"]
        deep = signed_value('{"signedMeterData":' + "[" * 100_000 + "]" * 100_000 + "}", BEGIN)
        meter_values = {"connectorId": 1, "meterValue": [deep]}
        answer = await raw.call("MeterValues", meter_values, timeout=3)
        assert answer[:3] == [4, answer[1], "FormationViolation"], answer[:4]
        assert "currentTime" in (await raw.call("Heartbeat", {}, timeout=1))[2]
