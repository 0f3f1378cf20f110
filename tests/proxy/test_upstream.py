"""Proxy mode's upstream against a real CSMS: ocpp-rpc's RPCServer in strict mode (an OCPP 1.6
implementation that is not ours), a real relay in the Core Client's place and real websocket charge points."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.harness.interop import CHARGE_POINT as OCPP_RPC_CP
from tools.harness.interop import next_event
from tools.harness.upstream_relay import ChargePoint, Csms, Relay, meter, running_proxy, start, status, stop, until


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[tuple[Csms, Relay]]:
    async with running_proxy(tmp_path) as both:
        yield both


async def test_every_call_reaches_the_csms_in_order_with_its_message_id_and_its_answers_come_back(proxy):
    csms, relay = proxy
    async with ChargePoint(relay.url, "CP-1") as cp:
        sent = [
            ("BootNotification", {"chargePointVendor": "EVN", "chargePointModel": "Proxy"}),
            ("Heartbeat", {}),
            ("StatusNotification", status("Available")),
            ("Authorize", {"idTag": "CARD-1"}),
            ("StartTransaction", start("CARD-1")),
            ("MeterValues", meter(1001, 1500)),
            ("StopTransaction", stop(1001, 1800)),
            ("DataTransfer", {"vendorId": "com.example"}),
        ]
        answers = [await cp.call(action, payload) for action, payload in sent]
    assert answers[0]["status"] == "Accepted" and answers[0]["interval"] == 300
    assert answers[3] == {"idTagInfo": {"status": "Accepted"}}  # the CSMS's card, the CSMS's answer
    assert answers[4] == {"transactionId": 1001, "idTagInfo": {"status": "Accepted"}}  # the CSMS's id
    assert answers[7] == {"status": "Accepted"}  # the CSMS's (the Core Client alone says UnknownVendorId)
    received = csms.received("CP-1")
    assert [(r["method"], r["params"]) for r in received] == sent
    assert len({r["messageId"] for r in received}) == len(sent)


async def test_an_ev_network_tag_is_answered_from_the_chain_but_the_csms_sees_it_and_names_the_transaction(proxy):
    csms, relay = proxy
    async with ChargePoint(relay.url, "CP-1") as cp:
        authorized = await cp.call("Authorize", {"idTag": "EVN7"})
        started = await cp.call("StartTransaction", start("EVN7"))
    assert authorized == {"idTagInfo": {"status": "Accepted"}}  # the CSMS said Invalid: a tag it never issued
    assert started == {"transactionId": 1001, "idTagInfo": {"status": "Accepted"}}
    assert [(r["method"], r["params"].get("idTag")) for r in csms.received()] == [
        ("Authorize", "EVN7"),
        ("StartTransaction", "EVN7"),
    ]


async def test_a_csms_remote_start_reaches_the_charge_point_and_its_answer_returns_but_the_core_clients_own_do_not(
    proxy,
):
    csms, relay = proxy
    async with ChargePoint(relay.url, "CP-1") as cp:
        await cp.call("Heartbeat", {})  # connected through to the CSMS
        cp.answers["RemoteStartTransaction"] = {"status": "Rejected"}
        csms.command(cmd="call", identity="CP-1", method="RemoteStartTransaction", params={"idTag": "CARD-9"})
        assert (await csms.event("result"))["result"] == {"status": "Rejected"}
        [remote_start] = cp.received
        assert (remote_start.action, remote_start.payload) == ("RemoteStartTransaction", {"idTag": "CARD-9"})

        cp.answers["RemoteStartTransaction"] = {"status": "Accepted"}
        own = await relay.call("CP-1", "RemoteStartTransaction", {"connectorId": 1, "idTag": "EVN3"})
        assert own.payload == {"status": "Accepted"} and len(cp.received) == 2
        await cp.call("Heartbeat", {})  # the CSMS has had time to see a stray answer, were one sent
    assert [r["result"] for r in csms.received(kinds=("result",))] == [{"status": "Rejected"}]
    assert not csms.received(kinds=("error",))


async def test_the_csms_connection_opens_and_closes_with_the_charge_points(proxy):
    csms, relay = proxy
    async with ChargePoint(relay.url, "CP-1") as cp:
        await cp.call("Heartbeat", {})
    await until(lambda: len(csms.received(kinds=("disconnect",))) == 1)
    async with ChargePoint(relay.url, "CP-1") as cp:
        await cp.call("Heartbeat", {})
    await until(lambda: len(csms.received(kinds=("disconnect",))) == 2)
    kinds = [r["kind"] for r in csms.received("CP-1", kinds=("connect", "disconnect", "call"))]
    assert kinds == ["connect", "call", "disconnect", "connect", "call", "disconnect"]


async def test_credentials_per_charge_point_or_passed_through_and_a_refusing_csms_does_not_cut_the_charge_point_off(
    tmp_path,
):
    passwords = {"CP-1": "upstream-pw", "CP-2": "cp-secret"}
    credentials = {"CP-1": "upstream-pw", "CP-3": "wrong"}
    async with running_proxy(tmp_path, passwords, credentials=credentials) as (csms, relay):
        for cp_id in ("CP-1", "CP-2", "CP-3"):  # configured; passed through (its own password); refused (401)
            async with ChargePoint(relay.url, cp_id, password="cp-secret") as cp:
                answer = await cp.call("StatusNotification", status("Available"), timeout=5)
                assert answer == {}
        assert [r["identity"] for r in csms.received()] == ["CP-1", "CP-2"]
        assert [e.call.action for e in relay.outbox.pending("CP-3")] == ["StatusNotification"]  # kept for later


async def test_an_ocpp_rpc_charge_point_runs_a_csms_session_through_the_proxy_strict_on_both_ends(tmp_path):
    """Both ends are ocpp-rpc in strict mode (every frame checked against the OCPP 1.6 schemas)."""
    async with running_proxy(tmp_path) as (csms, relay):
        node = await asyncio.create_subprocess_exec(
            "node", str(OCPP_RPC_CP), relay.url, "CP-RPC", "cp-secret", stdout=asyncio.subprocess.PIPE
        )
        try:
            assert (await next_event(node.stdout, "boot"))["status"] == "Accepted"
            await next_event(node.stdout, "ready")
            params = {"connectorId": 1, "idTag": "CARD-7"}
            csms.command(cmd="call", identity="CP-RPC", method="RemoteStartTransaction", params=params)
            assert (await csms.event("result"))["result"] == {"status": "Accepted"}
            started = await next_event(node.stdout, "started")
            assert (started["transactionId"], started["status"]) == (1001, "Accepted")  # the CSMS's id and verdict
            await next_event(node.stdout, "stopped")
            assert await asyncio.wait_for(node.wait(), 10) == 0
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
        received = csms.received("CP-RPC")
        assert [r["method"] for r in received] == [
            "BootNotification",
            "Heartbeat",
            *["StatusNotification"] * 2,
            "StartTransaction",
            "StatusNotification",
            *["MeterValues"] * 3,
            "StopTransaction",
            "StatusNotification",
        ]
        assert {r["params"]["transactionId"] for r in received if "transactionId" in r["params"]} == {1001}
        assert not csms.received(kinds=("error",))
