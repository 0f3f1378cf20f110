"""The daemon's control endpoint over real HTTP: orders only by POST with the token, from no web page;
/health without one; the CLI reads the token the daemon wrote."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
from urllib.parse import urlencode

import pytest
from typer.testing import CliRunner

from core_client.cli.main import app
from core_client.config import (
    LiveSettings,
    control_token,
    settings_to_toml,
)
from core_client.ocpp.server import Throttle
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


@pytest.mark.issue(17, item=9)
async def test_a_connector_beyond_ocpps_integers_or_in_other_digits_gets_a_clear_error_and_nothing_is_sent(core: Core):
    cp = await core.raw(core.a, answers={"ChangeAvailability": {"status": "Accepted"}})
    auth = {"Authorization": f"Bearer {control_token(core.daemon.settings)}"}
    for connector in (str(10**23), "2147483648", "²", "\u0661", "-1", " 1"):  # \u0661: Arabic-Indic one
        for action in ("change_availability", "trigger_message"):
            command = {"cp": core.a, "action": action, "connector": connector}
            status, answer = await asyncio.to_thread(_http, core, "POST", "/command", command, **auth)
            assert status == 400 and answer["error"].startswith("connector must be"), (connector, answer)
    assert (await cp.call("Heartbeat", {}))[2]["currentTime"]
    assert not [frame for frame in cp.received if frame[0] == 2]  # nothing reached the charge point
    command = {"cp": core.a, "action": "change_availability", "connector": "2147483647"}
    status, answer = await asyncio.to_thread(_http, core, "POST", "/command", command, **auth)
    assert status == 200 and (await cp.next_call("ChangeAvailability"))[3]["connectorId"] == 2147483647


@pytest.mark.issue(17, item=7)
async def test_floods_of_refused_requests_and_failed_accepts_are_a_line_every_ten_seconds(core: Core, caplog):
    caplog.set_level(logging.INFO)
    reset = {"cp": core.a, "action": "reset"}
    for _ in range(200):  # no token: each refused (1.3 MB of log lines in 8 s before)
        assert (await asyncio.to_thread(_http, core, "POST", "/command", reset))[0] == 401
    assert len([r for r in caplog.records if "control: refused" in r.getMessage()]) == 1
    loop = asyncio.get_running_loop()
    for _ in range(1_000):  # what asyncio reports for each failed accept() when descriptors run out
        loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
        )
    [line] = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert "Too many open files" in line.getMessage() and line.exc_info is None  # one line, no traceback


@pytest.mark.issue(17, item=7)
def test_a_throttled_line_counts_what_it_held_back():
    now = [0.0]
    throttle = Throttle(10, clock=lambda: now[0])
    assert throttle.admit() == ""
    for _ in range(41):
        assert throttle.admit() is None
    now[0] = 12.0
    assert throttle.admit() == "; 41 more in the last 12s"


@pytest.mark.issue(17, item=7)
@pytest.mark.core_settings(live=LiveSettings(port=0))
async def test_the_live_apis_server_logs_through_the_daemons_logging_with_its_timestamps(core: Core):
    uvicorn_log = logging.getLogger("uvicorn")
    assert core.daemon.front_ends["live"].url
    assert uvicorn_log.propagate and not uvicorn_log.handlers  # uvicorn's own handler printed no time
    assert not logging.getLogger("uvicorn.error").handlers
