"""Our OCPI HTTP client (aiohttp: the daemon is asyncio, and aiohttp is already installed with web3).

:class:`OcpiClient` sends one request with the headers OCPI requires (``Authorization: Token
<Base64>``, X-Request-ID, X-Correlation-ID, routing headers for functional modules), unwraps the
response envelope and raises one of :mod:`core_client.ocpi.errors` for anything but success.
A connection that cannot be made is retried with backoff until the request's time budget is spent
(a POST only when nothing reached the peer, so a command is never sent twice); then
:class:`~core_client.ocpi.errors.OcpiUnreachable`. :meth:`OcpiClient.get_all` follows the
``Link: <...>; rel="next"`` pages until the last."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
from pydantic import BaseModel, ValidationError

from core_client.ocpi.errors import OcpiProtocolError, OcpiRejected, OcpiUnauthorized, OcpiUnreachable
from core_client.ocpi.models.base import explain
from core_client.ocpi.transport import Header, Party, TokenEncoding, dumps, loads, next_link, request_headers

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 2.0
MAX_PAGES = 10_000
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Answer:
    """A successful OCPI response."""

    http_status: int
    status_code: int
    message: str | None
    data: Any
    headers: Mapping[str, str]


class OcpiClient:
    """Requests to one OCPI peer. Use as ``async with OcpiClient(...) as client``."""

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        encoding: TokenEncoding = TokenEncoding.BASE64,
        sender: Party | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.encoding = encoding
        self.sender = sender
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OcpiClient:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def request(
        self,
        method: str,
        url: str,
        token: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        receiver: Party | None = None,
        correlation_id: str | None = None,
    ) -> Answer:
        """Send one request; the answer when its status code is 1xxx, else an OcpiError."""
        if self._http is None:
            raise RuntimeError("OcpiClient used outside 'async with'")
        what = f"{method} {url}"
        headers = request_headers(
            token, self.encoding, correlation_id=correlation_id, sender=self.sender, receiver=receiver
        )
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = dumps(body)
        deadline = time.monotonic() + self.timeout_s
        delay = RETRY_FIRST_S
        while True:
            left = deadline - time.monotonic()
            try:
                async with self._http.request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=max(left, 0.05)),
                    allow_redirects=False,
                ) as response:
                    raw = await response.read()
                    return _answer(what, response.status, raw, response.headers)
            except aiohttp.ClientConnectorError as error:
                reason = f"cannot connect ({error.os_error.strerror or error.os_error})"
            except aiohttp.ServerDisconnectedError:
                if method == "POST":
                    raise OcpiUnreachable(f"{what}: the peer closed the connection before answering") from None
                reason = "the peer closed the connection before answering"
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                raise OcpiUnreachable(f"{what}: no answer within {self.timeout_s:g}s") from None
            except aiohttp.InvalidURL:
                raise OcpiProtocolError(f"{what}: not a valid URL") from None
            except aiohttp.ClientError as error:
                raise OcpiUnreachable(f"{what}: {' '.join(str(error).split()) or type(error).__name__}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise OcpiUnreachable(f"{what}: {reason}, retried for {self.timeout_s:g}s")
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, RETRY_MAX_S)

    async def get_all(
        self,
        url: str,
        token: str,
        *,
        params: Mapping[str, str] | None = None,
        receiver: Party | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Each page of a paginated list (a list of raw JSON objects), following ``Link rel="next"``
        until there is none. A link to another host is refused (it would be sent our token)."""
        origin = _origin(url)
        seen: set[str] = set()
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            answer = await self.request(
                "GET", next_url, token, params=params if next_url == url else None, receiver=receiver
            )
            page = [] if answer.data is None else answer.data
            if not isinstance(page, list):
                raise OcpiProtocolError(f"GET {next_url}: data is not a list")
            yield page
            seen.add(next_url)
            link = next_link(answer.headers.get(Header.LINK.value))
            next_url = None if link is None else urljoin(next_url, link)  # a relative link: from this page
            if next_url is not None and _origin(next_url) != origin:
                raise OcpiProtocolError(f"GET {url}: next page {next_url} is on another host")
            if next_url in seen or (next_url is not None and not page):
                raise OcpiProtocolError(f"GET {url}: next page link {next_url} loops")
        raise OcpiProtocolError(f"GET {url}: more than {MAX_PAGES} pages")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _answer(what: str, http_status: int, raw: bytes, headers: Mapping[str, str]) -> Answer:
    """The answer of a response, or the OcpiError it amounts to."""
    try:
        body = loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    envelope = body if isinstance(body, dict) and isinstance(body.get("status_code"), int) else None
    status_code = envelope["status_code"] if envelope else None
    message = envelope.get("status_message") if envelope else None
    detail = f"status {status_code}" + (f": {message}" if message else "") if envelope else "no OCPI envelope"
    if http_status == 401:
        raise OcpiUnauthorized(
            f"{what}: HTTP 401, our credentials token is not accepted ({detail})",
            http_status=http_status,
            status_code=status_code,
        )
    if http_status >= 300:
        raise OcpiRejected(f"{what}: HTTP {http_status} ({detail})", http_status=http_status, status_code=status_code)
    if envelope is None:
        raise OcpiProtocolError(f"{what}: HTTP {http_status} without an OCPI response envelope")
    if not 1000 <= status_code < 2000:
        raise OcpiRejected(f"{what}: refused ({detail})", http_status=http_status, status_code=status_code)
    return Answer(http_status, status_code, message, envelope.get("data"), headers)


def parse(model: type[M], data: object, what: str) -> M:
    """``data`` as ``model``, or OcpiProtocolError saying why not (what the peer sent us is not 2.2.1)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise OcpiProtocolError(f"{what}: not a valid {model.__name__}: {explain(error)}") from None


def parse_list(model: type[M], data: object, what: str) -> list[M]:
    if not isinstance(data, list):
        raise OcpiProtocolError(f"{what}: data is not a list of {model.__name__}")
    return [parse(model, item, what) for item in data]
