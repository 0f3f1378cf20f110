"""``core-client ocpi``: connect the Core Client to the CPO's CSMS over OCPI 2.2.1 as an eMSP.

register / update / unregister: the credentials handshake (token A from the config for register);
status: the registration; stations: each of the CSMS's EVSEs and what it maps to on chain; import:
register chosen EVSEs as stations with their converted tariffs. As the CPO of roaming eMSPs
(``[ocpi_cpo]``): issue-token NAME (a token A the eMSP registers with), mandate NAME GRANT (its payment
mandate), emsps. One line on any error."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from core_client.chain.onboarding import connect_settings
from core_client.chain.station_registry import EscrowRegistry
from core_client.cli.common import ConfigOpt, operator_escrow
from core_client.config import load_settings
from core_client.errors import clean_errors
from core_client.ocpi.bridge import Bridge
from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.stations import EvseMapping
from ev_network.contracts import Token

ocpi_app = typer.Typer(
    help="Connect to the CPO's CSMS over OCPI 2.2.1 as an eMSP (the [ocpi] section of the config).",
    no_args_is_help=True,
)


def _bridge(config: Path | None) -> Bridge:
    settings = load_settings(config)
    if settings.ocpi is None:
        raise OcpiError("no [ocpi] section in the config (see examples/core-client.toml)")
    return Bridge(settings.ocpi, settings.database)


def _echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@ocpi_app.command("register")
@clean_errors
def register(config: ConfigOpt = None) -> None:
    """Register with the CSMS (versions -> 2.2.1 -> POST our credentials with its token A)."""
    _echo(asyncio.run(_bridge(config).register()))


@ocpi_app.command("update")
@clean_errors
def update(config: ConfigOpt = None) -> None:
    """Renew the credentials tokens both ways and re-read the CSMS's endpoints (PUT)."""
    _echo(asyncio.run(_bridge(config).update()))


@ocpi_app.command("unregister")
@clean_errors
def unregister(config: ConfigOpt = None) -> None:
    """End the registration (DELETE) and forget both tokens."""
    _echo(asyncio.run(_bridge(config).unregister()))


@ocpi_app.command("status")
@clean_errors
def status(config: ConfigOpt = None) -> None:
    """Show the registration with the CSMS."""
    _echo(_bridge(config).status())


@ocpi_app.command("stations")
@clean_errors
def stations(config: ConfigOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the CSMS's EVSEs and what each maps to on chain: its station, what it would register as, or
    why it cannot be imported."""
    settings = load_settings(config)
    bridge = _bridge(config)
    w3, deployment = connect_settings(settings)
    decimals = Token(w3, deployment.token).decimals()
    if not as_json:
        _echo(asyncio.run(bridge.stations(decimals)))
        return
    rows, problems = asyncio.run(bridge.evses(decimals))
    typer.echo(json.dumps({"evses": [_row_json(r) for r in rows], "skipped": problems}, indent=2, default=str))


@ocpi_app.command("import")
@clean_errors
def import_(
    evses: Annotated[
        list[str] | None, typer.Argument(help="EVSEs: uid, evse_id or LOCATION/UID.", show_default=False)
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every EVSE that can be imported.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Register EVSEs of the CSMS as stations on chain, each with its tariff converted."""
    if not evses and not everything:
        raise OcpiError("name the EVSEs to import, or give --all")
    settings = load_settings(config)
    bridge = _bridge(config)
    escrow, deployment = operator_escrow(settings)
    _echo(asyncio.run(bridge.import_evses(EscrowRegistry(escrow, deployment), evses or [], everything)))


def _row_json(row: EvseMapping) -> dict[str, Any]:
    data = asdict(row)
    data["party"] = str(row.party)
    data["status"] = row.status.value
    data["tariff"] = (
        None
        if row.tariff is None
        else {**asdict(row.tariff.tariff), "vat_percent": row.tariff.vat_percent, "source": row.tariff.source}
    )
    return data


# ------------------------------------------------------------------- as the CPO of roaming eMSPs


def _emsps(config: Path | None) -> tuple[PeerStore, CpoSettings]:
    settings = load_settings(config)
    if settings.ocpi_cpo is None:
        raise OcpiError("no [ocpi_cpo] section in the config (see docs/operations.md, roaming eMSPs)")
    return PeerStore(settings.ocpi_cpo.peers_path(settings.database)), settings.ocpi_cpo


@ocpi_app.command("issue-token")
@clean_errors
def issue_token(
    name: Annotated[str, typer.Argument(help="The eMSP's (or hub's) name, for you.")], config: ConfigOpt = None
) -> None:
    """Issue a token A with which the eMSP NAME registers with us (printed once, kept 0600, never logged)."""
    peers, cpo = _emsps(config)
    token = peers.issue(name)
    _echo([f"token A for {name}: {token}", f"our OCPI versions URL: {cpo.versions_endpoint}"])


@ocpi_app.command("mandate")
@clean_errors
def mandate(
    name: Annotated[str, typer.Argument(help="The eMSP's name (as given to issue-token).")],
    grant: Annotated[str, typer.Argument(help="The eMSP's mandate grant: evcard:<mandate id>:<salt hex>.")],
    config: ConfigOpt = None,
) -> None:
    """Link the eMSP NAME to its payment mandate: its customers' sessions are then paid through it."""
    peers, _ = _emsps(config)
    linked = peers.link_mandate(name, grant)
    _echo([f"{name}: sessions of its tokens are paid through mandate {linked.mandate_id}"])


@ocpi_app.command("emsps")
@clean_errors
def emsps(config: ConfigOpt = None) -> None:
    """List the eMSPs registered with us (or holding a token A not used yet)."""
    peers, _ = _emsps(config)
    rows = [
        f"{p.name}: "
        + (
            f"registered {p.registered_at:%Y-%m-%d %H:%M} UTC as "
            + ", ".join(f"{r.role.value} {r.country_code}/{r.party_id}" for r in p.roles)
            if p.registered and p.registered_at
            else f"token A issued {p.issued_at:%Y-%m-%d %H:%M} UTC, not registered yet"
        )
        + ("" if p.mandate_id is None else f"; mandate {p.mandate_id}")
        for p in peers.all()
    ]
    _echo(rows or ["no eMSPs: `core-client ocpi issue-token NAME` issues a token A"])
