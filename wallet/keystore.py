"""The driver's accounts: encrypted Ethereum keyfiles (scrypt) in ``<home>/keystore``.

A private key only exists decrypted inside a :class:`~eth_account.signers.local.LocalAccount` handed
to the caller; nothing here prints or logs it, and error messages never contain it."""

from __future__ import annotations

import os
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.keys import KeystoreError, create_keyfile, keyfile_address, load_keyfile
from wallet.config import WalletConfig

__all__ = ["Keystore", "KeystoreError"]


class Keystore:
    """The keyfiles of one wallet home, and which of them is the default account."""

    def __init__(self, config: WalletConfig) -> None:
        self.config = config
        self.directory = config.keystore_dir

    def path_of(self, address: str) -> Path:
        """Where the keyfile of ``address`` lives (it may not exist)."""
        return self.directory / f"{_checksum(address)}.json"

    def create(self, password: str) -> str:
        """A fresh random account, encrypted with ``password``; returns its address."""
        return self._store(password, None)

    def import_key(self, private_key: str, password: str) -> str:
        """Encrypt an existing private key (hex) with ``password``; returns its address."""
        key = private_key.strip()
        try:
            int(key.removeprefix("0x"), 16)
            if len(key.removeprefix("0x")) != 64:
                raise ValueError
        except ValueError:
            raise KeystoreError("not a private key: expected 64 hex digits") from None
        return self._store(password, key)

    def accounts(self) -> list[str]:
        """Addresses of every keyfile, the default account first, then in file-name order."""
        if not self.directory.exists():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(_checksum(keyfile_address(path)))
            except (KeystoreError, KeyError, ValueError):
                continue  # not a keyfile: ignore it rather than fail the whole listing
        default = self.default()
        if default in found:
            found.remove(default)
            found.insert(0, default)
        return found

    def default(self) -> str | None:
        """The default account's address, or the only/first keyfile's if there is no marker."""
        marked = self._marked_default()
        if marked is not None:
            return marked
        if not self.directory.exists():
            return None
        for path in sorted(self.directory.glob("*.json")):
            try:
                return _checksum(keyfile_address(path))
            except (KeystoreError, KeyError, ValueError):
                continue
        return None

    def set_default(self, address: str) -> None:
        """Make ``address`` (which must have a keyfile here) the default account."""
        if not self.path_of(address).exists():
            raise KeystoreError(f"no keystore for account {_checksum(address)} in {self.directory}")
        try:
            self.config.home.mkdir(parents=True, exist_ok=True)
            self.config.default_marker.write_text(_checksum(address) + "\n")
        except OSError as exc:
            raise KeystoreError(f"cannot write {self.config.default_marker}: {exc.strerror}") from None

    def resolve(self, address: str | None = None) -> str:
        """The account to use: ``address`` if given (its keyfile must exist), else the default one."""
        if address:
            if not self.path_of(address).exists():
                raise KeystoreError(
                    f"no keystore for account {_checksum(address)} in {self.directory} "
                    "(see `ev-wallet account list`, or import it with `ev-wallet account import`)"
                )
            return _checksum(address)
        default = self.default()
        if default is None:
            raise KeystoreError(
                f"no account in {self.directory}: create one with `ev-wallet account create` "
                "(or point EVN_WALLET_HOME at an existing wallet)"
            )
        return default

    def unlock(self, address: str | None, password: str) -> LocalAccount:
        """Decrypt the keyfile of ``address`` (or the default account) with ``password``."""
        return load_keyfile(self.path_of(self.resolve(address)), password)

    def _store(self, password: str, private_key: str | None) -> str:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.config.home, 0o700)
        except OSError as exc:
            raise KeystoreError(f"cannot create the wallet folder {self.directory}: {exc.strerror}") from None
        staging = self.directory / f".new-{os.getpid()}.json"
        try:
            address = create_keyfile(staging, password, private_key)
            target = self.path_of(address)
            if target.exists():
                raise KeystoreError(f"account {address} is already in {self.directory}")
            staging.rename(target)
        finally:
            staging.unlink(missing_ok=True)
        if self._marked_default() is None:
            self.set_default(address)  # the first account becomes the default
        return address

    def _marked_default(self) -> str | None:
        marker = self.config.default_marker
        if marker.exists():
            address = marker.read_text().strip()
            if address and self.path_of(address).exists():
                return _checksum(address)
        return None


def _checksum(address: str) -> str:
    try:
        return Web3.to_checksum_address(address)
    except ValueError:
        raise KeystoreError(f"{address!r} is not an account address") from None
