"""The simulator's signing meter over real OCPP websockets: what a central system receives verifies
against the meter's key (and only that key), in each of the meter's modes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.bare_central import BareCentral, BareChargePoint
from ev_network.ocmf import OCMFError, Reason, parse, session_id_tag, signed_record, signed_settlement, verify
from simulator.charge_point import Behaviour, SimChargePoint
from simulator.meter import SigningMeter
from tools.harness.simulator import FAST, eventually

SESSION_ID = 0x70997970C51812DC3A010C7D01B50E0D17DC79C8 << 96 | 3


def signed_values(peer: BareChargePoint, transaction_id: int) -> tuple[list[dict], list[dict]]:
    """(SignedData samples of MeterValues, SignedData samples of StopTransaction's transactionData)."""
    metered = [
        s
        for p in peer.of("MeterValues")
        if p.get("transaction_id") == transaction_id
        for reading in p["meter_value"]
        for s in reading["sampled_value"]
        if s.get("format") == "SignedData"
    ]
    [stop] = [p for p in peer.of("StopTransaction") if p["transaction_id"] == transaction_id]
    ended = [
        s for reading in stop["transaction_data"] for s in reading["sampled_value"] if s.get("format") == "SignedData"
    ]
    return metered, ended


async def charge(central: BareCentral, cp_id: str, mode: str | None) -> tuple[list[dict], list[dict], int]:
    behaviour: Behaviour = replace(FAST, signing_meter=mode)
    cp = await SimChargePoint.connect(f"ws://127.0.0.1:{central.port}", cp_id, "pw", behaviour=behaviour)
    transaction_id = await cp.start_local(1, session_id_tag(SESSION_ID))
    peer = central.charge_points[cp_id]
    await eventually(lambda: len(peer.of("MeterValues")) >= 3)
    record = await cp.stop(1)
    await cp.close()
    assert record is not None
    metered, ended = signed_values(peer, transaction_id)
    return metered, ended, record.meter_stop


async def test_signed_meter_sends_begin_and_end_that_verify_and_settle(central: BareCentral) -> None:
    metered, ended, meter_stop = await charge(central, "CP-SIGNING", "signed")
    assert [s["context"] for s in metered] == ["Transaction.Begin"]
    assert [s["context"] for s in ended] == ["Transaction.End"]
    key = SigningMeter.for_charge_point("CP-SIGNING").public_key_der  # what the operator registers
    begin, end = parse(metered[0]["value"]), parse(ended[0]["value"])
    for record in (begin, end):
        verify(record, key)
        assert record.identification == session_id_tag(SESSION_ID)
    peer = central.charge_points["CP-SIGNING"]
    all_metered = [reading for p in peer.of("MeterValues") for reading in p["meter_value"]]
    [stop] = peer.of("StopTransaction")
    assert signed_record(all_metered, "Transaction.Begin") == begin  # how a central system finds them
    assert signed_record(stop["transaction_data"], "Transaction.End") == end
    assert signed_record(stop["transaction_data"], "Transaction.Begin") is None
    settlement = signed_settlement(SESSION_ID, begin, end, key)
    assert settlement[1] == end.reading(Reason.END).wh == meter_stop  # the signed End is the OCPP meterStop
    assert end.reading(Reason.END).wh - begin.reading(Reason.BEGIN).wh >= 200


@pytest.mark.parametrize("mode", ["tampered", "foreign"])
async def test_tampered_and_foreign_key_records_fail_verification(central: BareCentral, mode: str) -> None:
    metered, ended, _ = await charge(central, f"CP-{mode.upper()}", mode)
    key = SigningMeter.for_charge_point(f"CP-{mode.upper()}").public_key_der
    begin, end = parse(metered[0]["value"]), parse(ended[0]["value"])
    with pytest.raises(OCMFError, match="not signed by the registered meter key"):
        verify(end, key)
    with pytest.raises(OCMFError):
        signed_settlement(SESSION_ID, begin, end, key)


async def test_unsigned_meter_and_plain_charge_points_send_no_signed_values(central: BareCentral) -> None:
    for cp_id, mode in (("CP-UNSIGNED", "unsigned"), ("CP-PLAIN", None)):
        metered, ended, _ = await charge(central, cp_id, mode)
        assert (metered, ended) == ([], [])
