"""Shared parts of the ev-wallet commands: options, one-line errors, opening the wallet."""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.chain import connect
from ev_network.cli_errors import clean_errors as _clean_errors
from ev_network.deployment import Deployment
from ev_network.devaccounts import ANVIL_CHAIN_ID, dev_account
from ev_network.errors import EVNetworkError
from ev_network.keys import KeystoreError, load_keyfile, resolve_password
from ev_network.session_ids import parse_session_id
from wallet import config as cfgmod
from wallet.config import WalletConfig
from wallet.core import Wallet
from wallet.errors import BadSessionId, WalletError
from wallet.keystore import Keystore
from wallet.live_client import LiveClient, LiveUnavailable
from wallet.models import SessionStatus
from wallet.units import parse_amount

RpcUrl = Annotated[
    str | None, typer.Option("--rpc-url", help="JSON-RPC node URL [env EVN_RPC_URL].", show_default=False)
]
DeploymentFile = Annotated[
    Path | None, typer.Option("--deployment", help="Deployment file [env EVN_DEPLOYMENT].", show_default=False)
]
AccountAddr = Annotated[
    str | None, typer.Option("--account", help="Account address (default: the wallet's default account).")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
LiveUrl = Annotated[
    str | None,
    typer.Option(
        "--live-url",
        help="The Core Client's live data endpoint, e.g. http://cpo.example:9002 [env EVN_LIVE_URL]; "
        "without it, the chain's view only.",
        show_default=False,
    ),
]
_SHAPE_CHECK_DRIVER = "0x" + "00" * 19 + "01"  # any address: the callback only checks the text's form


def _session_form(value: str) -> str:
    """Reject at parse time (a usage error) text that is neither a session id nor a label."""
    try:
        parse_session_id(value, driver=_SHAPE_CHECK_DRIVER)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value.strip()


SessionArg = Annotated[
    str,
    typer.Argument(
        help="Session label of the account (7, or 2/7 on lane 2) or full session id (0x + 64 hex digits, or decimal).",
        callback=_session_form,
        show_default=False,
        metavar="SESSION",
    ),
]
SessionJsonOut = Annotated[
    bool, typer.Option("--json", help="Machine-readable JSON output (session ids in full: 0x + 64 hex digits).")
]
StationArg = Annotated[
    str, typer.Argument(help="Station id or OCPP charge point id.", show_default=False, metavar="STATION")
]

RPC_TIMEOUT_S = 30  # longest wait for one answer once the node has answered the probe
MAX_AMOUNT = 2**40  # energy (Wh) and durations (s) of a session on chain are uint40

#: ev-wallet catches only the bindings' error base (WalletError and KeystoreError are among them)
clean_errors = _clean_errors((EVNetworkError,))


def emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def config_from(
    rpc_url: str | None, deployment: Path | None, account: str | None, live_url: str | None = None
) -> WalletConfig:
    return WalletConfig.resolve(rpc_url=rpc_url, deployment_file=deployment, account=account, live_url=live_url)


def open_wallet(cfg: WalletConfig, *, unlock: bool = False, need_account: bool = True, poll: float = 1.0) -> Wallet:
    """A wallet on the configured chain: unlocked (password asked) or read-only."""
    keystore = Keystore(cfg)
    if unlock or need_account:
        address = keystore.resolve(cfg.account)
    else:  # reading public data: any known account, else the zero address
        address = cfg.account or keystore.default() or "0x" + "00" * 20
    account: LocalAccount | str = unlock_account(keystore, address) if unlock else address
    deployment = Deployment.load(cfg.deployment_file)
    return Wallet(open_chain(cfg.rpc_url, deployment), deployment, account, poll_interval=poll)


def unlock_account(keystore: Keystore, address: str) -> LocalAccount:
    """The account's key, with its password from EVN_WALLET_PASSWORD or asked for."""
    return keystore.unlock(address, resolve_password(cfgmod.PASSWORD_ENV, f"Password for {address}: "))


def live_data(cfg: WalletConfig, wallet: Wallet, status: SessionStatus) -> tuple[dict[str, Any] | None, str | None]:
    """(the Core Client's live data of a running session of the wallet's account, or None; why not, or
    None). Read only with a live URL; it unlocks the account, which signs the request."""
    if cfg.live_url is None or status.state != "active" or status.driver.lower() != wallet.address.lower():
        return None, None
    try:
        return live_client(cfg, wallet).session(status.session_id), None
    except LiveUnavailable as error:
        return None, str(error)


def live_client(cfg: WalletConfig, wallet: Wallet) -> LiveClient:
    """The client of the configured live URL for the wallet's account (unlocked: it signs the requests)."""
    assert cfg.live_url is not None
    return LiveClient(cfg.live_url, unlock_account(Keystore(cfg), wallet.address))


def open_chain(rpc_url: str, deployment: Deployment) -> Web3:
    """A Web3 on ``rpc_url`` after one bounded probe: a command fails within seconds when the node is down
    or does not answer (no waiting, no web3 retries), and when the deployment's contracts are not there."""
    return connect(rpc_url, deployment, RPC_TIMEOUT_S, wait=False, retries=False)


def session_arg(wallet: Wallet, text: str) -> int:
    """The session a SESSION argument names: a label resolves among the wallet's account's sessions."""
    if int(wallet.address, 16) == 0:  # read-only without any account: only full ids
        try:
            return parse_session_id(text)
        except ValueError as exc:
            raise BadSessionId(f"{exc}; a label needs an account (--account, or ev-wallet account create)") from None
    return wallet.resolve_session(text)


def amount_arg(wallet: Wallet, text: str) -> int:
    """Whole tokens typed by the user ("12.5") in the token's smallest unit."""
    return parse_amount(text, wallet.token_info.decimals)


def minter_account(wallet: Wallet, keyfile: Path | None) -> LocalAccount:
    """The account that signs a top-up: --minter-keyfile, EVN_MINTER_KEY, or on a dev chain Anvil's account 0."""
    if keyfile is not None:
        password = resolve_password(cfgmod.MINTER_PASSWORD_ENV, f"Password for minter keyfile {keyfile}: ")
        return load_keyfile(keyfile, password)
    if os.environ.get(cfgmod.MINTER_KEY_ENV):
        try:
            return Account.from_key(os.environ[cfgmod.MINTER_KEY_ENV].strip())
        except Exception:
            raise KeystoreError(f"{cfgmod.MINTER_KEY_ENV} does not hold a valid private key") from None
    if wallet.deployment.chain_id == ANVIL_CHAIN_ID:
        return dev_account(0)
    raise WalletError("no minter: give --minter-keyfile or set EVN_MINTER_KEY (an account with MINTER_ROLE)")


def decimal_arg(text: str, option: str, scale: int) -> int:
    """A non-negative decimal option times ``scale`` (kWh -> Wh, minutes -> s), which must come out whole."""
    try:
        value = Decimal(text) * scale
    except InvalidOperation:
        raise WalletError(f"{option} {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise WalletError(f"{option} {text!r} must be a positive number with at most {len(str(scale)) - 1} decimals")
    if value >= MAX_AMOUNT:  # what a session can hold on chain (uint40 Wh and seconds)
        raise WalletError(f"{option} {text!r} is beyond what a session can hold ({MAX_AMOUNT // scale - 1} at most)")
    return int(value)
