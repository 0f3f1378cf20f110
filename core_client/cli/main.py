"""``core-client``: run the CPO's Core Client and manage its key, stations and charge points."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from ocpp.v16.enums import AvailabilityType, MessageTrigger, ResetType
from web3 import Web3

from core_client.chain import onboarding
from core_client.cli.cards import cards_app
from core_client.cli.common import CliError, ConfigOpt
from core_client.cli.common import operator_escrow as _operator_escrow
from core_client.cli.common import password as _password
from core_client.cli.control_client import call_control
from core_client.cli.db import db_app
from core_client.cli.held import sessions_app
from core_client.cli.meter_keys import meter_key_app
from core_client.cli.ocpi import ocpi_app
from core_client.cli.records import records_app
from core_client.config import Settings, check_charge_point_id, load_settings
from core_client.errors import clean_errors
from core_client.storage.database import describe, is_database_error
from ev_network.contracts import Token
from ev_network.errors import ContractRevert
from ev_network.keys import create_keyfile, keyfile_address
from ev_network.ocmf import fingerprint
from ev_network.operator_profile import OperatorProfiles, Profile

HELP = """The Core Client: the Charge Point Operator's daemon between OCPP 1.6J charge points and the
EV Network escrow. It starts app-paid sessions on charge points, enforces the pre-paid budget and
settles every session on chain, exactly once.

Settings come from a TOML file (--config, or env EVN_CC_CONFIG; see examples/core-client.toml),
each overridable by an EVN_CC_<FIELD> environment variable. The operator keystore password comes
from the variable named by `password_env` (default EVN_OPERATOR_PASSWORD) or is asked for.
"""

app = typer.Typer(
    name="core-client",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
keys_app = typer.Typer(help="Create or import the operator's encrypted key.", no_args_is_help=True)
stations_app = typer.Typer(help="Register and list this operator's stations on chain.", no_args_is_help=True)
operator_app = typer.Typer(help="Onboard this Core Client's key as an operator.", no_args_is_help=True)
command_app = typer.Typer(
    help="Send an OCPP command to a connected charge point (via the control endpoint).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(stations_app, name="stations")
stations_app.add_typer(meter_key_app, name="meter-key")
app.add_typer(operator_app, name="operator")
app.add_typer(command_app, name="command")
app.add_typer(records_app, name="records")
app.add_typer(sessions_app, name="sessions")
app.add_typer(db_app, name="db")
app.add_typer(ocpi_app, name="ocpi")
app.add_typer(cards_app, name="cards")

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", help="Control endpoint (default: from the config, else http://127.0.0.1:9001).", show_default=False
    ),
]
CpArg = Annotated[str, typer.Argument(help="OCPP charge point id.", metavar="CP_ID", show_default=False)]
KeystoreOpt = Annotated[Path, typer.Option("--keystore", help="Keyfile to write (never overwritten).")]
PasswordEnvOpt = Annotated[str, typer.Option("--password-env", help="Env variable holding the password.")]


def _settings(config: Path | None) -> Settings:
    return load_settings(config)


# -------------------------------------------------------------------- daemon


@app.command()
@clean_errors
def run(
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs, including OCPP frames.")] = False,
) -> None:
    """Run the daemon until SIGINT/SIGTERM (OCPP server, control endpoint, event watcher, chain worker).

    The keystore password comes from the variable named by the config's password_env (default
    EVN_OPERATOR_PASSWORD) or is asked for. Logs go to stderr."""
    from core_client.process import run as run_daemon
    from core_client.process import setup_logging

    settings = _settings(config)
    password = _password(settings.password_env, f"Password for {settings.keystore}: ")
    setup_logging(verbose)
    try:
        asyncio.run(run_daemon(settings, password))
    except Exception as error:  # a corrupt file, a full disk, the PostgreSQL server gone...
        if not is_database_error(error):
            raise
        raise CliError(f"database {describe(settings.database)}: {error}") from None


@app.command()
@clean_errors
def health(config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """Print the running daemon's health JSON (charge points, queue, chain head, sessions by state)."""
    typer.echo(json.dumps(_control(config, url, "/health"), indent=2))


@app.command()
@clean_errors
def check(config: ConfigOpt = None) -> None:
    """Say whether this Core Client can run (no daemon needed): chain reachable, key registered as
    operator, gas to pay for transactions. Exit 1 when it is not ready."""
    settings = _settings(config)
    w3, deployment = onboarding.connect_settings(settings)
    state = onboarding.readiness(w3, deployment, keyfile_address(settings.keystore))
    typer.echo(f"chain {state.chain_id} at {settings.rpc_url}: block {state.head}, escrow {deployment.escrow}")
    if state.registered:
        typer.echo(f"operator {state.address}: registered as {state.name!r}, payout {state.payout}")
    else:
        typer.echo(f"operator {state.address}: not registered (core-client operator register -c CONFIG)")
    balance, needed = (Web3.from_wei(wei, "ether") for wei in (state.balance_wei, state.needed_wei))
    typer.echo(f"gas: {balance} of the chain's coin (needs {needed} for about 20 transactions)")
    if state.problems:
        raise CliError(f"not ready: {', '.join(state.problems)}")
    typer.echo("ready")


