"""A metered station whose key the daemon cannot read yet (restarted while the chain is down) is not
treated as plain (issue 19): a session stopped then waits, neither settled plain (the escrow would
refuse it: MeterSignatureRequired) nor held, and settles through the signed path once the key is read.
Real Anvil behind a pausable proxy, the real daemon twice on one database, a bare OCPP client whose
meter records are signed here (an independent signer)."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core_client.daemon import Daemon
from core_client.sessions.jobs import JobKind
from core_client.sessions.machine import State
from core_client.sessions.metering import BEGIN, END
from ev_network.contracts import SessionState
from ev_network.ocmf import session_id_tag
from tools.devchain import ChainProxy
from tools.harness.chain import TOKEN
from tools.harness.core import (
    PASSWORD,
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    ocmf_record,
    open_session,
    settings_for,
    signed_value,
    until,
    wait_chain,
)

DEPOSIT = 20 * TOKEN


@pytest.mark.issue(19)
async def test_a_stop_while_the_meter_key_is_unknown_waits_and_settles_signed_once_the_key_is_read(
    clean_chain, tmp_path, keyfile
):
    net = clean_chain
    [cp] = cp_ids("CPKEYWAIT")
    meter = ec.generate_private_key(ec.SECP256R1())
    der = meter.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    await asyncio.to_thread(net.escrow(net.operator).set_meter_public_key, station_id, der)
    proxy = ChainProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    await proxy.resume()
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw-keywait"}, rpc_url=proxy.url)

    first = Daemon(settings, PASSWORD)
    await first.start()
    try:
        url = f"ws://127.0.0.1:{first.ocpp.address[1]}"
        raw = await RawCP.connect(url, cp, "pw-keywait")
        assert (await raw.boot())[2]["status"] == "Accepted"
        driver = await funded_driver(net, 3)
        session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
        tag = (await raw.next_call("RemoteStartTransaction", timeout=15))[3]["idTag"]
        assert tag == session_id_tag(session_id)
        start = {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": now_iso()}
        transaction_id = (await raw.call("StartTransaction", start))[2]["transactionId"]
        begin = signed_value(ocmf_record(meter, tag, "B", "1000"), BEGIN)
        meter_values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [begin]}
        assert (await raw.call("MeterValues", meter_values))[2] == {}
        await wait_chain(net, session_id, SessionState.ACTIVE)
        await raw.close()
    finally:
        await first.stop(drain_timeout=5)

    await proxy.pause()  # the chain goes down; the daemon restarts without it
    second = Daemon(settings, PASSWORD)
    await asyncio.wait_for(second.start(), 10)
    try:
        url = f"ws://127.0.0.1:{second.ocpp.address[1]}"
        raw = await RawCP.connect(url, cp, "pw-keywait")
        assert (await raw.boot())[2]["status"] == "Accepted"  # a station it knows
        end = signed_value(ocmf_record(meter, tag, "E", "1500", page="T8"), END)
        stop = {"transactionId": transaction_id, "meterStop": 1500, "timestamp": now_iso(), "idTag": tag}
        answer = await raw.call("StopTransaction", {**stop, "transactionData": [end]}, timeout=5)
        assert answer[2]["idTagInfo"]["status"] == "Accepted"
        # decided in the handler, before the answer: neither a plain settle queued nor held
        assert second.store.job(JobKind.SETTLE, session_id) is None
        assert second.service.session(session_id).state is State.CHARGING
        assert (await raw.call("StopTransaction", stop, timeout=5))[2]["idTagInfo"]["status"] == "Accepted"  # repeat

        await proxy.resume()
        await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
        await until(lambda: second.service.session(session_id).state is State.SETTLED, 10, "settled locally")
        [settled] = chain_events(net, "SessionSettled", session_id)
        escrow = net.escrow()
        signed = await asyncio.to_thread(escrow.signed_settlement_of, settled.tx_hash, session_id)
        assert signed is not None and signed[1] == 1500  # the signed path, at the signed End reading
        assert second.store.job(JobKind.SETTLE, session_id).last_error is None
        await raw.close()
    finally:
        await second.stop(drain_timeout=5)
        await proxy.pause()
