"""``core-client stations meter-key set|rotate|remove``: the P-256 key of a station's meter on chain,
sent from the operator's encrypted keystore. A station with a key settles only on records its meter
signed; a session settles on the key valid when it started, so a rotation strands no session in flight."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from core_client.cli.common import CliError, ConfigOpt, operator_escrow
from core_client.config import load_settings
from core_client.errors import clean_errors
from ev_network import ocmf
from ev_network.contracts import Escrow, Station

meter_key_app = typer.Typer(
    help="Register, rotate or remove a station's meter key (its sessions then settle on signed records).",
    no_args_is_help=True,
)

CpArg = Annotated[str, typer.Argument(help="OCPP charge point id.", metavar="CP_ID", show_default=False)]
KeyArg = Annotated[
    str | None,
    typer.Argument(
        metavar="KEY",
        help="The meter's P-256 public key as it prints it: DER as hex or base64, or the point in hex "
        "(65 bytes 04||x||y, 33 bytes compressed, 64 bytes x||y); a PEM file: --file.",
        show_default=False,
    ),
]
FileOpt = Annotated[
    Path | None, typer.Option("--file", help="Read KEY from this file (e.g. a PEM file).", show_default=False)
]


def parse_key(key: str | None, file: Path | None) -> bytes:
    """The registry form (04 || x || y) of the key given as KEY or in --file; CliError in one line if it
    is missing, empty or not a P-256 public key."""
    if (key is None) == (file is None):
        raise CliError("give the meter key either as KEY or with --file, not both and not neither")
    if file is not None:
        try:
            key = file.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"cannot read the meter key file {file}: {error}") from None
    try:
        return ocmf.registry_key(key or "")
    except ocmf.OCMFError as error:
        raise CliError(f"meter key refused: {error}") from None


def _own_station(escrow: Escrow, cp_id: str) -> Station:
    station = escrow.station_by_charge_point(cp_id)
    if station is None:
        raise CliError(f"no station is registered for charge point {cp_id}")
    assert escrow.sender is not None
    if station.operator != escrow.sender.address:
        raise CliError(f"station {station.station_id} ({cp_id}) belongs to operator {station.operator}, not to you")
    return station


def _change(config: Path | None, cp_id: str, new_key: bytes, refusal: Callable[[bytes], str | None]) -> None:
    """Send the station's new key (b"" removes it) unless ``refusal`` of its current key says why not."""
    escrow, _ = operator_escrow(load_settings(config))
    station = _own_station(escrow, cp_id)
    old = bytes(station.meter_public_key)
    if (why := refusal(old)) is not None:
        raise CliError(f"{cp_id}: {why}")
    escrow.set_meter_public_key(station.station_id, new_key)
    typer.echo(
        f"station {station.station_id} ({cp_id}): meter key {ocmf.fingerprint(old)} -> {ocmf.fingerprint(new_key)}"
        " (sessions started before keep settling on the key valid at their start)"
    )


@meter_key_app.command("set")
@clean_errors
def meter_key_set(cp_id: CpArg, key: KeyArg = None, file: FileOpt = None, config: ConfigOpt = None) -> None:
    """Register the meter key of a station that settles plain today."""
    new_key = parse_key(key, file)
    _change(
        config,
        cp_id,
        new_key,
        lambda old: f"has meter key {ocmf.fingerprint(old)} already: use rotate" if old else None,
    )


@meter_key_app.command("rotate")
@clean_errors
def meter_key_rotate(cp_id: CpArg, key: KeyArg = None, file: FileOpt = None, config: ConfigOpt = None) -> None:
    """Replace a station's meter key (a new or repaired meter)."""
    new_key = parse_key(key, file)

    def refusal(old: bytes) -> str | None:
        if not old:
            return "has no meter key to rotate: use set"
        return f"meter key {ocmf.fingerprint(old)} is registered already" if old == new_key else None

    _change(config, cp_id, new_key, refusal)


@meter_key_app.command("remove")
@clean_errors
def meter_key_remove(cp_id: CpArg, config: ConfigOpt = None) -> None:
    """Remove a station's meter key: its sessions started from now on settle plain."""
    _change(config, cp_id, b"", lambda old: None if old else "has no meter key to remove")
