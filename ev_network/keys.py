"""Encrypted key storage (Ethereum keyfiles, scrypt) shared by the Core Client and the EV Wallet.

Private keys never leave this module in a printable form: nothing here logs or prints them."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ev_network.errors import EVNetworkError


class KeystoreError(EVNetworkError):
    """A keystore that is missing, unreadable, or opened with the wrong password."""


def create_keyfile(path: str | Path, password: str, private_key: str | bytes | None = None) -> str:
    """Write a new encrypted keyfile (a fresh key, or ``private_key`` imported); return its address.

    Refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists():
        raise KeystoreError(f"{path} already exists: refusing to overwrite a key")
    if not password:
        raise KeystoreError("an empty password would leave the key unprotected")
    account = Account.from_key(private_key) if private_key is not None else Account.create()
    keyfile = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keyfile, handle)
    return account.address


def keyfile_address(path: str | Path) -> str:
    """The address of a keyfile, without decrypting it."""
    data = _read(Path(path))
    return "0x" + data["address"] if not data["address"].startswith("0x") else data["address"]


def load_keyfile(path: str | Path, password: str) -> LocalAccount:
    """Decrypt a keyfile; a wrong password raises KeystoreError (and says only that)."""
    data = _read(Path(path))
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise KeystoreError(f"wrong password for keystore {path}") from None
    return Account.from_key(key)


def resolve_password(env_var: str, prompt: str = "Keystore password: ", confirm: bool = False) -> str:
    """The password from ``env_var`` if set, else asked at the terminal (hidden)."""
    password = os.environ.get(env_var)
    if password is not None:
        return password
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat password: ") != password:
        raise KeystoreError("the passwords do not match")
    return password


def _read(path: Path) -> dict:
    if not path.exists():
        raise KeystoreError(f"no keystore at {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"{path} is not a readable keyfile: {exc}") from None
