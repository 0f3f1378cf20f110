"""Where the EV Wallet lives and which chain it talks to.

Everything has a default and an environment variable; the CLI's options override both:

- wallet home ``EVN_WALLET_HOME`` (default ``~/.ev-wallet``): ``keystore/<address>.json`` keyfiles
  and a ``default-account`` marker naming the account used when none is given;
- node ``EVN_RPC_URL`` (default ``http://127.0.0.1:8545``);
- deployment file ``EVN_DEPLOYMENT`` (default ``deployments/local.json``);
- keystore password ``EVN_WALLET_PASSWORD`` (asked at the terminal when unset);
- the Core Client's live data endpoint ``EVN_LIVE_URL`` (default none: the chain's view only), which
  ``charge``, ``status`` and ``web`` read a running session's energy and cost from. It is the CPO's
  (``[live]`` in its Core Client's config), not the network's, so it is not in the deployment file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "EVN_WALLET_HOME"
RPC_ENV = "EVN_RPC_URL"
DEPLOYMENT_ENV = "EVN_DEPLOYMENT"
PASSWORD_ENV = "EVN_WALLET_PASSWORD"
LIVE_ENV = "EVN_LIVE_URL"
MINTER_KEY_ENV = "EVN_MINTER_KEY"
MINTER_PASSWORD_ENV = "EVN_MINTER_PASSWORD"

DEFAULT_HOME = "~/.ev-wallet"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_DEPLOYMENT = "deployments/local.json"


@dataclass(frozen=True)
class WalletConfig:
    """The wallet's settings, resolved from arguments, then the environment, then the defaults."""

    home: Path
    rpc_url: str
    deployment_file: Path
    account: str | None = None
    live_url: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        home: str | Path | None = None,
        rpc_url: str | None = None,
        deployment_file: str | Path | None = None,
        account: str | None = None,
        live_url: str | None = None,
    ) -> WalletConfig:
        """Explicit values win over environment variables, which win over the defaults."""
        return cls(
            home=Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser(),
            rpc_url=rpc_url or os.environ.get(RPC_ENV) or DEFAULT_RPC_URL,
            deployment_file=Path(deployment_file or os.environ.get(DEPLOYMENT_ENV) or DEFAULT_DEPLOYMENT),
            account=account,
            live_url=live_url or os.environ.get(LIVE_ENV) or None,
        )

    @property
    def keystore_dir(self) -> Path:
        """Directory of the encrypted keyfiles, one ``<address>.json`` per account."""
        return self.home / "keystore"

    @property
    def default_marker(self) -> Path:
        """File holding the address of the default account."""
        return self.home / "default-account"
