"""The wallet's errors: each one a sentence a driver can act on."""

from __future__ import annotations

from ev_network.errors import EVNetworkError


class WalletError(EVNetworkError):
    """Something the driver asked for cannot be done; the message says why."""


class InsufficientBalance(WalletError):
    """The deposit is more than the account holds (checked before any transaction is sent)."""


class StationUnavailable(WalletError):
    """Unknown station, inactive station or a connector it does not have."""


class SessionNotFound(WalletError):
    """No session with that id, or not one of this account's."""


class BadSessionId(WalletError, ValueError):
    """Text that is neither a session id nor a label of the account's sessions."""


class TooEarly(WalletError):
    """Cancel or reclaim asked for before the contract allows it; ``allowed_at`` is when it will."""

    def __init__(self, message: str, allowed_at: int) -> None:
        super().__init__(message)
        self.allowed_at = allowed_at
