"""``core-client cards add|list|remove``: the drivers' card grants the Core Client accepts (the file named
by ``cards_file``, :mod:`core_client.chain.grants`). A driver links a card with ``ev-wallet card add``,
which prints the card's grant; the operator adds it here. ``add`` checks on chain (unless ``--offline``)
that the mandate exists, names this operator and is not revoked; the running daemon takes the change
within ``cards_poll_s``: no restart."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from core_client.chain import onboarding
from core_client.chain.grants import Grant, GrantsFile
from core_client.cli.common import CliError, ConfigOpt
from core_client.config import Settings, load_settings
from core_client.errors import clean_errors
from ev_network.contracts import Token
from ev_network.keys import keyfile_address
from ev_network.mandates import Mandate, Mandates, parse_grant
from ev_network.units import format_amount, format_time

cards_app = typer.Typer(
    help="Accept drivers' RFID cards: the grants `ev-wallet card add` prints, kept in the cards_file.",
    no_args_is_help=True,
)
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Do not read the mandates on chain (only the file is used).")
]


def grants_file(settings: Settings) -> GrantsFile:
    if settings.cards_file is None:
        raise CliError(
            'the config sets no cards_file: add e.g. cards_file = "cards.txt" (the daemon reads grants there)'
        )
    return GrantsFile(settings.cards_file)


class MandateReader:
    """The mandates on chain, as the config's operator sees them."""

    def __init__(self, settings: Settings) -> None:
        w3, deployment = onboarding.connect_settings(settings)
        self.mandates = Mandates(w3, deployment)
        self.operator = keyfile_address(settings.keystore)
        self.decimals = Token(w3, deployment.token).decimals()
        self.now = w3.eth.get_block("latest")["timestamp"]

    def status(self, mandate: Mandate) -> str:
        """active, or why the mandate's cards are refused here."""
        if int(mandate.payer, 16) == 0:
            return "unknown on this chain"
        if mandate.revoked:
            return "revoked"
        if self.now >= mandate.expiry:
            return "expired"
        if not self.mandates.is_operator(mandate.mandate_id, self.operator):
            return f"not naming this operator {self.operator}"
        return "exhausted" if mandate.left < 1 else "active"

    def describe(self, mandate: Mandate) -> str:
        def fmt(units: int) -> str:
            return format_amount(units, self.decimals)

        return (
            f"payer {mandate.payer}, up to {fmt(mandate.cap_per_session)} per session, committed "
            f"{fmt(mandate.committed)} of {fmt(mandate.total)}, until {format_time(mandate.expiry)}"
        )


@cards_app.command("add")
@clean_errors
def cards_add(
    grant: Annotated[str, typer.Argument(help="The card's grant: evcard:<mandate id>:<salt hex>.", metavar="GRANT")],
    label: Annotated[str, typer.Option("--label", help="A note for the operator (e.g. who the driver is).")] = "",
    offline: OfflineOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Accept the cards of a driver's mandate: add its GRANT to the cards_file."""
    settings = load_settings(config)
    file = grants_file(settings)
    mandate_id, _ = parse_grant(grant)
    if not offline:
        reader = MandateReader(settings)
        status = reader.status(reader.mandates.get(mandate_id))
        if status not in ("active", "exhausted"):
            raise CliError(f"mandate {mandate_id} is {status}: not added (--offline adds it unchecked)")
    added = file.add(grant, label)
    if added is None:
        typer.echo(f"mandate {mandate_id} is granted already in {file.path}")
        return
    typer.echo(
        f"mandate {added.mandate_id} added to {file.path}: the Core Client accepts its cards within cards_poll_s "
        f"({settings.cards_poll_s:g} s)"
    )


@cards_app.command("list")
@clean_errors
def cards_list(
    offline: OfflineOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    config: ConfigOpt = None,
) -> None:
    """The grants in the cards_file, each with its mandate as on chain (unless --offline)."""
    settings = load_settings(config)
    file = grants_file(settings)
    grants = file.grants()
    reader = None if offline or not grants else MandateReader(settings)
    rows = [_row(grant, reader) for grant in grants]
    if as_json:
        typer.echo(json.dumps([{k: v for k, v in row.items() if k != "text"} for row in rows], indent=1))
        return
    if not rows:
        typer.echo(f"no grants in {file.path}: add one with `core-client cards add GRANT`")
    for row in rows:
        typer.echo(row["text"])
    if file.path.exists() and file.path.stat().st_mode & 0o077:
        typer.echo(f"warning: {file.path} is readable by others (chmod 600 it: grants hold the cards' salts)")


def _row(grant: Grant, reader: MandateReader | None) -> dict:
    row: dict = {"mandate_id": grant.mandate_id, "label": grant.label}
    name = f"mandate {grant.mandate_id}" + (f" ({grant.label})" if grant.label else "")
    if reader is None:
        return {**row, "text": name}
    mandate = reader.mandates.get(grant.mandate_id)
    status = reader.status(mandate)
    row.update(status=status, payer=mandate.payer, cap_per_session=mandate.cap_per_session, total=mandate.total)
    row.update(committed=mandate.committed, expiry=mandate.expiry)
    detail = "" if status.startswith("unknown") else f": {reader.describe(mandate)}"
    return {**row, "text": f"{name} {status}{detail}"}


@cards_app.command("remove")
@clean_errors
def cards_remove(
    mandate_id: Annotated[int, typer.Argument(help="The mandate whose grant goes.", metavar="MANDATE_ID", min=1)],
    config: ConfigOpt = None,
) -> None:
    """Stop accepting the cards of a mandate: its grant leaves the cards_file."""
    file = grants_file(load_settings(config))
    file.remove(mandate_id)
    typer.echo(f"mandate {mandate_id} removed from {file.path}: its cards are refused within cards_poll_s")
