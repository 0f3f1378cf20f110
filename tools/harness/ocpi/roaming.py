"""A roaming eMSP with a payment mandate naming our operator, registered with a running Core Client as its
CPO (issue 20 part 3): the daemon serving [ocpi_cpo] with one station and the stand-in eMSP
(tests/interop/ocpi_emsp.js); the daemon in-process (:func:`roaming`) or as a process that a test kills and
starts again (:func:`roaming_process`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_client.ocpi.cpo.peers import PeerStore
from ev_network.mandates import Mandates, format_grant, new_salt
from tools.harness.chain import TOKEN, Net
from tools.harness.core import (
    Core,
    RawCP,
    cp_ids,
    funded_driver,
    running_core,
    settings_for,
    spawn_daemon,
    stop_daemon,
    wait_health,
    write_config,
)
from tools.harness.ocpi.our_cpo import cpo_section
from tools.harness.ocpi.our_emsp import free_port
from tools.harness.ocpi.peers import StandInEmsp, emsp_platform

CAP, TOTAL = 20 * TOKEN, 50 * TOKEN
# the stand-in eMSP's Tokens (tests/interop/ocpi_emsp.js) by whitelist: ALWAYS, ALLOWED, ALLOWED_OFFLINE, NEVER; one it does not know
ALWAYS, ALLOWED, OFFLINE, NEVER, INVALID = "04A1B2C3D5", "04A1B2C3D4", "04A1B2C3D6", "04A1B2C3D7", "04FFFF0001"
FAST_METER = {"max_power_kw": 1_000_000}  # the ocpp-rpc charge point meters 2.1 kWh in well under a second


async def emsp_mandate(net: Net, index: int) -> tuple[Mandates, int, str]:
    """A funded eMSP account's mandate for any of its tokens, naming our operator: (its Mandates, id, grant)."""
    payer = await funded_driver(net, index)  # funded, and the escrow may pull from it (approval)
    mandates = Mandates(net.w3, net.deployment, net.sender(payer))
    expiry = net.w3.eth.get_block("latest")["timestamp"] + 86_400
    receipt = await asyncio.to_thread(mandates.create, [net.operator.address], CAP, TOTAL, expiry, any_token=True)
    mandate_id = mandates.mandate_id_from(receipt)
    return mandates, mandate_id, format_grant(mandate_id, new_salt())


@contextlib.asynccontextmanager
async def roaming(
    net: Net, tmp_path: Path, keyfile: Path, grant: str | None, **cpo_settings: Any
) -> AsyncIterator[tuple[Core, StandInEmsp, str]]:
    """The daemon serving [ocpi_cpo] (with ``cpo_settings``) with one station, the eMSP registered (and linked
    to ``grant``)."""
    [cp] = cp_ids("ROAM")
    cpo = cpo_section(tmp_path, cp).model_copy(update=cpo_settings)
    async with (
        emsp_platform(tmp_path) as emsp,
        running_core(net, tmp_path, keyfile, {cp: 1}, ocpi_cpo=cpo, **FAST_METER) as core,
    ):
        service = core.daemon.ocpi_cpo
        token_a = service.peers.issue("ems-roaming")
        assert (await emsp.control("register", {"versions_url": cpo.versions_endpoint, "token_a": token_a}))["ok"]
        if grant is not None:
            service.peers.link_mandate("ems-roaming", grant)
        yield core, emsp, cp


@dataclass
class RoamingDaemon:
    """``core-client run`` serving [ocpi_cpo] with one station (``cp``, one connector, station ``station_id``)."""

    config: Path
    log_file: Path
    control_url: str
    ocpp_url: str
    cp: str
    password: str
    station_id: int
    process: subprocess.Popen | None = None

    async def start(self) -> None:
        self.process = spawn_daemon(self.config, self.log_file)
        await wait_health(self.control_url, timeout=60)  # a loaded machine takes its time to import it all

    def kill(self) -> None:
        """SIGKILL: nothing is finished, nothing is written on the way out."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def charge_point(self, **answers: dict | None) -> RawCP:
        """The station's charge point, connected and booted; it answers the daemon's CALLs with ``answers``
        (by action; None: never)."""
        return await RawCP.connect(self.ocpp_url, self.cp, self.password, answers=answers)

    async def health(self) -> dict:
        return await wait_health(self.control_url)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


@contextlib.asynccontextmanager
async def roaming_process(
    net: Net, tmp_path: Path, keyfile: Path, grant: str, core: dict[str, Any] | None = None, **cpo_settings: Any
) -> AsyncIterator[tuple[RoamingDaemon, StandInEmsp]]:
    """:func:`roaming` with the daemon as a process (with the settings ``core``; stopped after)."""
    [cp] = cp_ids("ROAM")
    cpo = cpo_section(tmp_path, cp).model_copy(update=cpo_settings)
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    password = f"pw-{cp}"
    ocpp_port, control_port = free_port(), free_port()
    settings = settings_for(
        net, tmp_path, keyfile, {cp: password}, ocpi_cpo=cpo, listen_port=ocpp_port, control_port=control_port,
        **FAST_METER, **(core or {}),
    )  # fmt: skip
    daemon = RoamingDaemon(
        write_config(tmp_path / "core.toml", settings), tmp_path / "daemon.log", f"http://127.0.0.1:{control_port}",
        f"ws://127.0.0.1:{ocpp_port}", cp, password, station_id,
    )  # fmt: skip
    async with emsp_platform(tmp_path) as emsp:
        try:
            await daemon.start()  # (stopped below even if it never answers)
            peers = PeerStore(cpo.peers_path(settings.database))  # the daemon reads the file at each request
            token_a = peers.issue("ems-roaming")
            assert (await emsp.control("register", {"versions_url": cpo.versions_endpoint, "token_a": token_a}))["ok"]
            peers.link_mandate("ems-roaming", grant)
            yield daemon, emsp
        finally:
            if daemon.process is not None:
                stop_daemon(daemon.process)


async def published(daemon: RoamingDaemon) -> None:
    """Wait until the daemon publishes its station (read once its charge point booted)."""

    async def count() -> int:
        return (await daemon.health())["ocpi_cpo"]["stations_published"]

    deadline = asyncio.get_running_loop().time() + 20
    while await count() < 1:
        assert asyncio.get_running_loop().time() < deadline, "the station was not published"
        await asyncio.sleep(0.2)


async def command_result(emsp: StandInEmsp, uid: str, timeout: float = 20) -> dict[str, Any]:
    """The CommandResult the eMSP received for its command ``uid``, once it has it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (result := (await emsp.control("state"))["commands"][uid]["result"]) is None:
        assert asyncio.get_running_loop().time() < deadline, f"no CommandResult for {uid}"
        await asyncio.sleep(0.05)
    return result


async def held(emsp: StandInEmsp, module: str, uid: str, matches: Callable[[dict], bool]) -> dict:
    """The eMSP's one object of ``module`` ("sessions", "cdrs") for token ``uid``, once it ``matches``."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        found = [o for o in (await emsp.control("state"))[module].values() if o["cdr_token"]["uid"] == uid]
        if found and matches(found[0]):
            assert len(found) == 1, found
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, f"no matching {module} object of {uid}: {found}"
        await asyncio.sleep(0.1)
