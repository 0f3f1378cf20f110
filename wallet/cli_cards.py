"""``ev-wallet card ...``: RFID cards paid from the account, each linked to a payment mandate."""

from __future__ import annotations

from typing import Annotated

import typer

from wallet.cards import Cards, CardView
from wallet.cli_common import (
    AccountAddr,
    DeploymentFile,
    JsonOut,
    RpcUrl,
    amount_arg,
    clean_errors,
    config_from,
    emit,
    open_wallet,
)
from wallet.units import format_time

card_app = typer.Typer(
    help="Link RFID cards to the account (a payment mandate per card), list and remove them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
UidArg = Annotated[str, typer.Argument(help="The card's uid as the charge point reads it (hex).", metavar="UID")]


@card_app.command("add")
@clean_errors
def card_add(
    uid: UidArg,
    operator: Annotated[str, typer.Option("--operator", help="Address of the operator whose stations take the card.")],
    cap: Annotated[str, typer.Option("--cap", help="Most one session may cost, in whole tokens.", show_default=False)],
    total: Annotated[str, typer.Option("--total", help="Most all its sessions may cost together.", show_default=False)],
    days: Annotated[int, typer.Option("--days", help="Days the card stays valid.", min=1)] = 365,
    label: Annotated[str, typer.Option("--label", help="A name for the card.")] = "",
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
) -> None:
    """Link card UID: a mandate lets OPERATOR open sessions for it, within --cap per session and --total.

    Prints the card's grant: give it to the operator (its Core Client needs it to recognise the card;
    the chain holds only a salted hash of the uid)."""
    cfg = config_from(rpc_url, deployment, account)
    wallet = open_wallet(cfg, unlock=True)
    cards = Cards(wallet, cfg.home)
    card = cards.add(uid, operator, amount_arg(wallet, cap), amount_arg(wallet, total), days=days, label=label)
    typer.echo(f"card {card.uid} linked: mandate {card.mandate_id}, up to {cap} per session, {total} in all")
    typer.echo(f"grant for the operator: {card.grant}")


@card_app.command("list")
@clean_errors
def card_list(
    rpc_url: RpcUrl = None, deployment: DeploymentFile = None, account: AccountAddr = None, as_json: JsonOut = False
) -> None:
    """List the linked cards: status, what their sessions committed so far, caps and expiry."""
    cfg = config_from(rpc_url, deployment, account)
    wallet = open_wallet(cfg)
    views = Cards(wallet, cfg.home).list()
    if as_json:
        emit([v.as_json() for v in views])
        return
    if not views:
        typer.echo("no cards linked: add one with `ev-wallet card add UID --operator ... --cap ... --total ...`")
    for view in views:
        typer.echo(card_line(wallet.fmt, view))


def card_line(fmt, view: CardView) -> str:
    m, card = view.mandate, view.card
    name = card.uid if card.label == card.uid else f"{card.label} ({card.uid})"
    return (
        f"{name} {view.status}: committed {fmt(m.committed)} of {fmt(m.total)}, "
        f"up to {fmt(m.cap_per_session)} per session, until {format_time(m.expiry)}, "
        f"operator {view.card.operator}, mandate {m.mandate_id}"
    )


@card_app.command("remove")
@clean_errors
def card_remove(
    uid: UidArg, rpc_url: RpcUrl = None, deployment: DeploymentFile = None, account: AccountAddr = None
) -> None:
    """Revoke card UID at once (its mandate opens nothing more; running sessions settle as usual)."""
    cfg = config_from(rpc_url, deployment, account)
    card = Cards(open_wallet(cfg, unlock=True), cfg.home).remove(uid)
    typer.echo(f"card {card.uid} removed: mandate {card.mandate_id} revoked")
