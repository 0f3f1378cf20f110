"""The independent OCPP peers in tests/interop/ (npm's ocpp-rpc, written in JavaScript): where they are,
how to read the JSON lines the charge point prints, and the charge point run as a driver tapping a card."""

from __future__ import annotations

import asyncio
import contextlib
import json

from tools.devchain import ROOT

PEERS = ROOT / "tests" / "interop"
CHARGE_POINT = PEERS / "ocpp_rpc_cp.js"
CSMS = PEERS / "ocpp_rpc_csms.js"


async def next_event(stdout: asyncio.StreamReader, event: str, timeout: float = 20) -> dict:
    """The charge point's next JSON line, which must be ``event``."""
    while True:
        line = await asyncio.wait_for(stdout.readline(), timeout)
        assert line, f"the ocpp-rpc charge point exited before {event!r}"
        message = json.loads(line)
        assert message["event"] not in ("error", "strict_validation_failure", "unexpected_call"), message
        if message["event"] == event:
            return message


def tapping(core, cp_id: str, uid: str, wait: bool = True):
    """The ocpp-rpc charge point, booted, tapping card ``uid`` (charging until told "unplug" with --wait)."""
    return charge_point(core, cp_id, "--card", uid, *(["--wait"] if wait else []))


@contextlib.asynccontextmanager
async def charge_point(core, cp_id: str, *flags: str):
    """The ocpp-rpc charge point, booted, run with ``flags``."""
    args = [core.url, cp_id, core.passwords[cp_id], *flags]
    node = await asyncio.create_subprocess_exec(
        "node", str(CHARGE_POINT), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert (await next_event(node.stdout, "boot"))["status"] == "Accepted"
        yield node
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()


async def unplug(node) -> dict:
    node.stdin.write(b"unplug\n")
    await node.stdin.drain()
    stopped = await next_event(node.stdout, "stopped")
    assert await asyncio.wait_for(node.wait(), 10) == 0
    return stopped
