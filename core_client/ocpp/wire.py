"""OCPP 1.6J framing and validation as the spec names it, plus meter-value parsing. Pure: no I/O.

The ``ocpp`` package silently drops frames it cannot parse and uses OCPP 2.0 error names
(``FormatViolation``); a 1.6 central system must answer with 1.6's codes (OCPP-J 1.6, 4.2.3):

- not JSON, or not a valid RPC frame ``[2, id, action, {payload}]``  -> FormationViolation
  (the CALLERROR carries the frame's message id when one can be read, else ``"-1"``);
- an action that OCPP 1.6 does not know                              -> NotImplemented
- a 1.6 action a central system does not take (e.g. RemoteStartTransaction from a charge point) -> NotSupported
- a required field missing                                           -> ProtocolError
- a field of the wrong JSON type or too long                         -> TypeConstraintViolation
- a value outside its enumeration or range                           -> PropertyConstraintViolation
- an unknown field or any other schema violation                     -> FormationViolation
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import fastjsonschema
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import Call, CallError, CallResult, get_validator
from ocpp.v16.enums import Action, Measurand, UnitOfMeasure, ValueFormat

KNOWN_ACTIONS = frozenset(a.value for a in Action)
ENERGY_REGISTER = Measurand.energy_active_import_register
MAX_INT_DIGITS = 19  # JSON integers up to 64 bits: no OCPP 1.6 field needs more
MAX_WH = 2**40  # an energy register beyond this (about 1.1 TWh) is not a reading
MAX_READING_CHARS = 40  # a meter value's text: "1099511627776.000" fits easily
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")
_MESSAGE_ID = re.compile(r'\s*\[\s*[234]\s*,\s*"([^"\\]{1,36})"')


class FrameError(Exception):
    """A CP-to-CSMS message that gets a CALLERROR (or, for a broken result, is dropped)."""

    def __init__(self, code: str, description: str, unique_id: str = "-1", reply: bool = True) -> None:
        description = wire_text(description, 300)  # it quotes the peer's action names and values
        super().__init__(f"{code}: {description}")
        self.code, self.description, self.unique_id, self.reply = code, description, unique_id, reply

    def call_error(self) -> str:
        """The CALLERROR frame to send back."""
        return CallError(self.unique_id, self.code, self.description, {}).to_json()


def parse_frame(raw: str | bytes) -> Call | CallResult | CallError:
    """Parse one websocket message into an OCPP-J message, or raise FrameError."""
    if isinstance(raw, bytes):
        raise FrameError("FormationViolation", "OCPP-J messages are text frames, not binary")
    try:
        frame = json.loads(raw, parse_int=_bounded_int, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        match = _MESSAGE_ID.match(raw)
        unique_id = match.group(1) if match else "-1"
        if isinstance(error, _NumberError):  # valid JSON, but a value no OCPP field can hold
            raise FrameError(error.code, str(error), unique_id) from None
        raise FrameError("FormationViolation", "message is not valid JSON", unique_id) from None
    if not isinstance(frame, list) or not frame:
        raise FrameError("FormationViolation", "an OCPP-J message is a JSON array [type, id, ...]")
    unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) and 0 < len(frame[1]) <= 36 else None
    message_type = frame[0]
    if unique_id is None:
        raise FrameError("FormationViolation", "message id missing, not a string or longer than 36 characters")
    if message_type == 2:
        if len(frame) != 4 or not isinstance(frame[2], str):
            raise FrameError("FormationViolation", "a CALL is [2, id, action, payload]", unique_id)
        if not isinstance(frame[3], dict):
            raise FrameError("FormationViolation", "the payload of a CALL is a JSON object", unique_id)
        return Call(unique_id, frame[2], frame[3])
    if message_type == 3 and len(frame) == 3 and isinstance(frame[2], dict):
        return CallResult(unique_id, frame[2])
    if message_type == 4 and len(frame) in (4, 5):
        return CallError(unique_id, *frame[2:])
    if message_type in (3, 4):
        raise FrameError("FormationViolation", "malformed CALLRESULT/CALLERROR", unique_id, reply=False)
    raise FrameError("FormationViolation", f"message type {message_type!r} is not 2, 3 or 4", unique_id)


class _NumberError(ValueError):
    """A JSON number no OCPP field can hold: an integer beyond 64 bits is a valid JSON value outside
    every field's range (PropertyConstraintViolation); NaN and Infinity are not JSON (FormationViolation)."""

    def __init__(self, message: str, code: str = "PropertyConstraintViolation") -> None:
        super().__init__(message)
        self.code = code


