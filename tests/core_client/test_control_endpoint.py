"""The daemon's control endpoint over real HTTP: orders only by POST with the token, from no web page;
/health without one; the CLI reads the token the daemon wrote."""

from __future__ import annotations

import asyncio
import http.client
import json
from urllib.parse import urlencode

import pytest
from typer.testing import CliRunner

from core_client.cli.main import app
from core_client.config import (
    control_token,
    settings_to_toml,
)
from tools.harness.chain import TOKEN
from tools.harness.core import (
    Core,
)

DEPOSIT = 20 * TOKEN


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


@pytest.mark.issue(9, item=5)
async def test_the_control_endpoint_takes_orders_only_by_post_with_the_token_from_no_web_page(core: Core, tmp_path):
    cp = await core.raw(core.a, answers={"Reset": {"status": "Accepted"}, "TriggerMessage": {"status": "Accepted"}})
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
    # the link carries the daemon's CALLs in order: with the TriggerMessage of the last order here, a
    # Reset of any refused order would have arrived too; only the one with the token did
    await cp.next_call("TriggerMessage")
    assert [frame[3] for frame in cp.received if frame[0] == 2 and frame[2] == "Reset"] == [{"type": "Hard"}]
    await cp.close()
