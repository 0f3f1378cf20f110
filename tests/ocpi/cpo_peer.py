"""The stand-in OCPI 2.2.1 CPO platform (tests/interop/ocpi_cpo.js, Node, written from the 2.2.1 text, no code
shared with the Core Client) as a child process, for the OCPI tests and the demo.

    with cpo_peer(tmp_path, scenario={"signed": "valid"}) as cpo:
        ...  # give the Core Client cpo.versions_url and cpo.token_a
        entry = await cpo.wait_log(lambda e: e.get("purpose") == "CDR POST " + cdr_id)
        assert not cpo.violations()

Its control API (documented at the top of ocpi_cpo.js) is reached with ``control`` (blocking) or ``acontrol``
(from a test whose event loop also runs the Core Client: the peer may call the Core Client while it answers)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "interop" / "ocpi_cpo.js"
TOKEN_A = "token-a-issued-by-the-cpo"


class CpoPeer:
    """A running stand-in CPO platform: its URLs, its meter key, its control API and its exchange log."""

    def __init__(self, process: subprocess.Popen, ready: dict) -> None:
        self.process, self.ready = process, ready
        self.base = f"http://127.0.0.1:{ready['port']}"

    @property
    def versions_url(self) -> str:
        return self.ready["versions_url"]

    @property
    def token_a(self) -> str:
        return self.ready["token_a"]

    @property
    def meter_key(self) -> str:
        """The meter's public key (DER SubjectPublicKeyInfo, hex) that signs the CDRs' OCMF values."""
        return self.ready["meter"]["der_hex"]

    def ocpi(self, path: str) -> str:
        return f"{self.base}/ocpi/{path}"

    def control(self, name: str, body: dict | None = None) -> Any:
        """GET /control/<name> (no body) or POST it with ``body``; raises RuntimeError with the peer's message."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/control/{name}", data=data, method="GET" if body is None else "POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"control {name}: {json.loads(error.read()).get('error')}") from None

    async def acontrol(self, name: str, body: dict | None = None) -> Any:
        return await asyncio.to_thread(self.control, name, body)

    def log(self, since: int = 0) -> list[dict]:
        return self.control(f"log?since={since}")

    async def wait_log(self, matches: Callable[[dict], bool], timeout: float = 20, since: int = 0) -> dict:
        """The first log entry after ``since`` for which ``matches`` is true, once the peer has logged it."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in await asyncio.to_thread(self.log, since):
                if matches(entry):
                    return entry
                since = entry["seq"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching entry in the CPO's log within {timeout} s")
            await asyncio.sleep(0.05)

    def violations(self, refusals: bool = True) -> list[str]:
        """Spec violations the peer saw (``refusals=False`` leaves out requests it refused on purpose)."""
        return [
            v["violation"] for v in self.control("violations") if refusals or not v["violation"].startswith("refused")
        ]


@contextmanager
def cpo_peer(
    tmp_path: Path,
    *,
    token_a: str = TOKEN_A,
    max_limit: int = 3,
    scenario: dict | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[CpoPeer]:
    """Run the peer on a free port with its state in ``tmp_path``/cpo-state.json; stop it after."""
    command = ["node", str(SCRIPT), "--port", "0", "--token-a", token_a, "--max-limit", str(max_limit)]
    command += ["--state", str(tmp_path / "cpo-state.json"), *args]
    if scenario:
        command += ["--scenario", json.dumps(scenario)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the OCPI CPO peer did not start: {process.stderr.read().strip()}")
        yield CpoPeer(process, json.loads(line))
    finally:
        process.terminate()
        process.wait(10)
