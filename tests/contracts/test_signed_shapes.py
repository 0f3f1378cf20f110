"""Both OCMF record shapes on a real Anvil: a Begin and an End record (one reading each), or one record
carrying both readings (one signature per session, as meters write it at the end of a transaction). The
records are written and signed here with Python ``cryptography`` directly, laid out like a real meter's
(an Iskra WM3M4C's fields, well over 300 bytes), not by the simulator's meter; every refusal holds for
both shapes and moves no token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ev_network.contracts import SessionState
from ev_network.ocmf import CURVE_ORDER, parse, session_id_tag, signed_settlement
from ev_network.pricing import price
from tools.harness.chain import ESCROW_DEPOSIT, TARIFF, Env
from tools.harness.contracts import events, reverts
from tools.harness.ocmf_records import ISKRA, ISKRA_KEY

BEGIN_WH = 80_770  # 80.77 kWh on the register
SHAPES = ("two_records", "one_record")
READING = '{{"TM":"2026-12-06T11:{minute:02d}:06,000+0000 S","TX":"{tx}","RV":{rv},"RI":"1-b:1.8.0","RU":"kWh","RT":"AC","EF":"","ST":"G"}}'


def der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def escrow_record(text: str, *entries: int) -> tuple[bytes, bytes, bytes, int]:
    """The escrow's MeterRecord of an OCMF text, worked out here: (payload, r, low s, offsets of ID, MS, PG and
    of TX, RV, RU of each RD entry named, in that order)."""
    payload, signature = text[5:].rsplit("|", 1)
    raw = payload.encode()
    r, s = decode_dss_signature(bytes.fromhex(signature.split('"SD":"')[1].split('"')[0]))
    data = raw.find(b'"RD":')
    fields = [raw.find(f'"{name}":'.encode(), 0, data) for name in ("ID", "MS", "PG")]
    starts = [i for i in range(data, len(raw)) if raw.startswith(b'{"TM"', i)]
    for entry in entries:
        fields += [raw.find(f'"{name}":'.encode(), starts[entry]) for name in ("TX", "RV", "RU")]
    offsets = sum(at << (16 * i) for i, at in enumerate(fields))
    return raw, r.to_bytes(32, "big"), min(s, CURVE_ORDER - s).to_bytes(32, "big"), offsets


@dataclass
class Meter:
    """A meter written for this test: its key, serial and transaction page counter."""

    key: ec.EllipticCurvePrivateKey
    serial: str = "W4155775"
    page: int = 240

    def record(
        self, tag: str, readings: list[tuple[str, int]], signer: ec.EllipticCurvePrivateKey | None = None
    ) -> str:
        """A signed record of ``readings`` ([(reason, Wh)]) for idTag ``tag`` on the next page."""
        self.page += 1
        rd = ",".join(READING.format(minute=i, tx=tx, rv=f"{wh / 1000:.3f}") for i, (tx, wh) in enumerate(readings))
        payload = (
            '{"FV":"1.0","GI":"eSystemsMtg OcppChargePoint_v0 ESY-00101.01.2201234567","GS":"000007",'
            f'"GV":"PWR P0037","PG":"T{self.page}","MV":"Iskra","MM":"WM3M4C","MS":"{self.serial}","MF":"2.05",'
            f'"IS":true,"IT":"CENTRAL","ID":"{tag}","CT":"CBIDC","CI":"EVNStation","RD":[{rd}]}}'
        )
        signature = (signer or self.key).sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
        return f'OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{signature.hex().upper()}"}}'


@dataclass
class Station:
    env: Env
    station: int
    meter: Meter

    def session(self) -> int:
        return self.env.active(meter_start=BEGIN_WH, station=self.station)

    def records(self, shape: str, session_id: int, end_wh: int, **kw) -> list[tuple]:
        """The escrow's records of a session in ``shape`` (Begin then End reading), unchecked by Python."""
        tag = kw.pop("tag", session_id_tag(session_id))
        reasons = kw.pop("reasons", ("B", "E"))
        if shape == "one_record":
            text = self.meter.record(tag, [(reasons[0], BEGIN_WH), (reasons[1], end_wh)], **kw)
            return [escrow_record(text, 0, 1)]
        begin = self.meter.record(tag, [(reasons[0], BEGIN_WH)], **kw)
        end = self.meter.record(tag, [(reasons[1], end_wh)], **kw)
        return [escrow_record(begin, 0), escrow_record(end, 0)]

    def operator(self):
        return self.env.net.escrow(self.env.net.operator)


@pytest.fixture
def station(env: Env) -> Station:
    key = ec.generate_private_key(ec.SECP256R1())
    escrow = env.net.escrow(env.net.operator)
    station_id = escrow.station_id_from(escrow.add_station("CP-ISKRA", 2, TARIFF, der(key)))
    return Station(env, station_id, Meter(key))


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_settles_on_exactly_the_signed_energy(station: Station, shape: str) -> None:
    env, net = station.env, station.env.net
    session_id = station.session()
    records = station.records(shape, session_id, BEGIN_WH + 12_345)
    assert all(len(payload) >= 300 for payload, *_ in records)  # as long as a real meter's records
    before = env.balances()
    receipt = station.operator().settle_signed((session_id, BEGIN_WH + 12_345, records))
    (settled,) = events(net.escrow(), receipt, "SessionSettled")
    cost = price(TARIFF, 12_345)
    assert (settled["meterStart"], settled["meterStop"], settled["cost"]) == (BEGIN_WH, BEGIN_WH + 12_345, cost)
    assert env.balances()["payout"] - before["payout"] == cost
    assert env.balances()["driver"] - before["driver"] == ESCROW_DEPOSIT - cost
    assert net.escrow().get_session(session_id).state == SessionState.SETTLED
    assert net.escrow().signed_settlement_of(receipt["transactionHash"], session_id)[2] == records