def _control(config: Path | None, url: str | None, path: str, params: dict[str, Any] | None = None) -> Any:
    return call_control(_settings(config), url, path, params)


# ---------------------------------------------------------------------- keys


@keys_app.command("create")
@clean_errors
def keys_create(keystore: KeystoreOpt, password_env: PasswordEnvOpt = "EVN_OPERATOR_PASSWORD") -> None:
    """Create a new operator key, encrypted in KEYSTORE; prints only its address."""
    password = _password(password_env, "New keystore password: ", confirm=True)
    typer.echo(create_keyfile(keystore, password))


@keys_app.command("import")
@clean_errors
def keys_import(
    keystore: KeystoreOpt,
    password_env: PasswordEnvOpt = "EVN_OPERATOR_PASSWORD",
    key_env: Annotated[
        str, typer.Option("--key-env", help="Env variable holding the private key (else it is asked for, hidden).")
    ] = "EVN_OPERATOR_KEY",
) -> None:
    """Import an existing private key into an encrypted KEYSTORE; prints only its address."""
    key = os.environ.get(key_env) or typer.prompt("Private key (hex)", hide_input=True)
    password = _password(password_env, "New keystore password: ", confirm=True)
    try:
        typer.echo(create_keyfile(keystore, password, key.strip()))
    except (ValueError, TypeError):  # eth-account's message could echo the key: never show it
        raise CliError(f"{key_env} does not hold a private key (64 hex digits)") from None


# ------------------------------------------------------------------ operator


@operator_app.command("register")
@clean_errors
def operator_register(
    config: ConfigOpt = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Local Anvil only: register with its registrar account, send gas.")
    ] = False,
    payout: Annotated[
        str | None, typer.Option("--payout", help="Payout address (default: the key's own).", show_default=False)
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Operator name shown on invoices.")] = "Local CPO",
) -> None:
    """Register the config's key as an operator: with --dev on a local Anvil, at once (and fund it
    with gas); on any other chain, print what the registrar runs."""
    settings = _settings(config)
    w3, deployment = onboarding.connect_settings(settings)
    address = keyfile_address(settings.keystore)
    payout = Web3.to_checksum_address(payout) if payout else address
    if not dev:
        typer.echo(onboarding.registrar_instructions(deployment, settings.rpc_url, address, payout, name))
        return
    for line in onboarding.register_on_dev_chain(w3, deployment, address, payout, name) or ["nothing to do"]:
        typer.echo(line)


@operator_app.command("profile")
@clean_errors
def operator_profile(
    legal_name: Annotated[str, typer.Option("--legal-name", help="Registered legal name, for invoices.")],
    address: Annotated[str, typer.Option("--address", help="Postal address; separate lines with ';'.")],
    vat_id: Annotated[str, typer.Option("--vat-id", help="VAT identification number (e.g. DE123456789).")] = "",
    vat_rate: Annotated[str, typer.Option("--vat-rate", help="VAT rate in % included in the prices.")] = "19",
    config: ConfigOpt = None,
) -> None:
    """Publish the operator's legal data on chain (OperatorProfile): drivers' invoices carry it, with net,
    VAT and gross lines at --vat-rate."""
    try:
        rate_bp = int(Decimal(vat_rate) * 100)
    except (InvalidOperation, ValueError, OverflowError):
        raise CliError(f"--vat-rate {vat_rate!r} is not a number") from None
    escrow, deployment = _operator_escrow(_settings(config))
    if deployment.operator_profile is None:
        raise CliError("this deployment has no operator_profile contract (redeploy with scripts/deploy.py)")
    lines = "\n".join(part.strip() for part in address.split(";"))
    profile = Profile(legal_name, lines, vat_id, rate_bp)
    OperatorProfiles(escrow.w3, deployment.operator_profile, escrow.sender).set_profile(profile)
    typer.echo(f"legal data published on chain: {legal_name}, VAT id {vat_id or '-'}, VAT {vat_rate} %")


# ------------------------------------------------------------------ stations


