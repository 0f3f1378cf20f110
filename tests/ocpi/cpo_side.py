"""Our OCPI CPO interface (core_client.ocpi.cpo) on a real port, for the stand-in eMSP
(tests/interop/ocpi_emsp.js) to register with and call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.server import CpoServer
from core_client.ocpi.cpo.settings import CpoSettings
from tests.ocpi.harness import free_port, running


def cpo_settings(port: int, tmp_path: Path, **extra: Any) -> CpoSettings:
    return CpoSettings(
        country_code="DE",
        party_id="EVN",
        business_name="EV Network stations",
        port=port,
        public_url=f"http://127.0.0.1:{port}/ocpi/cpo",
        peers_file=tmp_path / "ocpi-emsps",
        **extra,
    )


@dataclass
class OurCpo:
    settings: CpoSettings
    peers: PeerStore
    server: CpoServer

    @property
    def versions_url(self) -> str:
        return self.settings.versions_endpoint


@asynccontextmanager
async def our_cpo(tmp_path: Path, **extra: Any) -> AsyncIterator[OurCpo]:
    port = free_port()
    settings = cpo_settings(port, tmp_path, **extra)
    peers = PeerStore(settings.peers_path(tmp_path / "core.db"))
    server = CpoServer(settings, peers)
    async with running(server.app(), port):
        yield OurCpo(settings, peers, server)
