"""The simulator's peer: the bare OCPP central system of benchmarks.bare_central on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from benchmarks.bare_central import BareCentral, serve_bare


@pytest.fixture
async def central() -> AsyncIterator[BareCentral]:
    server = await serve_bare("127.0.0.1", 0)  # port 0: the OS picks a free port
    yield server
    await server.close()
