"""Our OCPI server on a real port (uvicorn), and a plain aiohttp caller that shares no code with our
OCPI client: it writes the headers itself, as a CSMS would."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from core_client.ocpi.inbox import RecordingInbox
from core_client.ocpi.mirror import Mirror
from core_client.ocpi.registration import Registration, RegistrationStore
from core_client.ocpi.server import OcpiServer
from core_client.ocpi.settings import OcpiSettings
from ev_network.web.server import HttpServer

TOKEN_B = "token-b-the-csms-calls-us-with"
CPO_ROLE = {"role": "CPO", "party_id": "TNM", "country_code": "NL", "business_details": {"name": "TNM CSMS"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(port: int, versions_url: str = "http://127.0.0.1:1/ocpi/versions", **extra: Any) -> OcpiSettings:
    extra.setdefault("session_pull_after_s", 4)  # before the test daemons' start_timeout_s (5 s, tools/harness FAST)
    extra.setdefault("request_timeout_s", 4)  # so is a START_SESSION's retrying (checked at load)
    return OcpiSettings(
        versions_url=versions_url,
        country_code="DE",
        party_id="EVN",
        business_name="EV Network",
        host="127.0.0.1",
        port=port,
        public_url=f"http://127.0.0.1:{port}/ocpi/emsp",
        **extra,
    )


@asynccontextmanager
async def running(app: Any, port: int) -> AsyncIterator[None]:
    """``app`` served on ``port`` until the block ends."""
    server = HttpServer(app, "127.0.0.1", port)
    await server.start()
    try:
        yield
    finally:
        await server.stop()


@dataclass
class Answer:
    http: int
    headers: dict[str, str]
    body: Any

    @property
    def status_code(self) -> int:
        return self.body["status_code"]

    @property
    def data(self) -> Any:
        return self.body.get("data")


@dataclass
class Emsp:
    """Our server under test, as the CSMS sees it."""

    url: str  # our public_url
    settings: OcpiSettings
    inbox: RecordingInbox
    mirror: Mirror
    store: RegistrationStore
    http: aiohttp.ClientSession
    server: OcpiServer

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN_B,
        raw: bytes | None = None,
        encode: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4()), **(headers or {})}
        if token is not None:
            sent["Authorization"] = "Token " + (base64.b64encode(token.encode()).decode() if encode else token)
        data = raw if raw is not None else None if body is None else json.dumps(body, default=float).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        url = path if path.startswith("http") else f"{self.url}/{path}"
        async with self.http.request(method, url, data=data, headers=sent) as response:
            text = await response.text()
            return Answer(response.status, CIMultiDict(response.headers), json.loads(text))


def registration(token_b: str = TOKEN_B) -> Registration:
    return Registration.model_validate(
        {
            "versions_url": "http://127.0.0.1:1/ocpi/versions",
            "token_b": token_b,
            "token_c": "token-c-we-call-the-csms-with",
            "roles": [CPO_ROLE],
        }
    )


@asynccontextmanager
async def emsp_server(tmp_path: Path, registered: bool = True, **config_fields: Any) -> AsyncIterator[Emsp]:
    """Our server on a free port; pre-registered with a CSMS NL/TNM (token B: TOKEN_B) unless told not."""
    port = free_port()
    config = settings(port, **config_fields)
    store = RegistrationStore(tmp_path / "registration.json")
    if registered:
        store.save(registration())
    mirror = Mirror(tmp_path / "ocpi.sqlite")
    inbox = RecordingInbox()
    server = OcpiServer(config, store, mirror, inbox)
    async with running(server.app(), port), aiohttp.ClientSession() as http:
        yield Emsp(config.public_url, config, inbox, mirror, store, http, server)
    mirror.close()