def _bounded_int(text: str) -> int:
    """json's parse_int: refuse integers beyond 64 bits before converting them (a 4,300-digit
    integer would raise, a longer one take quadratic time)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS or not -(2**63) <= (value := int(text)) < 2**63:
        raise _NumberError(f"an integer of {len(text)} characters: OCPP integers fit in 64 bits")
    return value


def _no_constant(text: str) -> float:
    """json's parse_constant: NaN and Infinity are not JSON."""
    raise _NumberError(f"{text} is not a JSON number", "FormationViolation")


def wire_text(value: object, limit: int = 120) -> str:
    """``value`` (from the wire: a charge point id, an idTag, a frame) made safe for one log line:
    control characters and quotes escaped as in a Python literal, cut to ``limit`` characters.
    Use it for everything a peer sent before putting it in a log message."""
    text = value if isinstance(value, str) else str(value)
    shown = text[:limit].encode("unicode_escape").decode("ascii")
    return shown + (f"...[{len(text)} chars]" if len(text) > limit else "")


def check_action(call: Call, handled: set[str]) -> None:
    """NotImplemented for actions OCPP 1.6 does not define, NotSupported for ones we do not take."""
    if call.action not in KNOWN_ACTIONS:
        raise FrameError("NotImplemented", f"{call.action} is not an OCPP 1.6 action", call.unique_id)
    if call.action not in handled:
        raise FrameError("NotSupported", f"the central system does not take {call.action}", call.unique_id)


def validate_call(call: Call) -> None:
    """Check a CALL's payload against the OCPP 1.6 JSON schema, raising FrameError with 1.6's code.

    A payload the compiled schema (:func:`compiled_call_schema`) accepts is valid; only one it refuses is walked by
    ``jsonschema``, which names the violation the error code comes from (the one nearest the root)."""
    if not _is_valid(call.action, call.payload):
        validator = get_validator(2, call.action, "1.6")
        error = next(iter(sorted(validator.iter_errors(call.payload), key=lambda e: len(e.path))), None)
        if error is not None:
            raise FrameError(_code_of(error), f"{call.action}: {_where(error)}{error.message}", call.unique_id)
    for key in ("meterValue", "transactionData"):
        for reading in call.payload.get(key) or []:
            for sample in reading["sampledValue"]:
                if sample.get("format") == "SignedData" and nested_too_deeply(sample["value"]):
                    raise FrameError(
                        "FormationViolation", f"{call.action}: a signed value nested too deeply", call.unique_id
                    )


def _is_valid(action: str, payload: dict[str, Any]) -> bool:
    """Whether ``payload`` is valid for ``action``'s CALL schema, by the schema compiled to Python."""
    try:
        compiled_call_schema(action)(payload)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@functools.cache
def compiled_call_schema(action: str) -> Callable[[Any], Any]:
    """``action``'s OCPP 1.6 CALL schema (the one ``jsonschema`` checks, from ``ocpp``'s cache) compiled
    by ``fastjsonschema`` into a Python function: 10 to 30 times faster than ``jsonschema``'s walk of
    the schema. It asserts what ``jsonschema`` asserts: ``format`` is not checked (Draft 4 leaves it
    optional, and ``ocpp``'s validators do not check it), and no default is filled in."""
    schema = get_validator(2, action, "1.6").schema
    return fastjsonschema.compile(schema, use_formats=False, use_default=False, detailed_exceptions=False)


