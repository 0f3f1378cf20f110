"""OCMF records: parsing a record (raw, or in the OCA JSON wrapper) into its readings, and the idTag a
signing meter signs for a session. See :mod:`ev_network.ocmf`."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from web3 import Web3

from ev_network.errors import EVNetworkError

ALGORITHM = "ECDSA-secp256r1-SHA256"
END_REASONS = frozenset("ELRAP")  # End, Local, Remote, Abort, Power failure
WRAPPER_DATA_KEYS = ("signedMeterData", "signedMeterValue")
#: Bounds checked before any number is converted (a 1E+999999 or a 5,000-digit text would take
#: seconds to minutes to turn into an int): the escrow reads each number within one 32-byte word,
#: and readings on chain are uint40 Wh.
MAX_NUMBER_CHARS = 30
MAX_WH = 2**40


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
            raise OCMFError(f"reading value {shown(str(self.value))} {self.unit} is not between 0 and 2^40 Wh")
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
        return shown(self.pagination) or "?"

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
    return Record(text, payload_text.encode(), fields, decode(signature["SD"], encoding), algorithm)


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


def session_id_tag(session_id: int) -> str:
    """The idTag naming ``session_id`` at a station with a signing meter (the escrow's sessionIdTag): ``EV``
    and the first 9 bytes of keccak256(sessionId) in upper-case hex. Its meter signs it as ID."""
    return "EV" + Web3.keccak(session_id.to_bytes(32, "big"))[:9].hex().upper()


# ------------------------------------------------------------------ helpers


def _json(text: str) -> Any:
    """``json.loads`` for a peer's record: numbers as Decimals of at most :data:`MAX_NUMBER_CHARS`
    characters (checked before converting), NaN and Infinity refused, nesting bounded (OCMFError)."""
    try:
        return json.loads(text, parse_float=_number, parse_int=_number, parse_constant=_number)
    except RecursionError:
        raise OCMFError("JSON nested too deeply for a meter record") from None


def shown(value: object) -> str:
    """A value a peer wrote, in an error message: cut short."""
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


def decode(text: str, encoding: str) -> bytes:
    try:
        return bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise OCMFError(f"{text[:16]!r}... is not valid {encoding}") from None


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
