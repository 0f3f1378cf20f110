"""No proof, no pay, on a real Anvil: a station with a registered meter key settles only on OCMF Begin and
End records its meter signed (P256VERIFY at 0x100), billed on the signed readings; every way a record
can be wrong reverts with its own custom error and moves no token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ev_network.contracts import SessionState
from ev_network.ocmf import (
    CURVE_ORDER,
    OCMFError,
    Reason,
    meter_record,
    parse,
    registry_key,
    session_id_tag,
    signed_settlement,
    verify_settled,
)
from ev_network.pricing import price
from simulator.meter import MeterMode, SigningMeter
from tools.harness.chain import ESCROW_DEPOSIT, TARIFF, Env
from tools.harness.contracts import events, latest_timestamp, reverts

BEGIN_WH = 1_234_567  # 1234.567 kWh on the meter register


@dataclass
class Metered:
    env: Env
    station: int
    meter: SigningMeter

    def session(self) -> int:
        return self.env.active(meter_start=BEGIN_WH, station=self.station)

    def records(self, session_id: int, energy_wh: int, meter: SigningMeter | None = None, end_wh: int | None = None):
        """The session's signed (Begin, End) records, parsed."""
        meter, tag = meter or self.meter, session_id_tag(session_id)
        begin = parse(meter.record(Reason.BEGIN, BEGIN_WH, tag))
        end = parse(meter.record(Reason.END, BEGIN_WH + energy_wh if end_wh is None else end_wh, tag))
        return begin, end

    def settlement(self, session_id: int, begin, end, meter_stop: int | None = None) -> tuple:
        """A SignedSettlement without the Python-side checks (to reach the contract's own)."""
        stop = end.reading(Reason.END).wh if meter_stop is None else meter_stop
        return (session_id, stop, [meter_record(begin, Reason.BEGIN), meter_record(end, Reason.END)])

    def operator(self):
        return self.env.net.escrow(self.env.net.operator)


@pytest.fixture
def metered(env: Env) -> Metered:
    meter = SigningMeter.for_charge_point("CP-METERED")
    escrow = env.net.escrow(env.net.operator)
    station = escrow.station_id_from(escrow.add_station("CP-METERED", 2, TARIFF, meter.public_key_der))
    return Metered(env, station, meter)


def test_escrow_and_python_agree_on_the_session_id_tag(metered: Metered) -> None:
    session_id = metered.session()
    tag = session_id_tag(session_id)
    assert metered.env.net.escrow().session_id_tag(session_id) == tag
    assert len(tag) == 20 and tag.startswith("EV")


def test_a_signed_session_settles_with_exactly_the_signed_energy(metered: Metered) -> None:
    env, net = metered.env, metered.env.net
    session_id = metered.session()
    begin, end = metered.records(session_id, 12_345)
    key = net.escrow().get_station(metered.station).meter_public_key  # the key as registered on chain
    before = env.balances()
    receipt = metered.operator().settle_signed(signed_settlement(session_id, begin, end, key))
    (settled,) = events(net.escrow(), receipt, "SessionSettled")
    cost = price(TARIFF, 12_345)
    assert (settled["meterStart"], settled["meterStop"]) == (BEGIN_WH, BEGIN_WH + 12_345)
    assert (settled["cost"], settled["refund"]) == (cost, ESCROW_DEPOSIT - cost)
    after = env.balances()
    assert after["payout"] - before["payout"] == cost
    assert after["driver"] - before["driver"] == ESCROW_DEPOSIT - cost
    assert net.escrow().get_session(session_id).state == SessionState.SETTLED
    with reverts("InvalidState"):  # once
        metered.operator().settle_signed(signed_settlement(session_id, begin, end, key))

    # the driver re-checks from the chain alone: the records in the settle transaction, the key on chain
    on_chain = net.escrow().signed_settlement_of(receipt["transactionHash"], session_id)
    assert on_chain is not None and on_chain[1] == BEGIN_WH + 12_345
    for payload, r, s, _ in on_chain[2]:
        verify_settled(payload, r, s, key)
    with pytest.raises(OCMFError, match="not signed"):
        verify_settled(on_chain[2][1][0].replace(b'"TX":"E"', b'"TX":"L"'), *on_chain[2][1][1:3], key)
    assert net.escrow().signed_settlement_of(receipt["transactionHash"], session_id + 1) is None