def nested_too_deeply(text: str) -> bool:
    """Whether the JSON in ``text`` (or in an OCMF record) nests deeper than a JSON reader goes (about
    1,000 levels: Python's recursion limit). Its brackets are read as nested arrays by ``json``'s C
    scanner, so a megabyte takes milliseconds (brackets in strings count too: no meter writes
    hundreds of them; :mod:`ev_network.ocmf` refuses what nests too deeply for it anyway)."""
    skeleton = text.encode().translate(_AS_ARRAYS, delete=_NOT_BRACKETS).replace(b"][", b"],[")
    try:
        json.loads(skeleton)
    except RecursionError:
        return True
    except ValueError:  # brackets that do not pair up: not this check's business
        return False
    return False


def _code_of(error: SchemaError) -> str:
    if error.validator == "required":
        return "ProtocolError"
    if error.validator in ("type", "maxLength", "format", "multipleOf"):
        return "TypeConstraintViolation"
    if error.validator in ("enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return "PropertyConstraintViolation"
    return "FormationViolation"


def _where(error: SchemaError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: " if path else ""


def utc_now() -> str:
    """An OCPP timestamp: UTC, milliseconds, 'Z'."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def energy_register_wh(meter_values: list[dict[str, Any]]) -> int | None:
    """The latest Energy.Active.Import.Register reading (in Wh) among OCPP MeterValue entries.

    Entries are the snake_case dicts the ``ocpp`` package hands to handlers (``sampled_value``,
    ``measurand``, ``unit``, ``value``). A sample without measurand is the energy register (the
    spec's default); kWh readings are converted; unparsable values, and values beyond
    :data:`MAX_WH`, are skipped, checked before any conversion so that no text takes long.
    """
    latest: int | None = None
    for entry in meter_values or []:
        for sample in entry.get("sampled_value") or []:
            if sample.get("measurand", ENERGY_REGISTER) == ENERGY_REGISTER and not sample.get("phase"):
                value = _sample_number(sample, UnitOfMeasure.wh, UnitOfMeasure.kwh, MAX_WH)
                latest = latest if value is None else value
    return latest


def active_power_w(meter_values: list[dict[str, Any]], max_power_w: int) -> int | None:
    """The latest Power.Active.Import (in W) among OCPP MeterValue entries, as the charge point reports
    it: the sample without phase (kW converted); None when there is none, or it is not a number
    from 0 to ``max_power_w`` (what a connector delivers at most: beyond is not plausible)."""
    latest: int | None = None
    for entry in meter_values or []:
        for sample in entry.get("sampled_value") or []:
            if sample.get("measurand") == Measurand.power_active_import and not sample.get("phase"):
                latest = _sample_number(sample, UnitOfMeasure.w, UnitOfMeasure.kw, max_power_w)
    return latest


def _sample_number(sample: dict[str, Any], unit: str, kilo_unit: str, most: int) -> int | None:
    """A plain sample's value in ``unit`` (``kilo_unit`` converted): None when it is signed data,
    not a number, negative or beyond ``most``; checked before any conversion, so no text takes long."""
    text = str(sample.get("value"))
    if sample.get("format") == ValueFormat.signed_data or len(text) > MAX_READING_CHARS:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0:
        return None
    if sample.get("unit", unit) == kilo_unit:
        value *= 1000
    return int(value) if value <= most else None  # compares exponents: fast even for 1e999999


def signed_meter_data(transaction_data: list[dict] | None) -> str | None:
    """The signed meter values (``format`` SignedData, e.g. OCMF) of a StopTransaction's transactionData,
    in the order sent and one per line; None when there are none. Takes the ocpp package's snake_case
    keys or the wire's camelCase."""
    signed = [
        sample["value"]
        for reading in transaction_data or []
        for sample in reading.get("sampled_value", reading.get("sampledValue", []))
        if sample.get("format") == ValueFormat.signed_data
    ]
    return "\n".join(signed) or None
