"""Proxy mode's outbox: order, exactly-once removal, offline ids and the id map survive a restart (on
both engines: a SQLite file and a real PostgreSQL), and a restarted relay delivers what an earlier one
queued to the real ocpp-rpc CSMS."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from ocpp.messages import Call

from core_client.proxy.outbox import Outbox
from core_client.proxy.policy import OFFLINE_ID_BASE
from tools.harness.upstream_relay import ChargePoint, Csms, Relay, meter, settings, start, until


def test_calls_come_back_per_charge_point_in_the_order_queued_and_leave_once_delivered(db_location):
    outbox = Outbox(db_location)
    for n in range(3):
        outbox.append("CP-1", Call(f"a{n}", "MeterValues", meter(1, n)))
        outbox.append("CP-2", Call(f"b{n}", "MeterValues", meter(2, n)))
    assert [e.call.unique_id for e in outbox.pending("CP-1")] == ["a0", "a1", "a2"]
    first = outbox.first("CP-2")
    assert first is not None and (first.call.unique_id, first.call.payload) == ("b0", meter(2, 0))
    outbox.delivered(first)
    outbox.delivered(first)  # a second removal of the same entry changes nothing
    assert [e.call.unique_id for e in outbox.pending()] == ["a0", "a1", "b1", "a2", "b2"]  # the order queued
    outbox.close()


def test_offline_ids_and_the_csms_ids_they_map_to_survive_a_restart(db_location):
    outbox = Outbox(db_location)
    ids = [outbox.new_offline_id("CP-1"), outbox.new_offline_id("CP-2")]
    assert ids == [OFFLINE_ID_BASE, OFFLINE_ID_BASE + 1]
    outbox.append("CP-1", Call("s", "StartTransaction", start("CARD-1")), ids[0])
    outbox.append("CP-1", Call("m", "MeterValues", meter(ids[0], 5)))
    outbox.close()

    outbox = Outbox(db_location)
    assert outbox.new_offline_id("CP-1") == OFFLINE_ID_BASE + 2  # never handed out twice
    entry = outbox.first("CP-1")
    assert entry is not None and entry.offline_transaction_id == ids[0]
    outbox.delivered(entry, csms_transaction_id=1001)
    outbox.close()

    outbox = Outbox(db_location)
    assert outbox.csms_ids("CP-1") == {ids[0]: 1001} and outbox.csms_ids("CP-2") == {}
    assert [e.call.action for e in outbox.pending("CP-1")] == ["MeterValues"]
    outbox.close()


def test_removal_and_the_id_map_are_one_transaction(db_location):
    outbox = Outbox(db_location)
    outbox.append("CP-1", Call("s", "StartTransaction", start("CARD-1")), OFFLINE_ID_BASE)
    entry = outbox.first("CP-1")
    outbox.db.execute("DROP TABLE upstream_transactions")  # the id map cannot be written
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.UndefinedTable)):
        outbox.delivered(entry, csms_transaction_id=1001)
    assert outbox.first("CP-1").seq == entry.seq  # still queued: it goes again rather than lose its id
    outbox.close()


async def test_a_restarted_relay_delivers_what_the_last_one_queued_and_keeps_rewriting_ids(tmp_path):
    csms = Csms(tmp_path / "csms.jsonl")  # not started yet: the CSMS is down
    config = settings(csms)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    relay = await Relay(config, outbox).start()
    async with ChargePoint(relay.url, "CP-1") as cp:
        offline_id = (await cp.call("StartTransaction", start("CARD-1")))["transactionId"]
        await cp.call("MeterValues", meter(offline_id, 1200))
    await relay.close()
    outbox.close()  # the Core Client stops

    await csms.start()
    try:
        for _ in range(2):  # each time a new relay process would start from the same file
            outbox = Outbox(tmp_path / "outbox.sqlite")
            relay = await Relay(config, outbox).start()
            async with ChargePoint(relay.url, "CP-1") as cp:
                await until(lambda box=outbox: not box.pending("CP-1"))
                await cp.call("MeterValues", meter(offline_id, 1400))
            await relay.close()
            outbox.close()
        received = [(r["method"], r["params"].get("transactionId")) for r in csms.received("CP-1")]
        assert received == [("StartTransaction", None), *[("MeterValues", 1001)] * 3]
        assert len({r["messageId"] for r in csms.received()}) == 4
    finally:
        await csms.stop()