def test_a_metered_station_cannot_be_settled_on_the_operators_word(metered: Metered) -> None:
    session_id = metered.session()
    with reverts("MeterSignatureRequired") as info:
        metered.operator().settle(session_id, BEGIN_WH + 1000)
    assert info.value.args_ == (metered.station,)
    with reverts("MeterSignatureRequired"):
        metered.operator().settle_batch([session_id], [BEGIN_WH + 1000])
    plain = metered.env.active()  # a station without a key keeps the plain path, and only that one
    begin, end = metered.records(plain, 1000)
    with reverts("NoMeterKey") as info:
        metered.operator().settle_signed(metered.settlement(plain, begin, end))
    assert info.value.args_ == (metered.env.station,)
    metered.operator().settle(plain, 2000)


def test_each_bad_record_reverts_with_its_own_error(metered: Metered) -> None:
    env = metered.env
    session_id, other = metered.session(), metered.session()
    operator = metered.operator()
    before = env.balances()

    def refused(name: str, settlement: tuple, args: tuple | None = None) -> None:
        with reverts(name) as info:
            operator.settle_signed(settlement)
        if args is not None:
            assert info.value.args_ == args

    begin, end = metered.records(session_id, 5000)
    tampered = metered.meter.variant(MeterMode.TAMPERED)
    _, bad_end = metered.records(session_id, 5000, meter=tampered)
    refused("InvalidMeterSignature", metered.settlement(session_id, begin, bad_end), (session_id, 1))
    foreign = metered.meter.variant(MeterMode.FOREIGN)
    bad_begin, _ = metered.records(session_id, 5000, meter=foreign)
    refused("InvalidMeterSignature", metered.settlement(session_id, bad_begin, end), (session_id, 0))

    other_begin, other_end = metered.records(other, 9000)  # a valid pair of another session
    refused("RecordNotForSession", metered.settlement(session_id, other_begin, other_end), (session_id, 0))
    refused("RecordNotForSession", metered.settlement(session_id, begin, other_end), (session_id, 1))

    as_begin, as_end = meter_record(end, Reason.END), meter_record(begin, Reason.BEGIN)
    refused("UnexpectedReadingReason", (session_id, BEGIN_WH + 5000, [as_begin, as_begin]), (session_id, 0, b"E"))
    refused("UnexpectedReadingReason", (session_id, BEGIN_WH, [as_end, as_end]), (session_id, 1, b"B"))

    low_begin, low_end = metered.records(session_id, 0, end_wh=BEGIN_WH - 1)
    refused("MeterBelowStart", metered.settlement(session_id, low_begin, low_end), (session_id, BEGIN_WH, BEGIN_WH - 1))

    second_meter = metered.meter.variant(MeterMode.SIGNED, serial="OTHER-SERIAL")
    _, swapped_end = metered.records(session_id, 5000, meter=second_meter)
    refused(
        "MeterSerialMismatch",
        metered.settlement(session_id, begin, swapped_end),
        (session_id, metered.meter.serial.encode().ljust(32, b"\0"), b"OTHER-SERIAL".ljust(32, b"\0")),
    )

    tag = session_id_tag(session_id)
    early_end = parse(metered.meter.record(Reason.END, BEGIN_WH + 100, tag))  # signed before its Begin
    late_begin = parse(metered.meter.record(Reason.BEGIN, BEGIN_WH, tag))
    refused("PaginationNotAdvancing", metered.settlement(session_id, late_begin, early_end))

    signed_stop = end.reading(Reason.END).wh
    refused(
        "ReadingMismatch",
        metered.settlement(session_id, begin, end, meter_stop=signed_stop + 1),
        (session_id, signed_stop, signed_stop + 1),
    )

    payload, r, s, offsets = meter_record(end, Reason.END)
    high_s = (CURVE_ORDER - int.from_bytes(s, "big")).to_bytes(32, "big")
    refused(
        "HighSSignature", (session_id, signed_stop, [meter_record(begin, Reason.BEGIN), (payload, r, high_s, offsets)])
    )

    shifted = offsets + (1 << 64)  # RV's offset one byte off: the key is not there
    refused(
        "OCMFMalformedField", (session_id, signed_stop, [meter_record(begin, Reason.BEGIN), (payload, r, s, shifted)])
    )

    assert env.balances() == before  # no refusal moved a token
    operator.settle_signed(metered.settlement(session_id, begin, end))  # the good pair still settles


