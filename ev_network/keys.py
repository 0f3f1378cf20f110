"""Encrypted key storage (Ethereum keyfiles, scrypt) shared by the Core Client and the EV Wallet.

Private keys never leave this module in a printable form: nothing here logs or prints them. A keyfile
is checked against the keyfile format (version 3) before it is decrypted, so a damaged one is named
with what is wrong with it."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import AfterValidator, AliasChoices, BaseModel, Field, ValidationError

from ev_network.errors import EVNetworkError


class KeystoreError(EVNetworkError):
    """A keystore that is missing, unreadable, damaged, or opened with the wrong password."""


def _hex(value: str) -> str:
    try:
        bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise ValueError("not hex digits") from None
    return value


Hex = Annotated[str, AfterValidator(_hex)]


class _Scrypt(BaseModel):
    dklen: int
    n: int = Field(gt=1, le=2**20)  # more would take minutes (and gigabytes) to derive
    r: int = Field(gt=0, le=64)
    p: int = Field(gt=0, le=64)
    salt: Hex


class _Pbkdf2(BaseModel):
    dklen: int
    c: int = Field(gt=0, le=10**7)
    prf: Literal["hmac-sha256"]
    salt: Hex


class _CipherParams(BaseModel):
    iv: Hex


class _Crypto(BaseModel):
    cipher: Literal["aes-128-ctr"]
    cipherparams: _CipherParams
    ciphertext: Hex
    kdf: Literal["scrypt", "pbkdf2"]
    kdfparams: dict[str, Any]
    mac: Hex


class _Keyfile(BaseModel):
    """The Web3 Secret Storage format (version 3), as geth and eth-account write it."""

    address: str | None = None
    crypto: _Crypto = Field(validation_alias=AliasChoices("crypto", "Crypto"))
    version: Literal[3]


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeystoreError(f"cannot write keystore {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(keyfile, handle)
    return account.address


def keyfile_address(path: str | Path) -> str:
    """The address of a keyfile, without decrypting it."""
    data = _read(Path(path))
    address = data.get("address")
    if not isinstance(address, str) or not address:
        raise KeystoreError(f"keystore {path} is damaged: it has no address field")
    return address if address.startswith("0x") else "0x" + address


def load_keyfile(path: str | Path, password: str) -> LocalAccount:
    """Decrypt a keyfile; a wrong password raises KeystoreError (and says only that)."""
    data = _read(Path(path))
    _check_format(Path(path), data)
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise KeystoreError(f"wrong password for keystore {path}") from None
    return Account.from_key(key)


def has_terminal() -> bool:
    """Whether there is a terminal to ask for a password at (getpass reads from it)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        return True
    except OSError:
        return False


def resolve_password(env_var: str, prompt: str = "Keystore password: ", confirm: bool = False) -> str:
    """The password from ``env_var`` if set, else asked at the terminal (hidden); KeystoreError naming
    ``env_var`` when there is no terminal to ask at."""
    password = os.environ.get(env_var)
    if password is not None:
        return password
    missing = KeystoreError(f"no password: set {env_var} (there is no terminal to ask for it)")
    if not has_terminal():
        raise missing
    try:
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat password: ") != password:
            raise KeystoreError("the passwords do not match")
    except EOFError:
        raise missing from None
    return password


def _read(path: Path) -> dict:
    if not path.exists():
        raise KeystoreError(f"no keystore at {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KeystoreError(f"keystore {path} is damaged: it holds binary data, not a JSON keyfile") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeystoreError(f"{path} is not a readable keyfile: {exc}") from None
    if not isinstance(data, dict):
        raise KeystoreError(f"{path} is not a readable keyfile: it holds a JSON {type(data).__name__}, not an object")
    return data


def _check_format(path: Path, data: dict) -> None:
    """KeystoreError naming ``path`` and the first field that does not fit the keyfile format."""
    try:
        crypto = _Keyfile.model_validate(data).crypto
    except ValidationError as exc:
        raise KeystoreError(f"keystore {path} is damaged: {_problem(exc)}") from None
    try:
        (_Scrypt if crypto.kdf == "scrypt" else _Pbkdf2).model_validate(crypto.kdfparams)
    except ValidationError as exc:
        raise KeystoreError(f"keystore {path} is damaged: {_problem(exc, 'crypto.kdfparams.')}") from None


def _problem(exc: ValidationError, prefix: str = "") -> str:
    """The first problem pydantic found, as ``crypto.kdf is 'md5': input should be ...``."""
    first = exc.errors()[0]
    where = prefix + ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return f"it has no {where} field"
    found = repr(first["input"])
    found = found if len(found) <= 40 else found[:37] + "..."
    message = first["msg"].removeprefix("Value error, ")
    return f"{where} is {found}: {message[0].lower()}{message[1:]}"
