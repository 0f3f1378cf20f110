"""OCPI transport: the envelope, the Authorization header (Base64, and the unencoded form of older
peers), pagination headers; and our HTTP client against a real HTTP server written here with
aiohttp.web (it shares no code with our OCPI server)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from core_client.ocpi.client import OcpiClient
from core_client.ocpi.errors import OcpiProtocolError, OcpiRejected, OcpiUnauthorized, OcpiUnreachable
from core_client.ocpi.transport import (
    PageRequest,
    Party,
    TokenEncoding,
    authorization,
    envelope,
    next_link,
    page_request,
    paginate,
    presented_tokens,
)

US = Party("DE", "EVN")
CSMS = Party("NL", "TNM")


def test_authorization_is_base64_of_the_token() -> None:
    assert authorization("example-token") == "Token " + base64.b64encode(b"example-token").decode()
    assert authorization("example-token", TokenEncoding.PLAIN) == "Token example-token"


def test_presented_tokens_accept_base64_and_the_unencoded_form() -> None:
    encoded = base64.b64encode(b"abc-123").decode()
    assert presented_tokens(f"Token {encoded}") == ["abc-123", encoded]
    assert presented_tokens("Token abc-123") == ["abc-123"]  # not Base64: taken as written
    assert presented_tokens("token abc-123") == ["abc-123"]  # the scheme is case-insensitive
    for bad in (None, "", "Bearer abc", "Token", "Token a b", "Basic YWJj"):
        assert presented_tokens(bad) == []


def test_envelope() -> None:
    body = envelope({"a": 1})
    assert body["data"] == {"a": 1} and body["status_code"] == 1000 and body["timestamp"].endswith("Z")
    error = envelope(None, 2001, "Missing required field: type")
    assert "data" not in error and error["status_message"] == "Missing required field: type"


def test_paginate_links_the_next_page_with_the_request_filters() -> None:
    items = list(range(5))
    url = "https://emsp.example.com/ocpi/2.2.1/tokens?date_from=2026-01-01T00:00:00Z&offset=0&limit=2"
    page = paginate(items, PageRequest(0, 2), url, max_limit=100)
    assert page.items == [0, 1]
    assert page.headers["X-Total-Count"] == "5" and page.headers["X-Limit"] == "2"
    link = next_link(page.headers["Link"])
    assert link == "https://emsp.example.com/ocpi/2.2.1/tokens?date_from=2026-01-01T00%3A00%3A00Z&offset=2&limit=2"
    last = paginate(items, PageRequest(4, 2), url, max_limit=100)
    assert last.items == [4] and "Link" not in last.headers


def test_paginate_caps_the_limit_and_says_so() -> None:
    page = paginate(list(range(10)), PageRequest(0, 2000), "http://h/x", max_limit=3)
    assert page.items == [0, 1, 2] and page.headers["X-Limit"] == "3"
    assert "offset=3&limit=3" in page.headers["Link"]


def test_page_request_parameters_are_checked() -> None:
    request = page_request({"offset": "10", "limit": "5", "date_from": "2026-01-01T00:00:00Z"})
    assert (request.offset, request.limit) == (10, 5) and request.date_from is not None
    for bad in ({"offset": "-1"}, {"limit": "ten"}, {"date_to": "2026-01-01"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            page_request(bad)


# ------------------------------------------------------------------------------ the client, over HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(handler: Callable[[web.Request], Any], port: int | None = None) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def peer() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Callable[[web.Request], Any], port: int | None = None) -> str:
        runner, url = await serve(handler, port)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


def ocpi(data: Any = None, status_code: int = 1000, http: int = 200, headers: dict | None = None) -> web.Response:
    body = {"status_code": status_code, "timestamp": "2026-12-06T10:00:00Z"}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=http, headers=headers)


async def test_request_sends_the_ocpi_headers_and_unwraps_data(peer) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        seen["body"] = (await request.read()).decode()
        return ocpi({"ok": True})

    url = await peer(handler)
    async with OcpiClient(sender=US) as client:
        answer = await client.request("POST", f"{url}/x", "tok-C", body={"kwh": 1}, receiver=CSMS)
    assert answer.data == {"ok": True} and answer.status_code == 1000
    assert seen["Authorization"] == "Token " + base64.b64encode(b"tok-C").decode()
    assert seen["X-Request-ID"] and seen["X-Correlation-ID"] and seen["X-Request-ID"] != seen["X-Correlation-ID"]
    assert (seen["OCPI-from-country-code"], seen["OCPI-from-party-id"]) == ("DE", "EVN")
    assert (seen["OCPI-to-country-code"], seen["OCPI-to-party-id"]) == ("NL", "TNM")
    assert seen["Content-Type"] == "application/json" and json.loads(seen["body"]) == {"kwh": 1}


async def test_no_routing_headers_without_a_receiver(peer) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return ocpi([])

    url = await peer(handler)
    async with OcpiClient(sender=US, encoding=TokenEncoding.PLAIN) as client:
        await client.request("GET", f"{url}/versions", "tok-A")
    assert seen["Authorization"] == "Token tok-A"
    assert not any(name.lower().startswith("ocpi-") for name in seen)


async def test_get_all_follows_next_links_to_the_last_page(peer) -> None:
    async def handler(request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", 0))
        assert request.query.get("date_from") == "2026-01-01T00:00:00Z"  # kept in every link
        headers = {"X-Total-Count": "5", "X-Limit": "2"}
        if offset + 2 < 5:
            headers["Link"] = (
                f'<{request.url.with_query(date_from="2026-01-01T00:00:00Z", offset=offset + 2)}>; rel="next"'
            )
        return ocpi(list(range(offset, min(offset + 2, 5))), headers=headers)

    url = await peer(handler)
    async with OcpiClient() as client:
        pages = [p async for p in client.get_all(f"{url}/locations", "t", params={"date_from": "2026-01-01T00:00:00Z"})]
    assert pages == [[0, 1], [2, 3], [4]]


async def test_get_all_follows_a_relative_link_and_takes_no_data_as_empty(peer) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.query.get("offset") == "1":
            return ocpi(None)  # success without data: an empty last page
        return ocpi([1], headers={"Link": '</locations?offset=1&limit=1>; rel="next"'})

    url = await peer(handler)
    async with OcpiClient() as client:
        assert [p async for p in client.get_all(f"{url}/locations", "t")] == [[1], []]


async def test_get_all_refuses_a_link_to_another_host(peer) -> None:
    async def handler(request: web.Request) -> web.Response:
        return ocpi([1], headers={"Link": '<https://evil.example.com/steal?offset=1>; rel="next"'})

    url = await peer(handler)
    async with OcpiClient() as client:
        with pytest.raises(OcpiProtocolError, match="another host"):
            _ = [p async for p in client.get_all(f"{url}/locations", "t")]


@pytest.mark.parametrize(
    "response, error, text",
    [
        (lambda: ocpi(None, 2000, http=401), OcpiUnauthorized, "HTTP 401, our credentials token is not accepted"),
        (lambda: ocpi(None, 2001), OcpiRejected, "refused (status 2001)"),
        (lambda: ocpi(None, 2000, http=405), OcpiRejected, "HTTP 405 (status 2000)"),
        (lambda: web.Response(text="<html>oops</html>", status=500), OcpiRejected, "HTTP 500 (no OCPI envelope)"),
        (lambda: web.Response(text="not json"), OcpiProtocolError, "without an OCPI response envelope"),
    ],
)
async def test_refusals_become_one_clear_error(peer, response, error, text) -> None:
    async def handler(request: web.Request) -> web.Response:
        return response()

    url = await peer(handler)
    async with OcpiClient() as client:
        with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")) as raised:
            await client.request("GET", f"{url}/x", "secret-token-value")
    assert "secret-token-value" not in str(raised.value)


async def test_unreachable_peer_is_retried_until_the_time_budget_then_one_error() -> None:
    port = free_port()
    async with OcpiClient(timeout_s=0.6) as client:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(OcpiUnreachable, match=r"cannot connect .* retried for 0.6s"):
            await client.request("GET", f"http://127.0.0.1:{port}/versions", "t")
        assert 0.55 < loop.time() - began < 2


async def test_a_peer_that_comes_back_within_the_budget_is_reached(peer) -> None:
    port = free_port()

    async def handler(request: web.Request) -> web.Response:
        return ocpi("back")

    async def start_later() -> None:
        await asyncio.sleep(0.5)
        await peer(handler, port)

    starting = asyncio.create_task(start_later())
    async with OcpiClient(timeout_s=10) as client:
        answer = await client.request("GET", f"http://127.0.0.1:{port}/x", "t")
    await starting
    assert answer.data == "back"
