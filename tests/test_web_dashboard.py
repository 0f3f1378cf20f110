"""The CPO dashboard (core_client.web) over HTTP on a real Store and the test chain: only the password
gets in, it shows failed jobs and rejected sessions with their reasons, and retrying a failed job (the
only write) needs the CSRF token, queues the job again and puts its session back where the job needs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from core_client.config import hash_password
from core_client.live_api import HttpServer
from core_client.sessions import SessionRecord, State
from core_client.store import Store
from core_client.web import StoreDashboardSource, create_dashboard_app
from core_client.web_config import DashboardSettings
from ev_network.contracts import CancelReason
from ev_network.devchain import free_port
from ev_network.pricing import Tariff
from ev_network.session_ids import make_session_id
from tests.core_helpers import settings_for, write_config
from tests.test_web_wallet import WebClient

TOKEN = 10**18
PASSWORD = "the dashboard password"
DRIVER = Account.create().address


def record(seq: int, state: State, **fields) -> SessionRecord:
    return SessionRecord(
        session_id=make_session_id(DRIVER, 0, seq),
        station_id=1,
        charge_point_id="CP-DASH",
        connector=seq,
        driver=DRIVER,
        deposit=5 * TOKEN,
        tariff=Tariff(35 * TOKEN // 100, TOKEN // 2),
        state=state,
        requested_at=time.time(),
        **fields,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A failed settle (its session FAILED), a rejected session and one settled today."""
    db = Store(tmp_path / "core.sqlite")
    db.add_station(1, "CP-DASH", 3)
    db.set_connector_status("CP-DASH", 1, "Faulted", "GroundFailure")
    db.insert_session(record(1, State.FAILED, last_error="settle: InvalidState (session is CANCELLED on chain)"))
    db.enqueue("settle", make_session_id(DRIVER, 0, 1), {"meter_stop": 1500})
    failed = db.jobs("pending")[0]
    db.update_job(failed.id, status="failed", last_error="InvalidState (session is CANCELLED on chain)")
    db.insert_session(record(2, State.REJECTED, reject_reason=int(CancelReason.STATION_OFFLINE)))
    db.insert_session(record(3, State.SETTLED, cost=2 * TOKEN, refund=3 * TOKEN, finished_at=time.time()))
    yield db
    db.close()


async def dashboard(store: Store, net, rpc_url: str | None = None) -> tuple[HttpServer, WebClient]:
    w3 = Web3(Web3.HTTPProvider(rpc_url)) if rpc_url else net.w3
    source = StoreDashboardSource(store, w3, net.deployment, net.operator.address)
    app = create_dashboard_app(source, DashboardSettings(port=0, password=hash_password(PASSWORD)))
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    return server, WebClient(server.url)


async def test_only_the_password_gets_in(net, store: Store):
    server, client = await dashboard(store, net)
    try:
        status, page = await client.get("/")
        assert status == 200 and 'name="password"' in page and "Chain job queue" not in page  # the login page
        status, page = await client.post("/login", {"password": "wrong"})
        assert status == 401 and "wrong password" in page
        status, page = await client.post("/login", {"password": PASSWORD}, csrf=False)
        assert status == 403
        await client.get("/login")
        status, page = await client.post("/login", {"password": PASSWORD})
        assert status == 200 and "Chain job queue" in page
        assert f'head block</div><div class="value">{net.w3.eth.block_number}' in page
        assert "InvalidState (session is CANCELLED on chain)" in page
        assert "rejected: station offline" in page
        assert "1: Faulted" in page
        assert "2.00 EVE" in page  # revenue settled today
    finally:
        await server.stop()


async def test_retrying_a_failed_job_queues_it_again(net, store: Store):
    server, client = await dashboard(store, net)
    try:
        await client.get("/login")
        await client.post("/login", {"password": PASSWORD})
        job = store.jobs("failed")[0]
        status, _ = await client.post(f"/jobs/{job.id}/retry", {}, csrf=False)
        assert status == 403 and store.jobs("failed") == [job]
        status, page = await client.post(f"/jobs/{job.id}/retry", {})
        assert status == 200 and f"job {job.id} (settle of" in page and "queued again" in page
        assert [j.id for j in store.jobs("pending")] == [job.id]
        assert store.get_session(job.session_id).state is State.STOPPED
        status, page = await client.post(f"/jobs/{job.id}/retry", {})
        assert "is not a failed job" in page
    finally:
        await server.stop()


async def test_a_chain_that_is_down_is_shown(net, store: Store):
    server, client = await dashboard(store, net, rpc_url=f"http://127.0.0.1:{free_port()}")
    try:
        await client.get("/login")
        status, page = await client.post("/login", {"password": PASSWORD})
        assert status == 200 and "the chain is not reachable" in page and "rejected: station offline" in page
    finally:
        await server.stop()


def test_python_m_core_client_web_serves_both_next_to_the_daemon(net, tmp_path: Path, keyfile: Path, store: Store):
    settings = settings_for(net, tmp_path, keyfile, {})  # database: tmp_path/core.sqlite, the store above
    config = write_config(tmp_path / "core-client.toml", settings)
    live_port, dashboard_port = free_port(), free_port()
    web = tmp_path / "web.toml"
    web.write_text(
        f'[live]\nport = {live_port}\n\n[dashboard]\nport = {dashboard_port}\npassword = "{hash_password(PASSWORD)}"\n'
    )
    command = [sys.executable, "-m", "core_client.web", "--config", str(config), "--web-config", str(web)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            assert process.stdout.readline().strip() == f"live data on http://127.0.0.1:{live_port}/"
            assert process.stdout.readline().strip() == f"dashboard on http://127.0.0.1:{dashboard_port}/"
            with urllib.request.urlopen(f"http://127.0.0.1:{live_port}/stations", timeout=5) as response:
                assert json.loads(response.read())["stations"][0]["connectors"][0]["status"] == "Faulted"
            with urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/", timeout=5) as response:
                assert response.url.endswith("/login")
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0


def test_a_web_config_without_sections_is_refused_in_one_line(net, tmp_path: Path, keyfile: Path):
    config = write_config(tmp_path / "core-client.toml", settings_for(net, tmp_path, keyfile, {}))
    (tmp_path / "web.toml").write_text('[dashbord]\npassword = "x"\n')
    command = [sys.executable, "-m", "core_client.web", "-c", str(config), "--web-config", str(tmp_path / "web.toml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"error: {tmp_path / 'web.toml'}: unknown sections ['dashbord'] (only [live] and [dashboard])"
    )
