"""Proxy mode when the CSMS goes away (killed, slow): the charge point keeps being answered, and what it
sent meanwhile reaches the real ocpp-rpc CSMS in order, once, with the CSMS's transaction ids."""

from __future__ import annotations

import time

from core_client.proxy.policy import OFFLINE_ID_BASE
from tools.harness.upstream_relay import ChargePoint, meter, running_proxy, start, status, stop, until


async def test_csms_killed_mid_session_and_back_nothing_lost_order_kept_no_duplicates(tmp_path):
    async with running_proxy(tmp_path) as (csms, relay), ChargePoint(relay.url, "CP-1") as cp:
        await cp.call("BootNotification", {"chargePointVendor": "EVN", "chargePointModel": "Proxy"})
        assert (await cp.call("StartTransaction", start("CARD-1")))["transactionId"] == 1001
        await cp.call("MeterValues", meter(1001, 1200))
        await csms.stop()

        began = time.monotonic()
        offline = [
            ("MeterValues", meter(1001, 1400)),  # the session the CSMS knows goes on and ends
            ("StopTransaction", stop(1001, 1500)),
            ("StatusNotification", status("Available")),
            ("Authorize", {"idTag": "CARD-2"}),  # a card only the CSMS can judge
            ("StartTransaction", start("CARD-2", 3000)),
        ]
        answers = [await cp.call(action, payload) for action, payload in offline]
        offline_id = answers[4]["transactionId"]
        assert offline_id >= OFFLINE_ID_BASE
        assert answers[3] == {"idTagInfo": {"status": "Accepted"}}  # offline_id_tags = accept
        assert answers[4]["idTagInfo"] == {"status": "Accepted"}
        later = [("MeterValues", meter(offline_id, 3300)), ("Authorize", {"idTag": "EVN4"})]
        answers += [await cp.call(action, payload) for action, payload in later]
        assert answers[-1] == {"idTagInfo": {"status": "Accepted"}}  # chain tags need no CSMS
        assert (await cp.call("Heartbeat", {}))["currentTime"]
        assert time.monotonic() - began < 8  # one response timeout (2 s) at most, then local answers

        await csms.start()  # same port, same log: the CSMS is back
        await until(lambda: not relay.outbox.pending("CP-1"))
        after = csms.received("CP-1")[3:]
        expected = [(a, p) for a, p in offline + later]
        expected[5] = ("MeterValues", meter(1002, 3300))  # rewritten to the id the CSMS gave the start
        assert [(r["method"], r["params"]) for r in after] == expected  # no Heartbeat: nothing to record

        csms.command(cmd="call", identity="CP-1", method="RemoteStopTransaction", params={"transactionId": 1002})
        assert (await csms.event("result"))["result"] == {"status": "Accepted"}
        assert cp.received[-1].payload == {"transactionId": offline_id}  # the id the charge point knows
        await cp.call("StopTransaction", stop(offline_id, 3600))
    received = csms.received("CP-1")
    assert received[-1]["params"]["transactionId"] == 1002
    ids = [r["messageId"] for r in received]
    assert len(ids) == len(set(ids)) == 3 + len(expected) + 1


async def test_a_slow_csms_the_charge_point_is_answered_locally_and_the_late_answer_is_not_sent_twice(tmp_path):
    async with running_proxy(tmp_path, response_timeout_s=1) as (csms, relay):
        async with ChargePoint(relay.url, "CP-1") as cp:
            await cp.call("Heartbeat", {})
            csms.command(cmd="delay", ms=3000)
            await csms.event("delay")
            began = time.monotonic()
            started = await cp.call("StartTransaction", start("CARD-1"))
            assert time.monotonic() - began < 2.5  # the charge point waited one response timeout, not 3 s
            assert started["transactionId"] >= OFFLINE_ID_BASE
            csms.command(cmd="delay", ms=0)
            began = time.monotonic()
            await cp.call("StopTransaction", stop(started["transactionId"], 1700))  # queued behind the start
            assert time.monotonic() - began < 0.5  # not held up while the late answer to the start is awaited
            await until(lambda: not relay.outbox.pending("CP-1"))
        assert [(r["method"], r["params"].get("transactionId")) for r in csms.received("CP-1")] == [
            ("Heartbeat", None),
            ("StartTransaction", None),
            ("StopTransaction", 1001),  # the id of the late answer
        ]
        assert relay.upstreams["CP-1"].csms_transaction_id(started["transactionId"]) == 1001


async def test_a_csms_silent_past_resend_after_gets_the_call_again_under_its_original_message_id(tmp_path):
    async with running_proxy(tmp_path, response_timeout_s=0.5, resend_after_s=1) as (csms, relay):
        async with ChargePoint(relay.url, "CP-1") as cp:
            await cp.call("Heartbeat", {})
            csms.command(cmd="delay", ms=2500)
            await csms.event("delay")
            started = await cp.call("StartTransaction", start("CARD-1"))
            csms.command(cmd="delay", ms=0)
            await cp.call("StopTransaction", stop(started["transactionId"], 1700))
            await until(lambda: not relay.outbox.pending("CP-1"))
        first, again, stopped = csms.received("CP-1")[1:]
        assert (first["method"], again["method"], first["messageId"]) == ("StartTransaction",) * 2 + (
            again["messageId"],
        )
        assert [e["kind"] for e in csms.received("CP-1", ("connect", "disconnect"))][:3] == [
            "connect",
            "disconnect",
            "connect",
        ]
        csms_id = relay.upstreams["CP-1"].csms_transaction_id(started["transactionId"])
        assert stopped["method"] == "StopTransaction" and stopped["params"]["transactionId"] == csms_id


async def test_a_second_connection_of_the_same_charge_point_takes_over_the_backlog_without_sending_it_twice(tmp_path):
    states = ["Preparing", "Charging", "SuspendedEV", "Finishing", "Available"] * 4
    async with running_proxy(tmp_path) as (csms, relay):
        await csms.stop()
        async with ChargePoint(relay.url, "CP-1") as old:
            for state in states:
                await old.call("StatusNotification", status(state))
            async with ChargePoint(relay.url, "CP-1") as new:  # the charge point reconnected; the old socket lingers
                await new.call("StatusNotification", status("Unavailable"))
                await csms.start()
                csms.command(cmd="delay", ms=20)  # slow enough for two deliverers to overlap, were there two
                await until(lambda: not relay.outbox.pending("CP-1"))
        received = csms.received("CP-1")
        assert [r["params"]["status"] for r in received] == [*states, "Unavailable"]
        assert len({r["messageId"] for r in received}) == len(states) + 1
