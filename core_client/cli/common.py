"""What several ``core-client`` sub-apps share: the ``--config`` option, the CLI's error, the operator's
password and escrow (for commands that send transactions)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from core_client.chain import onboarding
from core_client.config import Settings
from core_client.errors import CoreClientError
from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.keys import load_keyfile, resolve_password
from ev_network.tx import TxSender

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="EVN_CC_CONFIG", help="Core Client TOML config file.", show_default=False),
]


class CliError(CoreClientError):
    """A command that cannot do what was asked (bad argument, no password, control endpoint refused)."""


def password(env_var: str, prompt: str, confirm: bool = False) -> str:
    """The password from ``env_var``, else asked at the terminal; without one, say which variable to set."""
    try:
        if env_var not in os.environ:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))  # where getpass asks
        return resolve_password(env_var, prompt, confirm)
    except (OSError, EOFError):
        raise CliError(f"no password: set {env_var} (there is no terminal to ask on)") from None


def operator_escrow(settings: Settings) -> tuple[Escrow, Deployment]:
    """The escrow, sending as the operator of the config's keystore (its password asked if not in the env)."""
    w3, deployment = onboarding.connect_settings(settings)
    account = load_keyfile(settings.keystore, password(settings.password_env, f"Password for {settings.keystore}: "))
    return Escrow(w3, deployment, TxSender(w3, account)), deployment
