"""Our OCPI CPO interface (core_client.ocpi.cpo) on a real port, for the stand-in eMSP
(tests/interop/ocpi_emsp.js) to register with and call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core_client.ocpi.cpo.catalog import OurStation, Site
from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.server import CpoServer
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.cpo.token_store import TokenStore
from tools.harness.ocpi.our_emsp import free_port, running


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


def cpo_section(tmp_path: Path, *charge_points: str) -> CpoSettings:
    """The daemon's [ocpi_cpo] section on a free port, one site per charge point (as :func:`site` numbers them)."""
    return cpo_settings(free_port(), tmp_path, sites={cp: site(n) for n, cp in enumerate(charge_points, 1)})


@dataclass
class Stations:
    """:class:`~core_client.ocpi.cpo.modules.StationSource` over a list the test sets."""

    listed: list[OurStation] = field(default_factory=list)
    token_decimals: int = 6
    vat: Decimal | None = Decimal(19)

    def stations(self) -> list[OurStation]:
        return self.listed

    def decimals(self) -> int:
        return self.token_decimals

    def vat_percent(self) -> Decimal | None:
        return self.vat


def site(n: int) -> Site:
    return Site(
        name=f"Depot {n}",
        address=f"Hauptstrasse {n}",
        city="Berlin",
        postal_code="10115",
        country="DEU",
        latitude="52.52000",
        longitude=f"13.4{n:04d}",
        time_zone="Europe/Berlin",
    )


@dataclass
class OurCpo:
    settings: CpoSettings
    peers: PeerStore
    server: CpoServer
    source: Stations
    tokens: TokenStore | None = None

    @property
    def versions_url(self) -> str:
        return self.settings.versions_endpoint


@asynccontextmanager
async def our_cpo(
    tmp_path: Path, source: Stations | None = None, tokens: TokenStore | None = None, **extra: Any
) -> AsyncIterator[OurCpo]:
    """Our CPO endpoints on a free port (with ``tokens``: our Tokens RECEIVER too)."""
    port = free_port()
    settings = cpo_settings(port, tmp_path, **extra)
    peers = PeerStore(settings.peers_path(tmp_path / "core.db"))
    source = source or Stations()
    server = CpoServer(settings, peers, source, tokens=tokens)
    async with running(server.app(), port):
        yield OurCpo(settings, peers, server, source, tokens)
