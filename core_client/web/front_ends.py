"""The Core Client's two HTTP front ends, served by the daemon in its own event loop, each only when
its config section is given: the drivers' live data (``[live]``, :mod:`core_client.web.live`) and the
CPO's dashboard (``[dashboard]``, :mod:`core_client.web`). Both are served over HTTPS (only) when the
daemon has ``tls_cert``/``tls_key``, with the certificate charge points see: the dashboard's cookie
and the drivers' signed live requests never cross the network in the clear. Both read the running
session service, so they show the latest meter readings (kept in memory) and act through it (the
dashboard's Retry, and its decisions on held sessions through the daemon's HeldDesk)."""

from __future__ import annotations

import logging

from web3 import Web3

from core_client.config import ConfigError, Settings
from core_client.sessions.held_desk import HeldDesk
from core_client.sessions.service import SessionService
from core_client.web import ServiceDashboardSource, create_dashboard_app
from core_client.web.instances import Directory
from core_client.web.live import ReadingsSource, create_live_app
from ev_network.deployment import Deployment
from ev_network.web.server import HttpServer

log = logging.getLogger("core_client")
NAMES = {"live": "live data", "dashboard": "dashboard"}


async def start_front_ends(
    settings: Settings,
    service: SessionService,
    w3: Web3,
    deployment: Deployment,
    operator: str,
    desk: HeldDesk | None = None,
    directory: Directory | None = None,
) -> dict[str, HttpServer]:
    """Start the configured front ends (by config section); ConfigError if one cannot listen. The dashboard
    decides held sessions through ``desk`` (the daemon's, which records each decision) and shows the
    operator's instances from ``directory`` (the daemon's claims: several instances on one PostgreSQL)."""
    servers: dict[str, HttpServer] = {}
    tls = (settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None
    if settings.live is not None:
        app = create_live_app(ReadingsSource(service.live), settings.live)
        live = settings.live
        servers["live"] = HttpServer(app, live.host, live.port, tls=tls, request_timeout_s=live.request_timeout_s)
    if settings.dashboard is not None:
        source = ServiceDashboardSource(service, w3, deployment, operator, desk, directory)
        board = settings.dashboard
        app = create_dashboard_app(source, board, tls=tls is not None)
        servers["dashboard"] = HttpServer(
            app, board.host, board.port, tls=tls, request_timeout_s=board.request_timeout_s
        )
    started: dict[str, HttpServer] = {}
    try:
        for section, server in servers.items():
            try:
                await server.start()
            except OSError as error:
                raise ConfigError(f"[{section}] {NAMES[section]}: {error}") from None
            started[section] = server
            log.info("%s on %s/", NAMES[section], server.url)
    except BaseException:
        await stop_front_ends(started)
        raise
    return started


async def stop_front_ends(servers: dict[str, HttpServer]) -> None:
    """Stop serving (open event streams are closed after a short grace)."""
    for server in servers.values():
        await server.stop()
