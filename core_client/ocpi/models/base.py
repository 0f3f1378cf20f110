"""OCPI 2.2.1's basic types (types.asciidoc) as pydantic annotations, and the base of every object.

- ``CiString(n)``: printable ASCII, at most ``n`` characters, compared case-insensitively (:func:`ci`).
- ``String(n)``: printable UTF-8 (no control characters), at most ``n`` characters.
- ``DateTime``: RFC 3339 in UTC, ``2015-06-29T20:39:09Z`` with optional fraction and optional ``Z``
  (absent means UTC), at most 25 characters; ``+00:00`` and other offsets are refused, as the text says.
  Parsed to an aware :class:`~datetime.datetime`; written back with ``Z``.
- ``Number``: a JSON number, kept exact as :class:`~decimal.Decimal` (a string or boolean is refused).
- ``Int`` / ``Bool``: JSON integers / booleans only (no ``"5"``, no ``"true"``).

Objects accept and keep properties they do not know (custom extensions); required properties, lengths,
enums and formats are checked.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
)

PRINTABLE_ASCII = r"^[\x20-\x7E]*$"
PRINTABLE_UTF8 = r"^[^\x00-\x1F\x7F]*$"
DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z?")


def CiString(length: int) -> Any:
    """OCPI ``CiString(length)``: printable ASCII, case-insensitive."""
    return Annotated[str, StringConstraints(max_length=length, pattern=PRINTABLE_ASCII)]


def String(length: int) -> Any:
    """OCPI ``string(length)``: printable UTF-8."""
    return Annotated[str, StringConstraints(max_length=length, pattern=PRINTABLE_UTF8)]


def ci(value: str) -> str:
    """The form under which two CiStrings compare equal."""
    return value.upper()


def parse_datetime(value: Any) -> datetime:
    """An OCPI DateTime text as an aware UTC datetime (a datetime given is made UTC); ValueError otherwise."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if not isinstance(value, str) or len(value) > 25 or not DATETIME.fullmatch(value):
        raise ValueError("not an OCPI DateTime (RFC 3339 in UTC, e.g. 2015-06-29T20:39:09Z)")
    year, month, day, hour, minute, second, fraction = DATETIME.fullmatch(value).groups()  # type: ignore[union-attr]
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    parts = (int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    return datetime(*parts, tzinfo=timezone.utc)


def format_datetime(value: datetime) -> str:
    """A datetime as OCPI writes it: UTC, ``Z``, milliseconds only when there are any."""
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("not a JSON number")
    decimal = value if isinstance(value, Decimal) else Decimal(str(value))
    if not decimal.is_finite():
        raise ValueError("not a finite number")
    return decimal


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


DateTime = Annotated[datetime, BeforeValidator(parse_datetime), PlainSerializer(format_datetime, when_used="json")]
Number = Annotated[Decimal, BeforeValidator(_number), PlainSerializer(_json_number, when_used="json")]
Int = StrictInt
Bool = StrictBool
URL = Annotated[str, StringConstraints(max_length=255, pattern=r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20\x7F]+$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]  # ISO-3166 alpha-2, CiString(2)
PartyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{3}$")]  # ISO-15118 party id, CiString(3)


def explain(error: ValidationError, most: int = 5) -> str:
    """A validation error in one line: ``field.path: message; ...`` (at most ``most`` of them)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()[:most]]
    more = error.error_count() - most
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class OcpiModel(BaseModel):
    """Base of the OCPI objects: unknown properties accepted and kept, everything declared validated."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The object as OCPI JSON (absent optional properties left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class DisplayText(OcpiModel):
    language: String(2)
    text: String(512)


class Price(OcpiModel):
    excl_vat: Number
    incl_vat: Number | None = None
