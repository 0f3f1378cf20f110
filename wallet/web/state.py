"""What ``ev-wallet web`` holds in its process: the keystore, the chain connection, and the accounts
unlocked in a browser session (by a random key in the session cookie), locked again after a few idle
minutes. The password is used once to decrypt the keyfile and dropped; the key never leaves the process."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from web3 import Web3

from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, EVNetworkError
from wallet.cli_common import open_chain
from wallet.config import WalletConfig
from wallet.core import Wallet
from wallet.errors import WalletError
from wallet.keystore import Keystore
from wallet.live_client import LiveClient

IDLE_LOCK_S = 300
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass
class Unlocked:
    wallet: Wallet
    live: LiveClient | None
    last_used: float


class WebWallet:
    """The wallet behind the web app. Thread-safe: Starlette runs plain endpoints in a thread pool."""

    def __init__(self, config: WalletConfig, live_url: str | None = None, idle_lock_s: float = IDLE_LOCK_S) -> None:
        self.config = config
        self.keystore = Keystore(config)
        self.live_url = live_url
        self.idle_lock_s = idle_lock_s
        self._chain: tuple[Web3, Deployment] | None = None
        self._unlocked: dict[str, Unlocked] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebWallet({self.config.home})"

    def chain(self) -> tuple[Web3, Deployment]:
        """The chain connection (opened on first use; ChainUnavailable when the node is down)."""
        if self._chain is None:
            deployment = Deployment.load(self.config.deployment_file)
            self._chain = (open_chain(self.config.rpc_url, deployment), deployment)
        return self._chain

    def reader(self, address: str | None = None) -> Wallet:
        """A read-only wallet (stations, quotes, session status) of ``address`` or the default account."""
        w3, deployment = self.chain()
        return Wallet(w3, deployment, address or self.keystore.default() or ZERO_ADDRESS)

    def create(self, password: str, confirm: str) -> str:
        """A new account in the keystore (the default one if it is the first); its address."""
        if password != confirm:
            raise WalletError("the passwords do not match")
        if len(password) < 8:
            raise WalletError("choose a password of at least 8 characters")
        return self.keystore.create(password)

    def unlock(self, address: str | None, password: str) -> str:
        """Decrypt the account's keyfile; the key to keep in the browser's session cookie."""
        account = self.keystore.unlock(address or None, password)  # KeystoreError: wrong password
        w3, deployment = self.chain()
        live = LiveClient(self.live_url, account) if self.live_url else None
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._unlocked[key] = Unlocked(Wallet(w3, deployment, account), live, time.monotonic())
        return key

    def get(self, key: str | None, touch: bool = True) -> Unlocked | None:
        """The account unlocked under ``key``, or None (never unlocked, locked, or idle too long). Every
        call also forgets the accounts of all sessions idle too long: their keys leave memory."""
        with self._lock:
            now = time.monotonic()
            for idle in [k for k, u in self._unlocked.items() if now - u.last_used > self.idle_lock_s]:
                del self._unlocked[idle]
            found = self._unlocked.get(key or "")
            if found is not None and touch:
                found.last_used = now
            return found

    def __len__(self) -> int:
        """How many browser sessions hold an unlocked account."""
        return len(self._unlocked)

    def lock(self, key: str | None) -> None:
        with self._lock:
            self._unlocked.pop(key or "", None)


def driver_message(exc: Exception, rpc_url: str) -> str | None:
    """A driver's sentence for an error, or None for one that is a bug."""
    if isinstance(exc, EVNetworkError):
        return str(exc)
    if isinstance(exc, (ConnectionError, OSError, TimeoutError)) or "Connection" in type(exc).__name__:
        return str(ChainUnavailable(f"cannot reach the chain at {rpc_url}: is the node running?"))
    return None
