"""The independent OCPI 2.2.1 CPO platform (tests/interop/ocpi_cpo.js, Node, written from the
specification by another hand) as a process for our tests, with its control API; and its mirror image,
the stand-in eMSP (tests/interop/ocpi_emsp.js)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tools.harness.interop import PEERS

PEER = PEERS / "ocpi_cpo.js"
EMSP = PEERS / "ocpi_emsp.js"
TOKEN_A = "token-a-from-the-cpo"


@dataclass
class Cpo:
    base: str
    ready: dict[str, Any]
    http: aiohttp.ClientSession

    @property
    def versions_url(self) -> str:
        return self.ready["versions_url"]

    @property
    def meter_key(self) -> str:
        """The public key (DER SubjectPublicKeyInfo, hex) of the meter that signs its CDRs' OCMF values."""
        return self.ready["meter"]["der_hex"]

    def ocpi(self, path: str) -> str:
        """The URL of ``path`` under the platform's /ocpi (e.g. "2.2.1/cdrs")."""
        return f"{self.base}/ocpi/{path}"

    async def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        method = "GET" if body is None else "POST"
        async with self.http.request(method, f"{self.base}/control/{name}", json=body) as response:
            return await response.json()

    async def wait_log(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = 20, since: int = 0
    ) -> dict[str, Any]:
        """The first exchange in the platform's log after ``since`` for which ``matches`` is true, once logged."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for entry in await self.control(f"log?since={since}"):
                if matches(entry):
                    return entry
                since = entry["seq"]
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no matching exchange in the CPO platform's log within {timeout} s")
            await asyncio.sleep(0.05)

    async def cdrs(self, timeout: float = 20) -> list[dict[str, Any]]:
        """The CDRs the platform made, once there is at least one."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (cdrs := (await self.control("state"))["cdrs"]):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the CPO platform made no CDR within {timeout} s")
            await asyncio.sleep(0.1)
        return cdrs

    async def violations(self) -> list[Any]:
        """What the platform found against 2.2.1 in what we sent it (and its own refusals)."""
        return await self.control("violations")


class StandInEmsp(Cpo):
    """The stand-in eMSP (tests/interop/ocpi_emsp.js, issue 20 part 3): the same control API and log."""


@asynccontextmanager
async def cpo_platform(tmp_path: Path, *options: str) -> AsyncIterator[Cpo]:
    async with _stand_in(Cpo, PEER, "--token-a", TOKEN_A, "--state", str(tmp_path / "cpo-state.json"), *options) as cpo:
        yield cpo


@asynccontextmanager
async def emsp_platform(tmp_path: Path, *options: str) -> AsyncIterator[StandInEmsp]:
    async with _stand_in(StandInEmsp, EMSP, "--state", str(tmp_path / "emsp-state.json"), *options) as emsp:
        yield emsp


@asynccontextmanager
async def _stand_in(kind: type[Cpo], script: Path, *options: str) -> AsyncIterator[Any]:
    process = await asyncio.create_subprocess_exec(
        "node", str(script), "--port", "0", *options, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
        assert ready["event"] == "ready", ready
        async with aiohttp.ClientSession() as http:
            yield kind(f"http://127.0.0.1:{ready['port']}", ready, http)
    finally:
        process.terminate()
        await process.wait()
