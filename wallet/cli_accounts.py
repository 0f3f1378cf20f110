"""``ev-wallet account ...``: the wallet's accounts (encrypted keyfiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ev_network.keys import KeystoreError, has_terminal, resolve_password
from wallet import config as cfgmod
from wallet.cli_common import JsonOut, clean_errors, emit
from wallet.config import WalletConfig
from wallet.keystore import Keystore

account_app = typer.Typer(
    help="Create, import and list the wallet's accounts (encrypted keyfiles).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@account_app.command("create")
@clean_errors
def account_create() -> None:
    """Create a new account (a fresh key, encrypted).

    The password comes from EVN_WALLET_PASSWORD or is asked twice. The first account becomes the default."""
    cfg = WalletConfig.resolve()
    password = resolve_password(cfgmod.PASSWORD_ENV, "New keystore password: ", confirm=True)
    keystore = Keystore(cfg)
    address = keystore.create(password)
    typer.echo(f"created account {address}")
    typer.echo(f"keyfile {keystore.path_of(address)} (encrypted; keep the password safe, it cannot be recovered)")


@account_app.command("import")
@clean_errors
def account_import(
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File holding the hex private key (else asked, hidden).")
    ] = None,
) -> None:
    """Import an existing private key (never given on the command line) and encrypt it with a password."""
    cfg = WalletConfig.resolve()
    if key_file is not None:
        key = read_key(key_file)
    elif has_terminal():
        key = typer.prompt("Private key (hex)", hide_input=True)
    else:
        raise KeystoreError("no private key: give --key-file (there is no terminal to ask for it)")
    password = resolve_password(cfgmod.PASSWORD_ENV, "New keystore password: ", confirm=True)
    address = Keystore(cfg).import_key(key, password)
    typer.echo(f"imported account {address}")


def read_key(path: Path) -> str:
    """The private key held in ``path`` (never shown, not even in an error)."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise KeystoreError(f"cannot read the key file {path}: {reason}") from None


@account_app.command("list")
@clean_errors
def account_list(as_json: JsonOut = False) -> None:
    """List the accounts of the wallet (the default one first)."""
    keystore = Keystore(WalletConfig.resolve())
    accounts, default = keystore.accounts(), keystore.default()
    if as_json:
        emit({"home": str(keystore.config.home), "default": default, "accounts": accounts})
        return
    if not accounts:
        typer.echo(f"no accounts in {keystore.directory}: create one with `ev-wallet account create`")
    for address in accounts:
        typer.echo(f"{address}{'  (default)' if address == default else ''}")


@account_app.command("default")
@clean_errors
def account_default(address: Annotated[str, typer.Argument(help="Account address.", metavar="ADDRESS")]) -> None:
    """Make ADDRESS the default account."""
    Keystore(WalletConfig.resolve()).set_default(address)
    typer.echo(f"default account {address}")
