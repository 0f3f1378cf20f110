"""The driver's EV Wallet: encrypted key store, balance and top-up, stations and quotes, pre-paid
charging sessions (open with permit, stop, cancel, reclaim), live status, history and invoices built
from chain data. Sessions are named by their short label (``7``, ``2/7``) or full id (ev_network.session_ids). Library first (:class:`wallet.core.Wallet`), CLI on top (``ev-wallet``, :mod:`wallet.cli`)."""

from wallet.config import WalletConfig
from wallet.core import Wallet
from wallet.errors import BadSessionId, InsufficientBalance, SessionNotFound, StationUnavailable, TooEarly, WalletError
from wallet.invoice import Invoice, build_invoice, render_pdf, render_text
from wallet.keystore import Keystore, KeystoreError

__all__ = [
    "BadSessionId",
    "InsufficientBalance",
    "Invoice",
    "Keystore",
    "KeystoreError",
    "SessionNotFound",
    "StationUnavailable",
    "TooEarly",
    "Wallet",
    "WalletConfig",
    "WalletError",
    "build_invoice",
    "render_pdf",
    "render_text",
]
