"""The Core Client's front ends in its own config and daemon: [live] and [dashboard] load, round-trip and
come from the environment; one password rule for charge points and the dashboard; the daemon serves
both and stops them; with TLS configured the dashboard is HTTPS only and its cookie Secure; a port it cannot listen on is a one-line error that leaves nothing open; and
core_client imports nothing from the wallet."""

from __future__ import annotations

import ast
import asyncio
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core_client.config import (
    ConfigError,
    DashboardSettings,
    LiveSettings,
    Settings,
    hash_password,
    load_settings,
    password_matches,
)
from core_client.daemon import Daemon
from tools.harness.core import PASSWORD, ROOT, settings_for, write_config
from tools.harness.tls import self_signed, trusting
from tools.harness.web import WebClient

DASHBOARD = DashboardSettings(port=0, password=hash_password("the CPO's password"))


def test_live_and_dashboard_sections_load_round_trip_and_come_from_the_environment(tmp_path: Path):
    cfg = tmp_path / "cc.toml"
    cfg.write_text('[live]\nport = 9102\nrequests_per_minute = 30\n\n[dashboard]\npassword = "pw"\n')
    settings = load_settings(cfg, environ={})
    assert settings.live == LiveSettings(port=9102, requests_per_minute=30)
    assert settings.dashboard.port == 9003 and settings.dashboard.check_password("pw")
    again = load_settings(write_config(tmp_path / "again.toml", settings), environ={})
    assert (again.live, again.dashboard) == (settings.live, settings.dashboard)
    assert load_settings(cfg, environ={"EVN_CC_LIVE": ""}).live is None  # off
    env = {"EVN_CC_DASHBOARD": json.dumps({"port": 9200, "password": hash_password("x")})}
    assert load_settings(cfg, environ=env).dashboard.check_password("x")
    assert load_settings(tmp_path / "again.toml", environ={}).charge_points == {}
    plain = Settings()
    assert plain.live is None and plain.dashboard is None  # both off unless configured


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[dashboard]\npassword = "sha256:' + "z" * 64 + '"', "dashboard password: 'sha256:' must be followed by 64"),
        ('[dashboard]\npassword = ""', "dashboard password: empty password"),
        ("[dashboard]\nport = 9003", "dashboard.password"),
        ("[live]\nprot = 9002", "live.prot"),
        ("[live]\nmax_validity_s = 5", "live.max_validity_s"),
    ],
)
def test_bad_front_end_sections_are_refused_in_one_line(tmp_path: Path, text: str, message: str):
    cfg = tmp_path / "cc.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, environ={})


def test_charge_points_and_the_dashboard_check_passwords_by_one_rule():
    hashed = hash_password("secret")
    for expected in ("secret", hashed, "sha256:" + hashed[7:].upper()):
        settings = Settings(charge_points={"CP-1": expected}, dashboard=DashboardSettings(password=expected))
        assert password_matches(expected, "secret") and not password_matches(expected, "Secret")
        assert settings.check_password("CP-1", "secret") and settings.dashboard.check_password("secret")
        assert not settings.check_password("CP-1", hashed) and not settings.dashboard.check_password(hashed)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_the_daemon_serves_both_front_ends_and_stops_them(clean_chain, tmp_path: Path, keyfile: Path):
    net = clean_chain  # other tests register stations on the same chain: look for this test's own
    net.add_station("FRONT-1", connectors=2)
    settings = settings_for(net, tmp_path, keyfile, {}, live=LiveSettings(port=0), dashboard=DASHBOARD)
    daemon = Daemon(settings, PASSWORD)
    await daemon.start()
    try:
        live, dashboard = daemon.front_ends["live"].url, daemon.front_ends["dashboard"].url
        status, body = await asyncio.to_thread(get, live + "/stations")
        stations = {station["charge_point_id"]: station for station in json.loads(body)["stations"]}
        assert status == 200 and [c["connector"] for c in stations["FRONT-1"]["connectors"]] == [1, 2]
        status, body = await asyncio.to_thread(get, dashboard + "/")
        assert status == 200 and "Dashboard password" in body
    finally:
        await daemon.stop(drain_timeout=2)
    for url in (live, dashboard):
        with pytest.raises(OSError):
            await asyncio.to_thread(urllib.request.urlopen, url + "/", timeout=2)


async def test_a_front_end_port_in_use_is_one_error_and_leaves_nothing_open(net, tmp_path: Path, keyfile: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = DashboardSettings(port=port, password="pw")
        settings = settings_for(net, tmp_path, keyfile, {}, live=LiveSettings(port=0), dashboard=busy)
        daemon = Daemon(settings, PASSWORD)
        with pytest.raises(ConfigError, match=rf"^\[dashboard\] dashboard: cannot listen on 127.0.0.1:{port}: "):
            await daemon.start()
        assert daemon.front_ends == {}  # the live server that did start is stopped again

        config = write_config(tmp_path / "cc.toml", settings.model_copy(update={"listen_port": 0}))
        command = [sys.executable, "-m", "core_client.cli", "run", "--config", str(config)]
        env = {"EVN_OPERATOR_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: [dashboard] dashboard: cannot listen on 127.0.0.1:{port}: ")
    )
    assert "Traceback" not in done.stderr
    again = Daemon(settings.model_copy(update={"dashboard": None}), PASSWORD)  # the database was closed
    await again.start()
    await again.stop(drain_timeout=2)


async def test_with_tls_the_dashboard_and_live_data_are_https_only_and_the_cookie_secure(
    net, tmp_path: Path, keyfile: Path
):
    cert, key = self_signed(tmp_path)
    live = LiveSettings(port=0)
    settings = settings_for(net, tmp_path, keyfile, {}, dashboard=DASHBOARD, live=live, tls_cert=cert, tls_key=key)
    daemon = Daemon(settings, PASSWORD)
    await daemon.start()
    try:
        live_url = daemon.front_ends["live"].url
        assert live_url.startswith("https://127.0.0.1:")
        status, stations = await WebClient(live_url, trusting(cert)).get("/stations")
        listed = json.loads(stations)["stations"]  # the shared chain's stations (other tests register theirs)
        assert status == 200 and all({"station_id", "charge_point_id", "connectors"} <= set(s) for s in listed)
        with pytest.raises(OSError):  # plain HTTP: no answer (a driver's signed URL never goes in the clear)
            await asyncio.to_thread(
                urllib.request.urlopen, live_url.replace("https://", "http://") + "/stations", timeout=5
            )
        url = daemon.front_ends["dashboard"].url
        assert url.startswith("https://127.0.0.1:")
        client = WebClient(url, trusting(cert))  # a real TLS connection, checked against the certificate
        status, page = await client.get("/login")
        assert status == 200 and "Dashboard password" in page
        [cookie] = [c for c in client.set_cookie if c.startswith("evn_dashboard=")]
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]
        status, page = await client.post("/login", {"password": "the CPO's password"})
        assert status == 200 and "Chain job queue" in page  # the Secure cookie went back over HTTPS
        with pytest.raises(OSError):  # plain HTTP to the same port: no page
            await asyncio.to_thread(urllib.request.urlopen, url.replace("https://", "http://") + "/login", timeout=5)
    finally:
        await daemon.stop(drain_timeout=2)


def test_core_client_and_the_shared_bindings_import_nothing_from_the_wallet():
    for package, foreign in (("core_client", ("wallet",)), ("ev_network", ("wallet", "core_client"))):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                bad = [n for n in names if n.split(".")[0] in foreign]
                assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
