"""The independent OCPP peers in tests/interop/ (npm's ocpp-rpc, written in JavaScript): where they are and
how to read the JSON lines the charge point prints."""

from __future__ import annotations

import asyncio
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
