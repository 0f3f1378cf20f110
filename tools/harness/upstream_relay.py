"""Real processes and connections for the proxy-mode tests and benchmark.

- :class:`Csms`: the ocpp-rpc CSMS stand-in (tests/interop/ocpp_rpc_csms.js) as a child process.
- :class:`Relay`: a websocket server in the place of the Core Client's station link in proxy mode:
  per charge point an :class:`~core_client.proxy.upstream.Upstream`, a small local answer table standing in
  for the Core Client's own handlers, and :func:`core_client.proxy.policy.reply` choosing the answer.
- :class:`ChargePoint`: a raw OCPP-J charge point on websockets that answers the CSMS's CALLs.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ocpp.messages import Call, CallError, CallResult
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from core_client.ocpp.server import basic_credentials, charge_point_id
from core_client.ocpp.wire import parse_frame, utc_now
from core_client.proxy.config import UpstreamSettings
from core_client.proxy.outbox import Outbox
from core_client.proxy.policy import chain_paid, reply
from core_client.proxy.upstream import Upstream
from tools.harness.interop import CSMS

NOW = "2026-12-01T08:00:00.000Z"
ENERGY = "Energy.Active.Import.Register"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Csms:
    """The ocpp-rpc CSMS on ``port``, logging what it receives to ``log``; start/stop/restart at will."""

    def __init__(self, log: Path, port: int | None = None, passwords: dict[str, str] | None = None) -> None:
        self.log, self.port, self.passwords = log, port or free_port(), passwords
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{{cp_id}}"

    async def start(self) -> Csms:
        args = [str(CSMS), str(self.port), str(self.log)]
        if self.passwords is not None:
            args.append(json.dumps(self.passwords))
        self.proc = await asyncio.create_subprocess_exec(
            "node", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert (await self.event("listening"))["port"] == self.port
        return self

    async def stop(self) -> None:
        """SIGKILL: the CSMS vanishes without closing its connections cleanly."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def event(self, name: str, timeout: float = 20) -> dict:
        """The CSMS's next stdout line, which must be the event ``name``."""
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line, f"the CSMS exited before {name!r}"
        event = json.loads(line)
        assert event["event"] == name, event
        return event

    def command(self, **cmd: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    def received(self, identity: str | None = None, kinds: tuple[str, ...] = ("call",)) -> list[dict]:
        """What the CSMS logged, in order (by default: the CALLs it received)."""
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [e for e in entries if e["kind"] in kinds and (identity is None or e["identity"] == identity)]


def local_answer(call: Call, transaction_ids: itertools.count) -> dict[str, Any]:
    """What the Core Client itself answers (its handlers' CALLRESULTs, as on the wire)."""
    status = {"status": "Accepted" if chain_paid(call.payload) else "Invalid"}
    answers = {
        "BootNotification": lambda: {"status": "Accepted", "currentTime": utc_now(), "interval": 300},
        "Heartbeat": lambda: {"currentTime": utc_now()},
        "Authorize": lambda: {"idTagInfo": status},
        "StartTransaction": lambda: {"transactionId": next(transaction_ids), "idTagInfo": status},
        "StopTransaction": lambda: {"idTagInfo": status} if "idTag" in call.payload else {},
        "DataTransfer": lambda: {"status": "UnknownVendorId"},
    }
    return answers.get(call.action, dict)()


class Relay:
    """Accepts charge points on ``ws://127.0.0.1:<port>/<cp_id>`` and runs proxy mode for each."""

    def __init__(self, settings: UpstreamSettings, outbox: Outbox) -> None:
        self.settings, self.outbox = settings, outbox
        self.upstreams: dict[str, Upstream] = {}
        self.links: dict[str, ServerConnection] = {}
        self._waiting: dict[str, asyncio.Future] = {}
        self._transaction_ids = itertools.count(1)

    async def start(self, port: int = 0) -> Relay:
        self.server = await serve(self.handle, "127.0.0.1", port, subprotocols=["ocpp1.6"], compression=None)
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def call(self, cp_id: str, action: str, payload: dict) -> CallResult | CallError:
        """A CALL of the relay's own (the Core Client's, e.g. a RemoteStart for a chain session)."""
        return await self._call(self.links[cp_id], Call(str(uuid.uuid4()), action, payload))

    async def _call(self, conn: ServerConnection, call: Call) -> CallResult | CallError:
        future = self._waiting[call.unique_id] = asyncio.get_running_loop().create_future()
        await conn.send(call.to_json())
        try:
            return await asyncio.wait_for(future, 10)
        finally:
            self._waiting.pop(call.unique_id, None)

    async def handle(self, conn: ServerConnection) -> None:
        cp_id = charge_point_id(conn.request.path)
        own = basic_credentials(conn.request.headers.get("Authorization"))
        upstream = Upstream(cp_id, self.settings, self.outbox, lambda c: self._call(conn, c), own and own[1])
        self.upstreams[cp_id], self.links[cp_id] = upstream, conn
        calls: asyncio.Queue[Call] = asyncio.Queue()
        await upstream.open()
        worker = asyncio.get_running_loop().create_task(self._answer(conn, upstream, calls))
        try:
            async for raw in conn:
                message = parse_frame(raw)
                if isinstance(message, Call):
                    calls.put_nowait(message)
                elif (future := self._waiting.get(message.unique_id)) is not None and not future.done():
                    future.set_result(message)
        finally:
            worker.cancel()
            await upstream.close()

    async def _answer(self, conn: ServerConnection, upstream: Upstream, calls: asyncio.Queue[Call]) -> None:
        """The charge point's CALLs in order: forwarded, then answered with the policy's choice."""
        while True:
            call = await calls.get()
            forwarded = await upstream.forward(call)
            local = local_answer(call, self._transaction_ids)
            answer = reply(
                call, forwarded.answer, local, forwarded.offline_transaction_id, self.settings.offline_id_tags
            )
            await conn.send(answer.to_json())


class ChargePoint:
    """A raw OCPP-J charge point: sends CALLs one at a time, answers the central system's CALLs."""

    def __init__(self, url: str, cp_id: str, password: str = "cp-secret") -> None:
        self.url, self.cp_id, self.password = f"{url}/{cp_id}", cp_id, password
        self.received: list[Call] = []  # CALLs from the central system, in order
        self.answers: dict[str, dict] = {
            "RemoteStartTransaction": {"status": "Accepted"},
            "RemoteStopTransaction": {"status": "Accepted"},
        }
        self._waiting: dict[str, asyncio.Future] = {}

    async def __aenter__(self) -> ChargePoint:
        token = base64.b64encode(f"{self.cp_id}:{self.password}".encode()).decode()
        self.ws = await connect(
            self.url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": f"Basic {token}"}
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.ws.close()
        self._reader.cancel()

    async def call(self, action: str, payload: dict, timeout: float = 10) -> dict:
        """Send a CALL; its CALLRESULT payload (a CALLERROR fails the test)."""
        call = Call(str(uuid.uuid4()), action, payload)
        future = self._waiting[call.unique_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(call.to_json())
        answer = await asyncio.wait_for(future, timeout)
        assert isinstance(answer, CallResult), f"{action}: {answer}"
        return answer.payload

    async def _read(self) -> None:
        async for raw in self.ws:
            message = parse_frame(raw)
            if isinstance(message, Call):
                self.received.append(message)
                await self.ws.send(CallResult(message.unique_id, self.answers.get(message.action, {})).to_json())
            elif (future := self._waiting.pop(message.unique_id, None)) is not None:
                future.set_result(message)


def settings(csms: Csms, **changes: Any) -> UpstreamSettings:
    """Upstream settings for tests: pass-through credentials, short timeouts and backoff."""
    quick = {"response_timeout_s": 2, "reconnect_min_s": 0.1, "reconnect_max_s": 0.3, "resend_after_s": 10}
    return UpstreamSettings(url=csms.url, pass_through=True, **{**quick, **changes})


@asynccontextmanager
async def running_proxy(
    tmp_path: Path, passwords: dict[str, str] | None = None, **changes: Any
) -> AsyncIterator[tuple[Csms, Relay]]:
    """The ocpp-rpc CSMS and a relay in front of it (outbox in tmp_path); both stopped at the end, where
    the CSMS must have had nothing to refuse (strict schema failures, answers to CALLs it never sent)."""
    csms = await Csms(tmp_path / "csms.jsonl", passwords=passwords).start()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    relay = await Relay(settings(csms, **changes), outbox).start()
    try:
        yield csms, relay
        assert not csms.received(kinds=("invalid", "bad_message")), "the CSMS got frames it refused"
    finally:
        await relay.close()
        outbox.close()
        await csms.stop()


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def meter(transaction_id: int, wh: int) -> dict:
    value = {"timestamp": NOW, "sampledValue": [{"value": str(wh), "measurand": ENERGY, "unit": "Wh"}]}
    return {"connectorId": 1, "transactionId": transaction_id, "meterValue": [value]}


def status(state: str) -> dict:
    return {"connectorId": 1, "errorCode": "NoError", "status": state, "timestamp": NOW}


def start(id_tag: str, meter_start: int = 1000) -> dict:
    return {"connectorId": 1, "idTag": id_tag, "meterStart": meter_start, "timestamp": NOW}


def stop(transaction_id: int, meter_stop: int) -> dict:
    return {"transactionId": transaction_id, "meterStop": meter_stop, "timestamp": NOW, "reason": "EVDisconnected"}
