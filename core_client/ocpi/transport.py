"""OCPI 2.2.1 transport rules (transport_and_format.asciidoc, status_codes.asciidoc), shared by our
client and our server: the response envelope, status codes, the ``Authorization: Token <Base64>``
header, the unique message ids, the routing headers and pagination.

Pure functions: no network here (the client is :mod:`core_client.ocpi.client`, the server
:mod:`core_client.ocpi.server`)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core_client.ocpi.models.base import format_datetime, parse_datetime
from core_client.ocpi.models.platform import TOKEN

VERSION = "2.2.1"
LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


class StatusCode(IntEnum):
    """OCPI status codes (status_codes.asciidoc)."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    UNABLE_TO_USE_CLIENT_API = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


class Header(str, Enum):
    """HTTP headers OCPI defines (names are case-insensitive)."""

    AUTHORIZATION = "Authorization"
    REQUEST_ID = "X-Request-ID"
    CORRELATION_ID = "X-Correlation-ID"
    FROM_COUNTRY_CODE = "OCPI-from-country-code"
    FROM_PARTY_ID = "OCPI-from-party-id"
    TO_COUNTRY_CODE = "OCPI-to-country-code"
    TO_PARTY_ID = "OCPI-to-party-id"
    TOTAL_COUNT = "X-Total-Count"
    LIMIT = "X-Limit"
    LINK = "Link"
    LOCATION = "Location"


class TokenEncoding(str, Enum):
    """How we write our credentials token in ``Authorization``: 2.2.1 requires Base64; ``plain`` for a
    peer that still expects the 2.1.1 / 2.2 form (the compatibility note of transport_and_format)."""

    BASE64 = "base64"
    PLAIN = "plain"


@dataclass(frozen=True)
class Party:
    """One party of a connection: the country code and party id OCPI routes by."""

    country_code: str
    party_id: str

    def key(self) -> tuple[str, str]:
        """The case-insensitive form (both are CiStrings)."""
        return self.country_code.upper(), self.party_id.upper()

    def __str__(self) -> str:
        return f"{self.country_code}/{self.party_id}"


def now() -> datetime:
    return datetime.now(timezone.utc)


def envelope(data: Any = None, status_code: int = StatusCode.SUCCESS, message: str | None = None) -> dict[str, Any]:
    """The OCPI response format: ``data`` (left out when None), ``status_code``, ``status_message`` (when
    given) and ``timestamp``."""
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = int(status_code)
    if message:
        body["status_message"] = message
    body["timestamp"] = format_datetime(now())
    return body


def loads(raw: bytes | str) -> Any:
    """JSON as OCPI numbers need it: every fraction an exact Decimal. ValueError when not JSON."""
    return json.loads(raw, parse_float=Decimal)


def dumps(value: Any) -> bytes:
    """Compact JSON (Decimals, should any remain, as numbers)."""
    return json.dumps(value, separators=(",", ":"), default=_number, ensure_ascii=False).encode()


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def authorization(token: str, encoding: TokenEncoding = TokenEncoding.BASE64) -> str:
    """The ``Authorization`` value for our credentials token."""
    if encoding is TokenEncoding.PLAIN:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode()).decode()


def presented_tokens(header: str | None) -> list[str]:
    """What credentials token an ``Authorization`` value may carry: the Base64-decoded token (2.2.1), and
    the value as written (2.1.1 / 2.2 peers that do not encode; the compatibility note). Empty when the
    header is missing or not ``Token <value>``."""
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not TOKEN.fullmatch(value):
        return []
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return [value]
    return [decoded, value] if TOKEN.fullmatch(decoded) else [value]


def new_id() -> str:
    """A fresh X-Request-ID / X-Correlation-ID."""
    return str(uuid.uuid4())


def request_headers(
    token: str,
    encoding: TokenEncoding,
    *,
    correlation_id: str | None = None,
    sender: Party | None = None,
    receiver: Party | None = None,
) -> dict[str, str]:
    """Headers of a request we send: Authorization, a new X-Request-ID, the X-Correlation-ID (new unless
    continuing one), and the routing headers when both parties are given (functional modules only:
    never for versions or credentials)."""
    headers = {
        Header.AUTHORIZATION.value: authorization(token, encoding),
        Header.REQUEST_ID.value: new_id(),
        Header.CORRELATION_ID.value: correlation_id or new_id(),
    }
    if sender is not None and receiver is not None:
        headers[Header.FROM_COUNTRY_CODE.value] = sender.country_code
        headers[Header.FROM_PARTY_ID.value] = sender.party_id
        headers[Header.TO_COUNTRY_CODE.value] = receiver.country_code
        headers[Header.TO_PARTY_ID.value] = receiver.party_id
    return headers


# ------------------------------------------------------------------------------------------ pagination


@dataclass(frozen=True)
class PageRequest:
    """A paginated GET's parameters (transport_and_format, "Paginated Request")."""

    offset: int = 0
    limit: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    def matches(self, last_updated: datetime) -> bool:
        """Whether an object's ``last_updated`` is within [date_from, date_to)."""
        if self.date_from is not None and last_updated < self.date_from:
            return False
        return self.date_to is None or last_updated < self.date_to


def page_request(params: dict[str, str]) -> PageRequest:
    """The pagination parameters of a query; ValueError naming the bad one."""

    def integer(name: str) -> int | None:
        text = params.get(name)
        if text is None:
            return None
        if not text.isdigit():
            raise ValueError(f"{name}={text!r} is not a non-negative integer")
        return int(text)

    def when(name: str) -> datetime | None:
        text = params.get(name)
        if text is None:
            return None
        try:
            return parse_datetime(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not an OCPI DateTime") from None

    return PageRequest(integer("offset") or 0, integer("limit"), when("date_from"), when("date_to"))


@dataclass(frozen=True)
class Page:
    """One page of a list a server answers, with its pagination headers."""

    items: list[Any]
    headers: dict[str, str]


def paginate(items: list[Any], request: PageRequest, url: str, max_limit: int) -> Page:
    """The page of ``items`` (already filtered by date, oldest first) that ``request`` asks for, with
    ``X-Total-Count``, ``X-Limit`` (the most we return at once) and, unless it is the last page, a
    ``Link`` to the next one that keeps the request's other parameters."""
    limit = max_limit if request.limit is None else min(request.limit, max_limit)
    page = items[request.offset : request.offset + limit]
    headers = {Header.TOTAL_COUNT.value: str(len(items)), Header.LIMIT.value: str(limit)}
    following = request.offset + len(page)
    if following < len(items) and limit > 0:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("offset", "limit")]
        query += [("offset", str(following)), ("limit", str(limit))]
        headers[Header.LINK.value] = f'<{urlunsplit(parts._replace(query=urlencode(query)))}>; rel="next"'
    return Page(page, headers)


def next_link(link_header: str | None) -> str | None:
    """The URL of the ``rel="next"`` link in a ``Link`` header, if any."""
    if not link_header:
        return None
    match = LINK_NEXT.search(link_header)
    return match.group(1).strip() if match else None
