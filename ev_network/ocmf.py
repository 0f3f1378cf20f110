"""Signed meter readings in the Open Charge Metering Format (OCMF, S.A.F.E. e.V.).

A record is ``OCMF|{payload}|{signature}``: the meter signs the payload bytes exactly as written
(ECDSA secp256r1 over SHA-256 unless SA says otherwise; the signature DER-encoded, hex unless SE says
base64). In OCPP 1.6 a charger sends it in a SampledValue with ``format: SignedData``, either raw or
wrapped in the OCA application note's JSON (OCPP 2.0.1's SignedMeterValueType carried in 1.6)::

    {"signedMeterData": "<OCMF|... or its base64>", "signingMethod": "", "encodingMethod": "OCMF",
     "publicKey": "<base64 or hex>"}

Chargers in the field also write ``signedMeterValue`` for the data. A key that arrives with a reading is
never trusted: :func:`verify` checks against a key the caller got elsewhere (the one registered on chain).

    record = parse(sampled_value)                         # OCMFError on anything malformed
    begin = signed_record(meter_value, "Transaction.Begin")   # from MeterValues / StopTransaction
    verify(record, station.meter_public_key)              # OCMFError unless that key signed it
    settlement = signed_settlement(session_id, begin, end, station.meter_public_key)
    escrow.settle_signed(settlement)        # [Begin, End], or [End] alone when it holds both readings
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from web3 import Web3

from ev_network.errors import EVNetworkError

ALGORITHM = "ECDSA-secp256r1-SHA256"
CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
END_REASONS = frozenset("ELRAP")  # End, Local, Remote, Abort, Power failure
WRAPPER_DATA_KEYS = ("signedMeterData", "signedMeterValue")
OFFSET_FIELDS = ("ID", "MS", "PG", "TX", "RV", "RU")  # the escrow's order (OCMF.Field)
#: Bounds checked before any number is converted (a 1E+999999 or a 5,000-digit text would take
#: seconds to minutes to turn into an int): the escrow reads each number within one 32-byte word,
#: and readings on chain are uint40 Wh.
MAX_NUMBER_CHARS = 30
MAX_WH = 2**40
PAGE = re.compile(r"T([0-9]{1,30})")  # a transaction page: "T" and ASCII digits, as the escrow reads it


class OCMFError(EVNetworkError):
    """A record that cannot be read, or whose signature does not verify against the given key."""


class Reason(StrEnum):
    """Reading reasons (TX) that start and end a transaction."""

    BEGIN = "B"
    END = "E"


@dataclass(frozen=True)
class Reading:
    """One entry of a record's RD list. ``value`` is RV as written (a Decimal, never a float)."""

    time: str
    reason: str | None
    value: Decimal
    unit: str
    register: str | None
    status: str

    @property
    def wh(self) -> int:
        """The value in whole Wh, rounded down as the escrow does; OCMFError unless it is a number
        from 0 to 2^40 Wh (checked before converting: comparisons of Decimals are fast whatever the exponent)."""
        scale = {"Wh": 1, "kWh": 1000}.get(self.unit) if isinstance(self.unit, str) else None
        if scale is None:
            raise OCMFError(f"reading unit {str(self.unit)[:20]!r} is neither kWh nor Wh")
        if not self.value.is_finite() or not 0 <= self.value < Decimal(MAX_WH) / scale:
            raise OCMFError(f"reading value {_shown(str(self.value))} {self.unit} is not between 0 and 2^40 Wh")
        return int(self.value * scale)


@dataclass(frozen=True)
class Record:
    """A parsed OCMF record: ``payload`` is the signed bytes, ``fields`` their JSON."""

    text: str
    payload: bytes
    fields: dict[str, Any]
    signature: bytes  # DER
    algorithm: str

    @property
    def serial(self) -> str | None:
        return self.fields.get("MS")

    @property
    def identification(self) -> str | None:
        return self.fields.get("ID")

    @property
    def pagination(self) -> str:
        page = self.fields.get("PG", "")
        return page if isinstance(page, str) else repr(page)

    @property
    def name(self) -> str:
        """The record in an error message: its pagination, cut short (a peer wrote it)."""
        return _shown(self.pagination) or "?"

    @property
    def readings(self) -> list[Reading]:
        entries = self.fields.get("RD", [])
        if not isinstance(entries, list):
            raise OCMFError("RD is not a list of readings")
        return [_reading(entry) for entry in entries]

    def reading(self, reason: Reason) -> Reading:
        """The record's Begin reading, or its End reading (any end reason)."""
        for candidate in self.readings:
            if candidate.reason == reason.value or (reason is Reason.END and candidate.reason in END_REASONS):
                return candidate
        raise OCMFError(f"record {self.name} has no {reason.name.lower()} reading")


