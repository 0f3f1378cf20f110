"""The Core Client SIGKILLed mid-session in OCPI mode: the CSMS's session goes on, its CDR cannot be
pushed while the daemon is gone; the restarted daemon carries on from its stored state, pulls the CDR
and settles the session exactly once."""

from __future__ import annotations

import signal
from pathlib import Path

from core_client.chain.station_registry import EscrowRegistry
from core_client.ocpi.bridge import Bridge
from ev_network.contracts import SessionState
from tools.harness.chain import TOKEN, Net
from tools.harness.core import (
    chain_events,
    funded_driver,
    open_session,
    settings_for,
    spawn_daemon,
    stop_daemon,
    wait_chain,
    wait_health,
    write_config,
)
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, cpo_platform


async def test_sigkill_mid_session_then_the_pulled_cdr_settles_once(
    tmp_path: Path, clean_chain: Net, keyfile: Path
) -> None:
    net = clean_chain
    async with cpo_platform(tmp_path) as cpo:
        await cpo.control("scenario", {"kwh_per_second": 5, "tick_ms": 200, "result_delay_ms": 50})
        ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A, pull_interval_s=3600)
        core = settings_for(net, tmp_path, keyfile, {}, ocpi=ocpi, control_port=free_port(), listen_port=free_port())
        core.reconnect_grace_s = 15  # a session requested before the daemon linked the station waits for it
        config = write_config(tmp_path / "core.toml", core)
        bridge = Bridge(ocpi, core.database)
        await bridge.register()
        [line] = await bridge.import_evses(EscrowRegistry(net.escrow(net.operator), net.deployment), ["EVSE-2"], False)
        station_id = int(line.split()[2])

        control, log_file = f"http://127.0.0.1:{core.control_port}", tmp_path / "daemon.log"
        daemon = spawn_daemon(config, log_file)
        try:
            await wait_health(control)
            driver = await funded_driver(net, 7)
            session_id = await open_session(net, driver, station_id, 1, 20 * TOKEN)
            await wait_chain(net, session_id, SessionState.ACTIVE, timeout=40)
            await cpo.wait_log(
                lambda e: e["direction"] == "out" and e.get("method") == "PATCH" and "/sessions/" in e["url"]
            )

            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)
            [ocpi_session] = (await cpo.control("state"))["sessions"]
            await cpo.control("stop", {"session_id": ocpi_session["id"]})  # the EV leaves while we are gone
            [cdr] = await cpo.cdrs()

            daemon = spawn_daemon(config, log_file)
            await wait_health(control)
            await wait_chain(net, session_id, SessionState.SETTLED, timeout=40)  # pulled at start, settled
        finally:
            stop_daemon(daemon)
    assert len(chain_events(net, "SessionStarted", session_id)) == 1
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["meterStop"] - settled.args["meterStart"] == round(cdr["total_energy"] * 1000)
