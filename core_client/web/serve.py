"""Serving the Core Client's two HTTP front ends: the live data endpoint (:mod:`core_client.live_api`) and
the CPO dashboard (:mod:`core_client.web.app`), each only when its config section is given.

The daemon calls :func:`start_front_ends` with its own Store (in its event loop). Until it does,
``python -m core_client.web --config core-client.toml --web-config web.toml`` serves both next to a
running daemon, reading the same SQLite database (WAL: it reads while the daemon writes)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from web3 import Web3

from core_client.config import ConfigError, load_settings
from core_client.live_api import HttpServer, StoreLiveSource, create_live_app
from core_client.store import Store
from core_client.web.app import create_dashboard_app
from core_client.web.source import StoreDashboardSource
from core_client.web_config import DashboardSettings, LiveSettings, load_web_settings
from ev_network.chain import http_web3
from ev_network.cli_errors import KNOWN_ERRORS, clean_errors
from ev_network.deployment import Deployment
from ev_network.keys import keyfile_address


async def start_front_ends(
    live: LiveSettings | None,
    dashboard: DashboardSettings | None,
    store: Store,
    w3: Web3,
    deployment: Deployment,
    operator: str,
) -> list[HttpServer]:
    """Start the configured front ends on ``store`` (call from the event loop that uses the store)."""
    servers = []
    if live is not None:
        servers.append(HttpServer(create_live_app(StoreLiveSource(store), live), live.host, live.port))
    if dashboard is not None:
        source = StoreDashboardSource(store, w3, deployment, operator)
        servers.append(HttpServer(create_dashboard_app(source, dashboard), dashboard.host, dashboard.port))
    try:
        for server in servers:
            await server.start()
    except BaseException:
        await stop_front_ends(servers)
        raise
    return servers


async def stop_front_ends(servers: list[HttpServer]) -> None:
    for server in servers:
        await server.stop()


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
@clean_errors((*KNOWN_ERRORS, ConfigError))
def main(
    config: Annotated[Path, typer.Option("--config", "-c", help="The Core Client's config file.")],
    web_config: Annotated[Path, typer.Option("--web-config", help="TOML file with [live] and/or [dashboard].")],
) -> None:
    """Serve the live data endpoint and the CPO dashboard of a Core Client (until Ctrl-C)."""
    settings = load_settings(config)
    live, dashboard = load_web_settings(web_config)
    if live is None and dashboard is None:
        raise ConfigError(f"{web_config} has neither [live] nor [dashboard]: nothing to serve")
    asyncio.run(
        _serve(settings.database, settings.rpc_url, settings.deployment_file, settings.keystore, live, dashboard)
    )


async def _serve(
    database: Path,
    rpc_url: str,
    deployment_file: Path,
    keystore: Path,
    live: LiveSettings | None,
    dashboard: DashboardSettings | None,
) -> None:
    store = Store(database)
    try:
        deployment = Deployment.load(deployment_file)
        w3 = http_web3(rpc_url, 5)
        servers = await start_front_ends(live, dashboard, store, w3, deployment, keyfile_address(keystore))
        names = (["live data"] if live else []) + (["dashboard"] if dashboard else [])
        for name, server in zip(names, servers, strict=True):
            typer.echo(f"{name} on {server.url}/")
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await stop_front_ends(servers)
    finally:
        store.close()
