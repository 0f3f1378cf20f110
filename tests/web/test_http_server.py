"""ev_network.web.server.HttpServer over real sockets: a client that connects and sends nothing, half a
request, or a request a byte at a time is disconnected within ``request_timeout_s``; a whole request is
answered, and a response that takes longer than the bound (an event stream) is not cut."""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from ev_network.web.server import HttpServer

BOUND_S = 0.5
CLOSED_WITHIN_S = BOUND_S + 2  # the bound and a loaded machine's slack; uvicorn alone never closes them


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def slow_stream(request: Request) -> StreamingResponse:
    async def chunks():
        for n in range(3):
            await asyncio.sleep(BOUND_S)
            yield f"chunk {n}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def serving() -> HttpServer:
    app = Starlette(routes=[Route("/", hello), Route("/stream", slow_stream)])
    server = HttpServer(app, "127.0.0.1", 0, request_timeout_s=BOUND_S)
    await server.start()
    return server


async def closed_after(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """What the server sent before closing, and after how long (TimeoutError if it keeps it open)."""
    began = time.monotonic()
    data = await asyncio.wait_for(reader.read(), CLOSED_WITHIN_S)
    return data, time.monotonic() - began


async def test_half_sent_requests_are_dropped_within_the_bound_and_whole_ones_answered():
    server = await serving()
    host, port = server.address
    try:
        for half in (b"", b"GET / HT", b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: "):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(half)
            data, after = await closed_after(reader)
            assert data == b"" and after >= BOUND_S * 0.8, (half, after)
            writer.close()

        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # whole: answered, then kept alive
        assert (await asyncio.wait_for(reader.readuntil(b"hello"), 5)).startswith(b"HTTP/1.1 200")
        writer.write(b"GET / HTTP/1.1\r\n")  # the next request on it, half sent: dropped as well
        assert (await closed_after(reader))[0] == b""
        writer.close()
    finally:
        await server.stop()


async def test_a_request_sent_a_byte_at_a_time_is_dropped_however_busy_the_client_is():
    server = await serving()
    reader, writer = await asyncio.open_connection(*server.address)

    async def trickle() -> None:
        for byte in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 1000:
            writer.write(bytes([byte]))
            await asyncio.sleep(BOUND_S / 5)

    sender = asyncio.create_task(trickle())
    try:
        data, after = await closed_after(reader)
        assert data == b"" and not sender.done() and after < CLOSED_WITHIN_S
    finally:
        sender.cancel()
        writer.close()
        await server.stop()


async def test_a_response_longer_than_the_bound_is_not_cut():
    server = await serving()
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        writer.write(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        body = await asyncio.wait_for(reader.readuntil(b"chunk 2\n"), 10)  # 3 x the bound after the request
        assert b"chunk 0\n" in body and b"chunk 1\n" in body
    finally:
        writer.close()
        await server.stop()
