"""ev_network.ocmf against published records and an independent signer (no chain).

The two fixed vectors (tools/harness/ocmf_records.py) are real chargers' records with the meter keys
they were signed with: a KEBA KCP30 and an Iskra WM3M4C. Both carry a high-s signature, so they also check that low_s() keeps the signature valid.
Independent records are written and signed here with Python ``cryptography`` directly, not by the
simulator's meter."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ev_network.ocmf import (
    CURVE_ORDER,
    OCMFError,
    Reason,
    low_s,
    meter_record,
    parse,
    public_key,
    registry_key,
    session_id_tag,
    signed_settlement,
    verify,
)
from tools.harness.core import ocmf_record
from tools.harness.ocmf_records import ISKRA, ISKRA_KEY, KEBA, KEBA_KEY


@pytest.mark.parametrize(("text", "key"), [(KEBA, KEBA_KEY), (ISKRA, ISKRA_KEY)], ids=["keba", "iskra"])
def test_published_records_verify_against_their_published_keys(text: str, key: str) -> None:
    record = parse(text)
    verify(record, key)
    verify(record, base64.b64encode(bytes.fromhex(key)).decode())  # the same key, base64
    verify(record, registry_key(key))  # and as the registry returns it (04 || x || y)
    with pytest.raises(OCMFError, match="not signed by the registered meter key"):
        verify(record, ISKRA_KEY if key == KEBA_KEY else KEBA_KEY)
    tampered = parse(text.replace('"TX":"E"', '"TX":"L"'))
    with pytest.raises(OCMFError, match="not signed"):
        verify(tampered, key)


def test_published_records_parse_to_their_readings() -> None:
    iskra = parse(ISKRA)
    assert (iskra.serial, iskra.identification, iskra.pagination) == ("W4155775", "0480423a4b5880", "T241")
    begin, end = iskra.reading(Reason.BEGIN), iskra.reading(Reason.END)
    assert (begin.value, end.value, begin.unit) == (Decimal("80.77"), Decimal("80.97"), "kWh")
    assert (begin.wh, end.wh) == (80_770, 80_970)
    keba = parse(KEBA)
    assert (keba.reading(Reason.BEGIN).wh, keba.reading(Reason.END).wh) == (259, 259)  # 0.2596 kWh -> 259 Wh


@pytest.mark.parametrize("text", [KEBA, ISKRA], ids=["keba", "iskra"])
def test_low_s_flips_a_high_s_and_the_signature_still_verifies(text: str) -> None:
    record = parse(text)
    key = public_key(KEBA_KEY if text == KEBA else ISKRA_KEY)
    r, s = low_s(record.signature)
    assert int.from_bytes(s, "big") <= CURVE_ORDER // 2  # both published signatures are high-s
    flipped = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    key.verify(flipped, record.payload, ec.ECDSA(hashes.SHA256()))  # raises if it did not verify


def independent_record(key: ec.EllipticCurvePrivateKey, rv: str = "12.345", encoding: str = "hex") -> str:
    """A Begin record written and signed here, pretty-printed the way the OCMF spec's example is."""
    payload = (
        '{"FV": "1.0", "GI": "Independent", "GS": "X-1", "PG": "T7", "MV": "Test", "MS": "IND-0001",'
        ' "IS": true, "IT": "ISO14443", "ID": "1F2D3A4F5506C7", "RD": [{"TM": "2024-01-02T03:04:05,000+0100 S",'
        f' "TX": "B", "RV": {rv}, "RI": "1-b:1.8.0", "RU": "kWh", "ST": "G"}}]}}'
    )
    der = key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
    sd = der.hex() if encoding == "hex" else base64.b64encode(der).decode()
    return f'OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SE":"{encoding}","SD":"{sd}"}}'


def test_independent_signer_in_every_carrier() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der_key = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem_key = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = independent_record(key)
    wrapped = {
        "signedMeterData": base64.b64encode(raw.encode()).decode(),
        "signingMethod": "ECDSA-secp256r1-SHA256",
        "encodingMethod": "OCMF",
        "publicKey": der_key.hex(),
    }
    field_spelling = {
        "signedMeterValue": raw,
        "encodingMethod": "OCMF",
        "publicKey": base64.b64encode(der_key).decode(),
    }
    carriers = [raw, json.dumps(wrapped), json.dumps(field_spelling), independent_record(key, encoding="base64")]
    for carrier in carriers:
        record = parse(carrier)
        for form in (der_key, der_key.hex(), pem_key, registry_key(der_key)):
            verify(record, form)
        assert record.reading(Reason.BEGIN).wh == 12_345