def test_python_builds_the_one_record_shape_from_an_end_record_holding_both(station: Station) -> None:
    session_id = station.session()
    tag = session_id_tag(session_id)
    both = parse(station.meter.record(tag, [("B", BEGIN_WH), ("E", BEGIN_WH + 900)]))
    settlement = signed_settlement(session_id, None, both, der(station.meter.key))
    assert len(settlement[2]) == 1
    receipt = station.operator().settle_signed(settlement)
    assert events(station.env.net.escrow(), receipt, "SessionSettled")[0]["meterStop"] == BEGIN_WH + 900


@pytest.mark.parametrize("shape", SHAPES)
def test_every_refusal_holds_for_each_shape(station: Station, shape: str) -> None:
    env = station.env
    session_id, other = station.session(), station.session()
    operator = station.operator()
    stop = BEGIN_WH + 5000
    last = len(station.records(shape, session_id, stop)) - 1  # which record index names End (0 in one record)
    before = env.balances()

    def refused(name: str, records: list, args: tuple | None = None, meter_stop: int = stop) -> None:
        with reverts(name) as info:
            operator.settle_signed((session_id, meter_stop, records))
        if args is not None:
            assert info.value.args_ == args

    foreign = ec.generate_private_key(ec.SECP256R1())
    refused("InvalidMeterSignature", station.records(shape, session_id, stop, signer=foreign), (session_id, 0))
    good = station.records(shape, session_id, stop)
    payload, r, s, offsets = good[last]
    tampered = payload.replace(b'"RV":85.770', b'"RV":86.770')  # a kWh more, after signing
    assert tampered != payload
    refused("InvalidMeterSignature", [*good[:last], (tampered, r, s, offsets)], (session_id, last))
    high_s = (CURVE_ORDER - int.from_bytes(s, "big")).to_bytes(32, "big")
    refused("HighSSignature", [*good[:last], (payload, r, high_s, offsets)], (session_id, last))
    refused("RecordNotForSession", station.records(shape, session_id, stop, tag=session_id_tag(other)), (session_id, 0))
    refused(
        "UnexpectedReadingReason", station.records(shape, session_id, stop, reasons=("C", "E")), (session_id, 0, b"C")
    )
    refused(
        "UnexpectedReadingReason", station.records(shape, session_id, stop, reasons=("B", "B")), (session_id, 1, b"B")
    )
    refused("MeterBelowStart", station.records(shape, session_id, BEGIN_WH - 1), (session_id, BEGIN_WH, BEGIN_WH - 1))
    refused("ReadingMismatch", good, (session_id, stop, stop + 1), meter_stop=stop + 1)
    refused("RecordCount", [], (session_id, 0))
    refused("RecordCount", [*good, good[0], good[0]][:3], (session_id, 3))

    tag = session_id_tag(session_id)
    if shape == "one_record":
        text = station.meter.record(tag, [("E", stop), ("B", BEGIN_WH)])  # End listed before Begin
        page = station.meter.page
        refused("PaginationNotAdvancing", [escrow_record(text, 1, 0)], (session_id, page, page))
        rv_of_end = payload.find(b'"RV":', payload.find(b'"TX":"E"'))  # Begin's reason and unit, End's value
        refused("MixedReading", [(payload, r, s, offsets & ~(0xFFFF << 64) | rv_of_end << 64)], (session_id, 0))
    else:
        other_serial = Meter(station.meter.key, serial="OTHER-SERIAL", page=station.meter.page)
        refused(
            "MeterSerialMismatch",
            [good[0], escrow_record(other_serial.record(tag, [("E", stop)]), 0)],
            (session_id, b"W4155775".ljust(32, b"\0"), b"OTHER-SERIAL".ljust(32, b"\0")),
        )
        early_end = escrow_record(station.meter.record(tag, [("E", stop)]), 0)  # End signed before its Begin
        late_begin = escrow_record(station.meter.record(tag, [("B", BEGIN_WH)]), 0)
        page = station.meter.page
        refused("PaginationNotAdvancing", [late_begin, early_end], (session_id, page, page - 1))
        two = station.meter.record(tag, [("B", BEGIN_WH), ("C", BEGIN_WH - 100)])  # a Begin record, two readings
        begin_payload, *signature, begin_offsets = escrow_record(two, 0)
        rv_of_c = begin_payload.find(b'"RV":', begin_payload.find(b'"TX":"C"'))  # B's reason and unit, C's value
        mixed = (begin_payload, *signature, begin_offsets & ~(0xFFFF << 64) | rv_of_c << 64)
        refused("MixedReading", [mixed, escrow_record(station.meter.record(tag, [("E", stop)]), 0)], (session_id, 0))

    assert env.balances() == before  # no refusal moved a token
    operator.settle_signed((session_id, stop, good))  # the good records still settle


def test_a_published_meter_record_verifies_on_chain(env: Env) -> None:
    """A real charger's record (Iskra WM3M4C, both readings in one record, published with its key) passes the
    escrow's P-256 check: it is refused only because it names another identification, not this session."""
    escrow = env.net.escrow(env.net.operator)
    station_id = escrow.station_id_from(escrow.add_station("CP-PUBLISHED", 1, TARIFF, bytes.fromhex(ISKRA_KEY)))
    session_id = env.active(meter_start=80_770, station=station_id)
    with reverts("RecordNotForSession") as info:
        escrow.settle_signed((session_id, 80_970, [escrow_record(ISKRA, 0, 1)]))
    assert info.value.args_ == (session_id, 0)