def test_python_refuses_a_bad_record_before_any_transaction(metered: Metered) -> None:
    session_id = metered.session()
    key = metered.meter.public_key_der
    begin, end = metered.records(session_id, 5000)
    tampered = metered.meter.variant(MeterMode.TAMPERED)
    _, bad_end = metered.records(session_id, 5000, meter=tampered)
    with pytest.raises(OCMFError, match="not signed by the registered meter key"):
        signed_settlement(session_id, begin, bad_end, key)
    other_begin, other_end = metered.records(metered.session(), 5000)
    with pytest.raises(OCMFError, match="does not name this session"):
        signed_settlement(session_id, other_begin, other_end, key)
    with pytest.raises(OCMFError, match="has no begin reading"):
        signed_settlement(session_id, end, begin, key)
    tag = session_id_tag(session_id)
    early_end = parse(metered.meter.record(Reason.END, BEGIN_WH + 100, tag))
    late_begin = parse(metered.meter.record(Reason.BEGIN, BEGIN_WH, tag))
    with pytest.raises(OCMFError, match="does not follow"):
        signed_settlement(session_id, late_begin, early_end, key)
    assert metered.env.net.escrow().get_session(session_id).state == SessionState.ACTIVE


def test_a_key_rotated_during_a_session_does_not_strand_it(metered: Metered) -> None:
    """The key valid when a session started settles it: a rotation or removal after the start changes nothing
    for it, and sessions started after the change need the new key (or, after a removal, no key)."""
    env, net = metered.env, metered.env.net
    operator = metered.operator()
    old_meter, new_meter = metered.meter, SigningMeter.for_charge_point("CP-METERED-NEW")
    in_flight = metered.session()
    net.time_travel(5)
    operator.set_meter_public_key(metered.station, new_meter.public_key_der)
    after_rotation = metered.session()
    assert net.escrow().meter_key_at(metered.station, net.escrow().get_session(in_flight).since) == registry_key(
        old_meter.public_key_der
    )
    with reverts("InvalidMeterSignature"):  # the new key's records do not settle a session of the old key
        operator.settle_signed(metered.settlement(in_flight, *metered.records(in_flight, 5000, meter=new_meter)))
    with reverts("InvalidMeterSignature"):  # nor the other way round
        operator.settle_signed(metered.settlement(after_rotation, *metered.records(after_rotation, 5000)))
    net.time_travel(5)
    operator.set_meter_public_key(metered.station, b"")  # removing the key does not open the plain path for them
    plain = metered.session()
    with reverts("MeterSignatureRequired"):
        operator.settle(in_flight, BEGIN_WH + 5000)
    with reverts("NoMeterKey"):
        operator.settle_signed(metered.settlement(plain, *metered.records(plain, 5000)))

    before = env.balances()
    operator.settle_signed(metered.settlement(in_flight, *metered.records(in_flight, 5000)))
    operator.settle_signed(metered.settlement(after_rotation, *metered.records(after_rotation, 7000, new_meter)))
    operator.settle(plain, BEGIN_WH + 1000)
    costs = [price(TARIFF, e) for e in (5000, 7000, 1000)]
    assert env.balances()["payout"] - before["payout"] == sum(costs)
    assert all(net.escrow().get_session(s).state == SessionState.SETTLED for s in (in_flight, after_rotation, plain))


def test_a_key_set_during_a_plain_session_leaves_it_plain(metered: Metered) -> None:
    env, net = metered.env, metered.env.net
    operator = metered.operator()
    station = net.add_station("CP-LATE-KEY")
    session_id = env.active(meter_start=BEGIN_WH, station=station)
    net.time_travel(5)
    operator.set_meter_public_key(station, metered.meter.public_key_der)
    with reverts("NoMeterKey"):
        operator.settle_signed(metered.settlement(session_id, *metered.records(session_id, 5000)))
    receipt = operator.settle(session_id, BEGIN_WH + 5000)
    assert events(net.escrow(), receipt, "SessionSettled")[0]["meterStop"] == BEGIN_WH + 5000