def test_the_key_that_arrives_with_a_reading_is_not_trusted() -> None:
    meter, impostor = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    impostor_key = impostor.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = json.dumps({"signedMeterData": independent_record(impostor), "publicKey": impostor_key.hex()})
    record = parse(forged)
    verify(record, impostor_key)  # it is a valid signature, by the wrong key
    with pytest.raises(OCMFError, match="registered meter key"):
        verify(record, registry_key(meter.public_key()))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1234", "not an OCMF record"),
        ('OCMF|{"FV":"1.0"}', "without a signature section"),
        ('OCMF|{"FV":|{"SD":"00"}', "is not JSON"),
        ('OCMF|{"FV":"1.0"}|{"SA":"x"}', "signature object with SD"),
        ('OCMF|{"FV":"1.0"}|{"SD":"zz"}', "not valid hex"),
        ('OCMF|{"FV":"1.0"}|{"SE":"b32","SD":"00"}', "neither hex nor base64"),
        ('{"signedMeterData": 5}', "no signedMeterData"),
        ('{"signedMeterData": "!!"}', "neither OCMF text nor its base64"),
        ('{"signedMeterData": "OCMF|{}|{}", "encodingMethod": "EDL"}', "not OCMF"),
        ("{not json", "neither OCMF nor JSON"),
    ],
)
def test_malformed_values_get_one_line_errors(value: str, message: str) -> None:
    with pytest.raises(OCMFError, match=message) as info:
        parse(value)
    assert "\n" not in str(info.value)


def test_other_algorithms_and_keys_are_refused() -> None:
    record = parse(KEBA.replace('{"SD":', '{"SA":"ECDSA-brainpool256r1-SHA256","SD":'))
    with pytest.raises(OCMFError, match="algorithm"):
        verify(record, KEBA_KEY)
    k1 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(OCMFError, match="not a P-256"):
        public_key(k1.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(OCMFError):
        public_key("00" * 33)


def test_meter_record_points_at_the_billed_readings_fields() -> None:
    """The escrow's offsets for a published two-reading record: the head fields once, TX/RV/RU of the
    reading billed (the E entry for End, the B entry for Begin)."""
    record = parse(ISKRA)
    for reason, value in ((Reason.BEGIN, b"80.77"), (Reason.END, b"80.97")):
        payload, r, s, offsets = meter_record(record, reason)
        at = [offsets >> (16 * i) & 0xFFFF for i in range(6)]
        keys = [payload[a : a + 5] for a in at]
        assert keys == [b'"ID":', b'"MS":', b'"PG":', b'"TX":', b'"RV":', b'"RU":']
        assert payload[at[3] + 6 : at[3] + 7] == reason.value.encode()
        assert payload[at[4] + 5 :].startswith(value)
        assert at[3] < at[4] < at[5] and b"}" not in payload[at[3] : at[5]]
        assert int.from_bytes(s, "big") <= CURVE_ORDER // 2 and len(r) == 32
    with pytest.raises(OCMFError, match="no compact MS field"):
        meter_record(parse(KEBA), Reason.BEGIN)  # KEBA's record names no meter serial


# ------------------------------------------- issue 17 #3: numbers and nesting in signed records


SESSION = 7


def signed(key: ec.EllipticCurvePrivateKey, tx: str, rv: str, unit: str = "Wh", page: str = "T7") -> str:
    return ocmf_record(key, session_id_tag(SESSION), tx, rv, unit, page)


@pytest.mark.issue(17, item=3)
@pytest.mark.parametrize(
    ("rv", "unit", "page"),
    [
        ("1E+999999", "Wh", "T8"),  # froze the event loop for 75 s in int(Decimal(...))
        ("1E+999999", "kWh", "T8"),
        ('"1E+999999"', "Wh", "T8"),  # as a string
        ("1" + "0" * 5_000, "Wh", "T8"),  # beyond Python's 4,300-digit int limit: ValueError
        ("-5", "Wh", "T8"),
        ('"NaN"', "Wh", "T8"),
        ("NaN", "Wh", "T8"),
        ("Infinity", "kWh", "T8"),
        ("1099511627.776", "kWh", "T8"),  # 2^40 Wh: beyond uint40
        ("20", "Wh", "T" + "9" * 5_000),  # pagination beyond the int limit
        ("20", "Wh", "T²"),  # not an ASCII digit
    ],
    ids=[
        "1E+999999 Wh",
        "1E+999999 kWh",
        "string",
        "5000 digits",
        "negative",
        "NaN string",
        "NaN",
        "Infinity",
        "2^40 Wh",
        "5000-digit page",
        "superscript page",
    ],
)
def test_absurd_numbers_in_a_validly_signed_record_are_refused_at_once(rv: str, unit: str, page: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    begin, end = parse(signed(key, "B", "10", page="T7")), signed(key, "E", rv, unit, page)
    started = time.monotonic()
    with pytest.raises(OCMFError) as info:
        signed_settlement(SESSION, begin, parse(end), registry_key(key.public_key()))
    assert time.monotonic() - started < 0.5 and len(str(info.value)) < 200


@pytest.mark.issue(17, item=3)
def test_a_plausible_signed_record_still_settles() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    begin, end = parse(signed(key, "B", "10.5", "kWh")), parse(signed(key, "E", "1099511627.775", "kWh", "T8"))
    assert signed_settlement(SESSION, begin, end, registry_key(key.public_key()))[1] == 2**40 - 1


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.issue(17, item=3)
def test_deeply_nested_json_in_a_signed_value_is_a_one_line_error(depth: int) -> None:
    for value in (
        "OCMF|" + "[" * depth + "]" * depth + '|{"SD":"00"}',
        '{"signedMeterData":' + "[" * depth + "]" * depth + "}",
        'OCMF|{"FV":"1.0","RD":' + "[" * depth + "]" * depth + '}|{"SD":"00"}',
    ):
        with pytest.raises(OCMFError, match="nested too deeply"):
            parse(value)