def parse(value: str | bytes) -> Record:
    """A record from a SampledValue's value: ``OCMF|...|...``, or the JSON wrapper around it."""
    text = value.decode() if isinstance(value, bytes) else value
    text = text.strip()
    if text.startswith("{"):
        text = _unwrap(text)
    if not text.startswith("OCMF|"):
        raise OCMFError("not an OCMF record (it must start with 'OCMF|')")
    payload_text, sep, signature_text = text[5:].rpartition("|")
    if not sep:
        raise OCMFError("OCMF record without a signature section")
    try:
        fields = _json(payload_text)
        signature = _json(signature_text)
    except json.JSONDecodeError as exc:
        raise OCMFError(f"OCMF record is not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(fields, dict) or not isinstance(signature, dict) or "SD" not in signature:
        raise OCMFError("OCMF record needs a payload object and a signature object with SD")
    algorithm = signature.get("SA", ALGORITHM)
    if signature.get("SM", "application/x-der") != "application/x-der":
        raise OCMFError(f"signature mime type {signature['SM']!r} is not application/x-der")
    encoding = signature.get("SE", "hex")
    if encoding not in ("hex", "base64"):
        raise OCMFError(f"signature encoding {encoding!r} is neither hex nor base64")
    return Record(text, payload_text.encode(), fields, _decode(signature["SD"], encoding), algorithm)


def signed_record(meter_values: list[dict], context: str) -> Record | None:
    """The signed record among OCPP MeterValue dicts (MeterValues' ``meter_value``, StopTransaction's
    ``transaction_data``; snake_case as ``ocpp`` handlers get them, or camelCase as on the wire) whose
    SampledValue has ``format: SignedData`` and ``context`` (``Transaction.Begin`` / ``Transaction.End``);
    None if there is none. Raises OCMFError if that value is not a readable record."""
    for reading in meter_values:
        for sample in reading.get("sampled_value", reading.get("sampledValue", [])):
            if sample.get("format") == "SignedData" and sample.get("context") == context:
                return parse(sample["value"])
    return None


def public_key(data: str | bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 key from any form meters and the registry use: DER SubjectPublicKeyInfo, 65 bytes
    04 || x || y, 33 bytes compressed (02/03 || x) or 64 bytes x || y, as bytes, hex or base64 (or PEM text)."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.strip():
        raise OCMFError("the meter key is empty")
    try:
        if raw.strip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(raw.strip())
        else:
            if all(32 <= c < 127 or c in b"\t\r\n" for c in raw):  # text: hex (0x, spaces, colons) or base64
                text = "".join(raw.decode().split()).removeprefix("0x").replace(":", "")
                raw = _decode(text, "hex" if _is_hex(text.encode()) else "base64")
            key = _load_binary_key(raw)
    except (ValueError, TypeError):
        raise OCMFError(f"not a P-256 public key ({len(raw)} bytes)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise OCMFError("the meter key is not a P-256 (secp256r1) key")
    return key


def registry_key(key: str | bytes | ec.EllipticCurvePublicKey) -> bytes:
    """The key as the registry returns it: 65 bytes 04 || x || y."""
    key = key if isinstance(key, ec.EllipticCurvePublicKey) else public_key(key)
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def fingerprint(key: bytes) -> str:
    """A short name of a registered meter key (04 || x || y): the first 8 bytes of its SHA-256, as
    ``sha256:1a2b3c4d5e6f7a8b``; "plain" for no key."""
    return f"sha256:{hashlib.sha256(key).hexdigest()[:16]}" if key else "plain"


def verify(record: Record, key: str | bytes | ec.EllipticCurvePublicKey) -> None:
    """Raise OCMFError unless ``key`` (the registered one, never the record's own) signed ``record``."""
    if record.algorithm != ALGORITHM:
        raise OCMFError(f"signature algorithm {record.algorithm!r} is not {ALGORITHM}")
    key = key if isinstance(key, ec.EllipticCurvePublicKey) else public_key(key)
    try:
        key.verify(record.signature, record.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise OCMFError(f"record {record.name} was not signed by the registered meter key") from None


def verify_settled(payload: bytes, r: bytes, s: bytes, key: str | bytes | ec.EllipticCurvePublicKey) -> None:
    """Like :func:`verify`, for a record as the escrow received it (a MeterRecord of a settleSigned
    transaction: the payload bytes and r, s), so a driver can re-check what was billed from the chain alone."""
    key = key if isinstance(key, ec.EllipticCurvePublicKey) else public_key(key)
    signature = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise OCMFError("the settled record was not signed by the registered meter key") from None


def session_id_tag(session_id: int) -> str:
    """The idTag naming ``session_id`` at a station with a signing meter (the escrow's sessionIdTag): ``EV``
    and the first 9 bytes of keccak256(sessionId) in upper-case hex. Its meter signs it as ID."""
    return "EV" + Web3.keccak(session_id.to_bytes(32, "big"))[:9].hex().upper()


def low_s(signature: bytes) -> tuple[bytes, bytes]:
    """(r, s) of a DER signature, s flipped to the lower half of the curve order (both verify; the escrow
    accepts only the lower)."""
    r, s = decode_dss_signature(signature)
    s = min(s, CURVE_ORDER - s)
    return r.to_bytes(32, "big"), s.to_bytes(32, "big")


def meter_record(record: Record, reason: Reason | None = None) -> tuple[bytes, bytes, bytes, int]:
    """The escrow's MeterRecord (payload, r, s, offsets) billing the ``reason`` reading of ``record``; with no
    ``reason``, both readings of a record that holds Begin and End (the one-record shape)."""
    payload = record.payload
    if len(payload) >= 1 << 16:
        raise OCMFError(f"record of {len(payload)} bytes: the escrow reads payloads under 64 KiB")
    data_start = payload.find(b'"RD":')
    head = payload[:data_start] if data_start >= 0 else payload
    offsets = 0
    for i, name in enumerate(OFFSET_FIELDS[:3]):
        offsets |= _key_offset(record, head, name, 0, len(head)) << (16 * i)
    reasons = [reason] if reason is not None else [Reason.BEGIN, Reason.END]
    for n, which in enumerate(reasons):
        offsets |= _reading_offsets(record, which, data_start) << (48 + 48 * n)
    return (payload, *low_s(record.signature), offsets)


def holds_both_readings(record: Record) -> bool:
    """Whether ``record`` carries a Begin and an End reading (the one-record shape: one signature per session)."""
    reasons = {reading.reason for reading in record.readings}
    return Reason.BEGIN.value in reasons and bool(reasons & END_REASONS)


def signed_settlement(session_id: int, begin: Record | None, end: Record, key: str | bytes) -> tuple:
    """The escrow's SignedSettlement for ``session_id``, after checking what the escrow will check, so a
    bad record is refused here, before any gas is spent. Raises OCMFError naming the problem. An ``end``
    record that holds both readings settles alone (one record, one signature: the cheaper shape, ``begin``
    unused); otherwise ``begin`` is the Begin record."""
    if holds_both_readings(end):
        _check_for_session(end, session_id, key)
        first, last = end.reading(Reason.BEGIN), end.reading(Reason.END)
        _page(end)
        if end.readings.index(last) < end.readings.index(first):
            raise OCMFError(f"record {end.name}: its End reading comes before its Begin reading")
        _check_not_below(first, last)
        return (session_id, last.wh, [meter_record(end)])
    if begin is None:
        raise OCMFError("no Begin record, and the End record does not hold the Begin reading")
    for record in (begin, end):
        _check_for_session(record, session_id, key)
    if begin.serial != end.serial:
        raise OCMFError(f"Begin and End come from different meters ({_shown(begin.serial)} and {_shown(end.serial)})")
    first, last = begin.reading(Reason.BEGIN), end.reading(Reason.END)
    if _page(end) <= _page(begin):
        raise OCMFError(f"End's pagination {end.name} does not follow Begin's {begin.name}")
    _check_not_below(first, last)
    return (session_id, last.wh, [meter_record(begin, Reason.BEGIN), meter_record(end, Reason.END)])


# ------------------------------------------------------------------ helpers


def _json(text: str) -> Any:
    """``json.loads`` for a peer's record: numbers as Decimals of at most :data:`MAX_NUMBER_CHARS`
    characters (checked before converting), NaN and Infinity refused, nesting bounded (OCMFError)."""
    try:
        return json.loads(text, parse_float=_number, parse_int=_number, parse_constant=_number)
    except RecursionError:
        raise OCMFError("JSON nested too deeply for a meter record") from None


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else "" if value is None else repr(value)
    return text if len(text) <= 40 else f"{text[:40]}...[{len(text)} chars]"


def _number(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise OCMFError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    value = Decimal(text)
    if not value.is_finite():
        raise OCMFError(f"{text} is not a number")
    return value


def _unwrap(text: str) -> str:
    try:
        wrapper = _json(text)
    except json.JSONDecodeError:
        raise OCMFError("signed meter value is neither OCMF nor JSON") from None
    data = next((wrapper[k] for k in WRAPPER_DATA_KEYS if isinstance(wrapper, dict) and k in wrapper), None)
    if not isinstance(data, str):
        raise OCMFError("signed meter value JSON has no signedMeterData")
    if wrapper.get("encodingMethod", "OCMF") not in ("OCMF", ""):
        raise OCMFError(f"encoding method {wrapper['encodingMethod']!r} is not OCMF")
    data = data.strip()
    if data.startswith("OCMF|"):
        return data
    try:
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OCMFError("signedMeterData is neither OCMF text nor its base64") from None


def _decode(text: str, encoding: str) -> bytes:
    try:
        return bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise OCMFError(f"{text[:16]!r}... is not valid {encoding}") from None


def _is_hex(raw: bytes) -> bool:
    return all(c in b"0123456789abcdefABCDEF" for c in raw.strip())


def _load_binary_key(raw: bytes) -> Any:
    if len(raw) == 64:
        raw = b"\x04" + raw
    if (len(raw) == 65 and raw[0] == 4) or (len(raw) == 33 and raw[0] in (2, 3)):
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return serialization.load_der_public_key(raw)


def _reading(entry: dict) -> Reading:
    try:
        value = entry["RV"]
        if isinstance(value, str):
            value = _number(value)
        if not isinstance(value, Decimal):
            raise TypeError("RV")
        return Reading(entry["TM"], entry.get("TX"), value, entry["RU"], entry.get("RI"), entry["ST"])
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise OCMFError(f"reading without a valid {exc}") from None


def _page(record: Record) -> int:
    page = PAGE.fullmatch(record.pagination)
    if page is None:
        raise OCMFError(f"pagination {record.name!r} is not a transaction page (T<n>)")
    return int(page.group(1))


def _entry_span(payload: bytes, reading: Reading, data_start: int) -> tuple[int, int]:
    """Byte span of the RD entry holding ``reading`` (found by its reason)."""
    at = payload.find(f'"TX":"{reading.reason}"'.encode(), data_start)
    if at < 0:
        raise OCMFError(f"reading {reading.reason} at {reading.time} not found in the payload")
    return payload.rfind(b"{", 0, at), payload.find(b"}", at) + 1


def _key_offset(record: Record, within: bytes, name: str, start: int, end: int) -> int:
    """Offset of the compact key ``"name":`` in ``within[start:end]``; OCMFError if absent or spaced."""
    key = f'"{name}":'.encode()
    at = within.find(key, start, end)
    if at < 0 or within[at + len(key) : at + len(key) + 1] == b" ":
        raise OCMFError(f"record {record.name}: no compact {name} field for the escrow to read")
    return at


def _reading_offsets(record: Record, reason: Reason, data_start: int) -> int:
    """TX, RV, RU offsets (16 bits each) of the ``reason`` reading of ``record``."""
    payload = record.payload
    entry_start, entry_end = _entry_span(payload, record.reading(reason), data_start)
    tx, rv, ru = (_key_offset(record, payload, name, entry_start, entry_end) for name in OFFSET_FIELDS[3:])
    if not tx < rv < ru:
        raise OCMFError(f"record {record.name}: the escrow needs TX, RV, RU in that order in a reading")
    return tx | rv << 16 | ru << 32


def _check_for_session(record: Record, session_id: int, key: str | bytes) -> None:
    verify(record, key)
    if record.identification != session_id_tag(session_id):
        raise OCMFError(f"record {record.name}: ID {_shown(record.identification)!r} does not name this session")


def _check_not_below(first: Reading, last: Reading) -> None:
    if last.wh < first.wh:
        raise OCMFError(f"End reading {last.value} {last.unit} is below Begin's {first.value} {first.unit}")