def test_a_session_without_valid_records_is_reclaimed_by_its_driver(metered: Metered) -> None:
    """No proof, no pay: after max duration + grace the driver takes the whole deposit back."""
    env, net = metered.env, metered.env.net
    session_id = metered.session()
    before = env.balances()
    started = net.escrow().get_session(session_id).since
    allowed_at = started + net.deployment.max_duration + net.deployment.reclaim_grace
    net.time_travel(allowed_at - latest_timestamp(net.w3))
    net.escrow(env.driver).reclaim(session_id)
    assert env.balances()["driver"] - before["driver"] == ESCROW_DEPOSIT
    assert env.balances()["payout"] == before["payout"]


def test_signed_batch_settles_every_session_or_none(metered: Metered) -> None:
    env, net = metered.env, metered.env.net
    key = metered.meter.public_key_der
    sessions = [metered.session() for _ in range(3)]
    energies = [1000, 2500, 40]
    settlements = [signed_settlement(s, *metered.records(s, e), key) for s, e in zip(sessions, energies, strict=True)]
    broken = list(settlements)
    broken[1] = (sessions[1], *settlements[0][1:])  # the first session's records for the second
    with reverts("RecordNotForSession"):
        metered.operator().settle_signed_batch(broken)
    assert all(net.escrow().get_session(s).state == SessionState.ACTIVE for s in sessions)
    before = env.balances()
    receipt = metered.operator().settle_signed_batch(settlements)
    assert net.escrow().signed_settlement_of(receipt["transactionHash"], sessions[2]) == settlements[2]
    costs = [price(TARIFF, e) for e in energies]
    assert [e["cost"] for e in events(net.escrow(), receipt, "SessionSettled")] == costs
    assert env.balances()["payout"] - before["payout"] == sum(costs)


def test_fields_of_two_readings_cannot_be_mixed(metered: Metered) -> None:
    """A record with several readings: the escrow bills one reading's value only with that reading's
    reason and unit (TX, RV, RU in order, no '}' between them)."""
    env = metered.env
    key = ec.generate_private_key(ec.SECP256R1())
    operator = metered.operator()
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    station = operator.station_id_from(operator.add_station("CP-TWO-READINGS", 1, TARIFF, public))
    session_id = env.active(meter_start=BEGIN_WH, station=station)
    tag = session_id_tag(session_id)

    def signed(readings: str, page: int) -> str:
        payload = (
            f'{{"FV":"1.0","GI":"X","GS":"G1","PG":"T{page}","MV":"X","MS":"M1","IS":true,"IT":"CENTRAL",'
            f'"ID":"{tag}","RD":[{readings}]}}'
        )
        der = key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
        return f'OCMF|{payload}|{{"SD":"{der.hex()}"}}'

    reading = '{{"TM":"2026-01-01T00:00:0{n},000+0000 S","TX":"{tx}","RV":{rv},"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}}'
    begin = parse(signed(reading.format(n=1, tx="B", rv="1234.567") + "," + reading.format(n=2, tx="C", rv="1200"), 1))
    end = parse(signed(reading.format(n=3, tx="E", rv="1240"), 2))
    payload, r, s, offsets = meter_record(begin, Reason.BEGIN)
    charging_rv = payload.find(b'"RV":', payload.find(b'"TX":"C"'))
    mixed = offsets & ~(0xFFFF << 64) | charging_rv << 64  # B's reason with C's (lower) value
    stop = end.reading(Reason.END).wh
    with reverts("MixedReading") as info:
        operator.settle_signed((session_id, stop, [(payload, r, s, mixed), meter_record(end, Reason.END)]))
    assert info.value.args_ == (session_id, 0)
    receipt = operator.settle_signed(signed_settlement(session_id, begin, end, public))
    assert events(env.net.escrow(), receipt, "SessionSettled")[0]["meterStart"] == BEGIN_WH