@stations_app.command("add")
@clean_errors
def stations_add(
    cp_id: CpArg,
    connectors: Annotated[int, typer.Option("--connectors", min=1, max=255, help="Number of connectors.")],
    price_per_kwh: Annotated[str, typer.Option("--price-per-kwh", help="Tokens per kWh, e.g. 0.35.")],
    session_fee: Annotated[str, typer.Option("--session-fee", help="Fixed tokens per session, e.g. 0.5.")],
    time_fee_per_hour: Annotated[str, typer.Option("--time-fee-per-hour", help="Tokens per hour charging.")] = "0",
    config: ConfigOpt = None,
) -> None:
    """Register a station (charge point CP_ID) with its tariff on chain, for this operator."""
    try:
        check_charge_point_id(cp_id)  # the same rule as [charge_points]: refused before any transaction
    except ValueError as error:
        raise CliError(str(error)) from None
    settings = _settings(config)
    escrow, deployment = _operator_escrow(settings)
    decimals = Token(escrow.w3, deployment.token).decimals()
    tariff = onboarding.tariff_from_tokens(
        {"--price-per-kwh": price_per_kwh, "--session-fee": session_fee, "--time-fee-per-hour": time_fee_per_hour},
        decimals,
    )
    try:
        station_id = escrow.station_id_from(escrow.add_station(cp_id, connectors, tariff))
    except ContractRevert as error:
        if error.name != "ChargePointIdTaken":
            raise
        raise CliError(
            f"charge point id {cp_id} is already registered on chain (ids are unique across all operators): choose another"
        ) from None
    typer.echo(f"station {station_id} registered for charge point {cp_id} ({connectors} connectors)")
    if cp_id not in settings.charge_points:
        typer.echo(f"add {cp_id} and its password under [charge_points] in the config so it can connect")


@stations_app.command("list")
@clean_errors
def stations_list(config: ConfigOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List this operator's stations on chain (id, charge point, connectors, active, tariff, and the meter
    key's fingerprint, or "plain": a station with a key settles only on records its meter signed)."""
    settings = _settings(config)
    escrow, _ = _operator_escrow(settings)
    assert escrow.sender is not None
    rows = []
    for station in escrow.stations():
        if station.operator != escrow.sender.address:
            continue
        tariff = escrow.get_tariff(station.tariff_id)
        rows.append(
            {
                "station_id": station.station_id,
                "charge_point_id": station.charge_point_id,
                "connectors": station.connectors,
                "active": station.active,
                "tariff_id": station.tariff_id,
                "price_per_kwh": str(tariff.price_per_kwh),
                "session_fee": str(tariff.session_fee),
                "time_fee_per_hour": str(tariff.time_fee_per_hour),
                "configured": station.charge_point_id in settings.charge_points,
                "meter_public_key": bytes(station.meter_public_key).hex(),  # empty: plain settlement
                "meter_key": fingerprint(bytes(station.meter_public_key)),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r['station_id']:>5}  {r['charge_point_id']:<20} connectors={r['connectors']} "
            f"active={r['active']} tariff={r['tariff_id']} configured={r['configured']} "
            f"meter_key={r['meter_key']}"
        )
    if not rows:
        typer.echo("no stations for this operator")


# ------------------------------------------------------------------- command


def _command(config: Path | None, url: str | None, cp_id: str, action: str, **params: Any) -> None:
    answer = _control(config, url, "/command", {"cp": cp_id, "action": action, **params})
    typer.echo(f"{cp_id}: {action} -> {answer['status']}")


@command_app.command("reset")
@clean_errors
def command_reset(
    cp_id: CpArg,
    type: Annotated[str, typer.Option("--type", help="Soft or Hard.")] = "Soft",
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Reset a charge point (running transactions are stopped and settled)."""
    _command(config, url, cp_id, "reset", type=_one_of("--type", type, ResetType))


@command_app.command("change-availability")
@clean_errors
def command_change_availability(
    cp_id: CpArg,
    type: Annotated[str, typer.Option("--type", help="Operative or Inoperative.")],
    connector: Annotated[int, typer.Option("--connector", min=0, help="Connector; 0 = whole charge point.")] = 0,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Make a connector (or the whole charge point) Operative or Inoperative."""
    _command(
        config, url, cp_id, "change_availability", type=_one_of("--type", type, AvailabilityType), connector=connector
    )


@command_app.command("trigger")
@clean_errors
def command_trigger(
    cp_id: CpArg,
    message: Annotated[
        str,
        typer.Argument(
            metavar="MESSAGE",
            help="BootNotification, Heartbeat, StatusNotification, MeterValues, "
            "DiagnosticsStatusNotification or FirmwareStatusNotification.",
        ),
    ],
    connector: Annotated[int | None, typer.Option("--connector", min=0, help="Connector (optional).")] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Ask a charge point to send MESSAGE now (TriggerMessage)."""
    _command(
        config, url, cp_id, "trigger_message", message=_one_of("MESSAGE", message, MessageTrigger), connector=connector
    )


def _one_of(name: str, value: str, values: type[Enum]) -> str:
    """``value`` if it is one of the OCPP enumeration ``values``, else CliError (before the daemon is asked)."""
    allowed = [v.value for v in values]
    if value not in allowed:
        raise CliError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


if __name__ == "__main__":
    app()
