"""An ASGI app served by uvicorn inside a running event loop, next to other work (the Core Client's
front ends in its daemon, the test suite's apps): ``await start()``, ``await stop()``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the process that embeds it handles SIGINT/SIGTERM
        yield


class HttpServer:
    """Serves ``app`` on ``host:port`` (port 0: a free one). No access log: some requests carry
    signatures in their query."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        # log_config=None: uvicorn's lines go through the process's logging (the daemon's: with timestamps)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off", log_config=None
        )
        self.host, self.port = host, port
        self.server = _Server(config)
        self._task: asyncio.Task | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.server.servers[0].sockets[0].getsockname()[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

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
