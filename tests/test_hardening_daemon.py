"""Issue 9 against a real daemon (real Anvil, websockets, HTTP): a frame that froze every charge point
(#1), integers beyond 64 bits (#7), forged log lines (#6), handshake floods (#9) and the control
endpoint that took orders from any web page (#5)."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import pytest
import websockets
from typer.testing import CliRunner

from core_client.cli.main import app
from core_client.config import control_token, settings_to_toml
from tests.core_helpers import Core, RawCP, cp_ids, now_iso, running_core, until

FREEZER = (
    '[2,"f1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z",'
    '"sampledValue":[{"value":"1e999999"}]}]}]'
)


@pytest.fixture
async def core(clean_chain, tmp_path, keyfile) -> AsyncIterator[Core]:
    a, b = cp_ids("HA", "HB")
    async with running_core(clean_chain, tmp_path, keyfile, {a: 2, b: 2}) as running:
        running.a, running.b = a, b  # type: ignore[attr-defined]
        yield running


async def _raw(core: Core, cp_id: str) -> RawCP:
    answers = {"Reset": {"status": "Accepted"}, "TriggerMessage": {"status": "Accepted"}}
    cp = await RawCP.connect(core.url, cp_id, core.passwords[cp_id], answers=answers)
    assert (await cp.boot())[2]["status"] == "Accepted"
    return cp


async def test_a_huge_meter_value_is_answered_at_once_and_blocks_no_one(core: Core):
    a, b = await _raw(core, core.a), await _raw(core, core.b)
    started = time.monotonic()
    answer, beat = await asyncio.gather(a.send_raw(FREEZER, timeout=10), b.call("Heartbeat", {}, timeout=10))
    assert answer == [3, "f1", {}] and beat[0] == 3
    assert time.monotonic() - started < 1.0  # was 24 s for both charge points
    await a.close()
    await b.close()


async def test_integers_beyond_64_bits_get_formation_violation_and_the_link_stays_up(core: Core, caplog):
    cp = await _raw(core, core.a)
    frame = f'[2,"big-1","StopTransaction",{{"transactionId":1,"meterStop":{"9" * 5000},"timestamp":"{now_iso()}"}}]'
    with caplog.at_level(logging.WARNING, logger="core_client"):
        answer = await cp.send_raw(frame)
    assert answer[:3] == [4, "big-1", "PropertyConstraintViolation"] and "64 bits" in answer[3]
    assert (await cp.call("Heartbeat", {}))[0] == 3  # the connection was not closed (was 1011)
    assert caplog.records and max(len(r.getMessage()) for r in caplog.records) < 1000
    await cp.close()


async def test_a_forged_line_in_the_handshake_path_stays_inside_one_log_line(core: Core, caplog):
    forged = "CP\n2026-01-01 00:00:00,000 INFO    core_client: session 0xdead: settled cost=0"
    with caplog.at_level(logging.INFO, logger="core_client"):
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"{core.url}/{quote(forged)}", subprotocols=["ocpp1.6"])
        await until(lambda: any("refused" in r.getMessage() for r in caplog.records), 5, "the refusal logged")
    lines = [r.getMessage() for r in caplog.records]
    assert all("\n" not in line and "\r" not in line for line in lines), lines
    assert any("\\n2026-01-01" in line for line in lines)


async def test_failed_handshakes_log_one_line_not_a_traceback_each(core: Core, caplog):
    port = core.daemon.ocpp.address[1]
    with caplog.at_level(logging.INFO, logger="core_client.websockets"):
        for _ in range(40):  # half-open: a partial request, then the socket goes away
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /CP-x HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            writer.transport.abort()
        await asyncio.sleep(0.5)
    failed = [r for r in caplog.records if r.name == "core_client.websockets" and r.levelno >= logging.WARNING]
    assert 1 <= len(failed) <= 2, [r.getMessage() for r in failed]  # was 40 tracebacks
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in failed)
    assert "opening handshake failed" in failed[0].getMessage()


def _http(core: Core, method: str, path: str, body: dict | None = None, **headers: str) -> tuple[int, dict]:
    host, port = core.daemon.control.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    data = urlencode(body).encode() if body is not None else None
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    status, answer = response.status, json.loads(response.read())
    connection.close()
    return status, answer


async def test_the_control_endpoint_takes_orders_only_by_post_with_the_token_from_no_web_page(core: Core, tmp_path):
    cp = await _raw(core, core.a)
    token = control_token(core.daemon.settings)
    assert token and core.daemon.settings.control_token_file.exists()
    auth = {"Authorization": f"Bearer {token}"}
    reset = {"cp": core.a, "action": "reset", "type": "Hard"}
    refused = [
        ("GET", f"/command?{urlencode(reset)}", None, auth, 405),  # state changes never by GET
        ("POST", "/command", reset, {}, 401),  # no token
        ("POST", "/command", reset, {"Authorization": "Bearer wrong-token-wrong-token"}, 401),
        ("POST", "/command", reset, {**auth, "Origin": "https://evil.example"}, 403),  # a web page
        ("POST", "/command", reset, {**auth, "Sec-Fetch-Site": "cross-site"}, 403),
        ("POST", "/command", reset, {**auth, "Host": f"evil.example:{core.daemon.control.address[1]}"}, 403),
        ("GET", "/health", None, {"Host": f"rebind.example:{core.daemon.control.address[1]}"}, 403),
    ]
    for method, path, body, headers, code in refused:
        status, answer = await asyncio.to_thread(_http, core, method, path, body, **headers)
        assert status == code, (method, path, headers, answer)
    await asyncio.sleep(0.3)
    assert not any(frame[2] == "Reset" for frame in cp.received if frame[0] == 2)  # nothing reached it

    status, health = await asyncio.to_thread(_http, core, "GET", "/health")
    assert status == 200 and core.a in health["connected_charge_points"]  # read-only: no token
    status, answer = await asyncio.to_thread(_http, core, "POST", "/command", reset, **auth)
    assert status == 200 and (await cp.next_call("Reset"))[3] == {"type": "Hard"}

    config = tmp_path / "same.toml"  # the CLI reads the token the daemon wrote next to its database
    config.write_text(settings_to_toml(core.daemon.settings))
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["command", "trigger", core.a, "Heartbeat", "--url", core.control_url, "-c", str(config)],
    )
    assert result.exit_code == 0 and "trigger_message -> Accepted" in result.output, result.output
    await cp.close()
