"""An ASGI app served by uvicorn inside a running event loop, next to other work (the Core Client's
front ends in its daemon, the test suite's apps): ``await start()``, ``await stop()``. Optionally over
TLS; a request that has not fully arrived within ``request_timeout_s`` of its first byte (or of the
connection) is dropped (:class:`TimedRequests`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the process that embeds it handles SIGINT/SIGTERM
        yield


class TimedRequests(H11Protocol):
    """uvicorn's h11 protocol with a bound on how long a request may take to arrive: a client that
    connects and sends nothing, or half a request line, headers or body, is disconnected
    ``request_timeout_s`` after the connection (or the end of the previous response). uvicorn's own
    keep-alive timeout covers only an idle connection between requests, and only until its first byte."""

    def __init__(self, *args: Any, request_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout_s = request_timeout_s
        self.request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Time the request being received; stop once it is all in (the response may take long)."""
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            if self.request_timer is None:
                self.request_timer = self.loop.call_later(self.request_timeout_s, self._too_slow)
        else:
            self._stop_watching()

    def _stop_watching(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def _too_slow(self) -> None:
        self.request_timer = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


class HttpServer:
    """Serves ``app`` on ``host:port`` (port 0: a free one), over TLS when given ``tls`` (certificate
    and key files, PEM). No access log: some requests carry signatures in their query."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        tls: tuple[Path, Path] | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        cert, key = tls or (None, None)
        # log_config=None: uvicorn's lines go through the process's logging (the daemon's: with timestamps)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            log_config=None,
            http=functools.partial(TimedRequests, request_timeout_s=request_timeout_s),  # type: ignore[arg-type]
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        self.host, self.port, self.scheme = host, port, "https" if tls else "http"
        self.server = _Server(config)
        self._task: asyncio.Task | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.server.servers[0].sockets[0].getsockname()[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{self.scheme}://[{host}]:{port}" if ":" in host else f"{self.scheme}://{host}:{port}"

    async def start(self) -> None:
        """Listen and serve; OSError (naming the address) if it cannot listen there."""
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.create_server((self.host, self.port), family=family)
        except OSError as error:
            raise OSError(f"cannot listen on {self.host}:{self.port}: {error.strerror or error}") from None
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # raises why it could not start
                raise OSError(f"the HTTP server on {self.host}:{self.port} stopped before it started")
            await asyncio.sleep(0.02)

    async def stop(self, grace_s: float = 2) -> None:
        """Stop serving; connections still open after ``grace_s`` (event streams) are closed."""
        self.server.should_exit = True
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=grace_s)
        if not done:
            self.server.force_exit = True
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
